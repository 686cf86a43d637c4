package trace

import (
	"math"
	"time"
)

// floorStep is the trace time between the instants Floor evaluates. The
// traces' arrivals and phase changes fall on whole seconds, so evaluating
// each step at its middle integrates them exactly.
const floorStep = 100 * time.Millisecond

// Floor is the fewest node-seconds (trace time) any controller could run
// a trace's jobs on: at each instant the cluster runs the fewest nodes
// that carry every registered job's need with each node filled to fill
// (0 to 1) of nodeMbps, and at least minNodes; a node added or removed
// takes no time and costs nothing, and the controller knows each job's
// load ahead. Peak is the most nodes that takes at any instant.
//
// A job's need is the larger of its hint (Hints.PeakMbps, which the
// controller reserves) and its load as its nodes measure it, the larger
// of their receive and send rates: a sort's whole offered load (it puts,
// then gets), a video pipeline's half (it puts and gets at once). A job
// counts from its arrival for its Run; the read-back each job does after
// its run is left out, which can only lower the floor. A real controller
// also reacts to measured load after a delay and moves values to add a
// node, so it uses more.
//
// Floor returns zeros for nodeMbps or fill not above 0.
func Floor(jobs []JobSpec, length time.Duration, nodeMbps, fill float64, minNodes int) (nodeSeconds float64, peak int) {
	if !(nodeMbps > 0 && fill > 0) {
		return 0, 0
	}
	perNode := fill * nodeMbps
	for t := time.Duration(0); t < length; t += floorStep {
		mid := t + floorStep/2
		sum := 0.0
		for i := range jobs {
			sum += jobs[i].needAt(mid)
		}
		// A sum a rounding error over a whole number of nodes needs that
		// number, not one more.
		n := max(minNodes, int(math.Ceil(sum/perNode-1e-9)))
		peak = max(peak, n)
		nodeSeconds += float64(n) * floorStep.Seconds()
	}
	return nodeSeconds, peak
}

// needAt is what the job needs at trace time t (see Floor): 0 outside its
// run.
func (s *JobSpec) needAt(t time.Duration) float64 {
	run := s.Run
	if run == 0 { // phases not yet summed by check
		for _, p := range s.Phases {
			run += p.For
		}
	}
	if t < s.Arrive || t >= s.Arrive+run {
		return 0
	}
	measured := s.MbpsAt(t - s.Arrive)
	if s.Kind == Video {
		measured /= 2
	}
	return max(float64(s.Hints.PeakMbps), measured)
}

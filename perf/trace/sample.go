package trace

import (
	"context"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Point is one sample. T is trace seconds.
type Point struct {
	T         float64
	Nodes     int     // nodes running: active and draining
	Active    int     // active nodes
	Jobs      int     // registered jobs
	AllocMbps float64 // the jobs' allotments
	UsedMbps  float64 // sum over nodes of max(rx, tx) they measured
	CapMbps   float64 // bandwidth of the active nodes
	// Over is the load the nodes measured beyond their bandwidth, in
	// nodes: the sum over running nodes of max(0, max(rx, tx)/bandwidth - 1)
	// (a node at 200% adds 1). A node on loopback can carry more than the
	// bandwidth it reports; a real one could not.
	Over float64
	// PerJob is each registered job's map, by job name.
	PerJob map[string]JobPoint
}

// JobPoint is one job's map in a sample, from the controller's status.
type JobPoint struct {
	Nodes   int    // nodes in the job's map, dead ones left out
	Joining int    // of them, nodes whose values are still moving in
	Epoch   uint64 // the map's epoch
	// UsedMbps is the sum over the job's nodes of max(rx, tx) they
	// measured: the job's traffic and that of any job sharing them.
	UsedMbps float64
	// Over is the load beyond those nodes' bandwidth, in nodes (as
	// Point.Over; a node shared with another job counts whole).
	Over float64
	// AllocMbps is the job's allotment; OwnMbps its own traffic on its
	// nodes as the controller counts it (wire.JobStatus.UsedMbps).
	AllocMbps, OwnMbps float64
}

// sample reads the cluster's status every Sample until ctx ends.
func sample(ctx context.Context, cfg *Config, start time.Time) []Point {
	var pts []Point
	tick := time.NewTicker(cfg.Sample)
	defer tick.Stop()
	for {
		if st, err := cfg.Status(ctx); err == nil {
			p := point(st)
			p.T = time.Since(start).Seconds() / cfg.Timescale
			pts = append(pts, p)
		}
		select {
		case <-ctx.Done():
			return pts
		case <-tick.C:
		}
	}
}

// defaultNodeMbps is the controller's bandwidth of a node that reports
// none (controller.DefaultPolicy's NodeMbps).
const defaultNodeMbps = 8000

func point(st *wire.ClusterStatus) Point {
	var p Point
	used, over := map[string]float64{}, map[string]float64{}
	for _, n := range st.Nodes {
		if n.State == wire.NodeDead {
			continue
		}
		p.Nodes++
		used[n.Addr] = max(n.RxMbps, n.TxMbps)
		p.UsedMbps += used[n.Addr]
		over[n.Addr] = max(0, used[n.Addr]/nodeMbps(n)-1)
		p.Over += over[n.Addr]
		if n.State != wire.NodeActive {
			continue
		}
		p.Active++
		p.CapMbps += nodeMbps(n)
	}
	for _, j := range st.Jobs {
		p.Jobs++
		p.AllocMbps += j.AllocMbps
		if p.PerJob == nil {
			p.PerJob = map[string]JobPoint{}
		}
		p.PerJob[j.Name] = jobPoint(j, used, over)
	}
	return p
}

// nodeMbps is a node's bandwidth: its fastest tier's, or the default.
func nodeMbps(n wire.NodeStatus) float64 {
	bw := 0.0
	for _, t := range n.Tiers {
		bw = max(bw, t.Mbps)
	}
	if bw == 0 {
		return defaultNodeMbps
	}
	return bw
}

// jobPoint reads one job's map; used is each live node's measured Mb/s,
// over its load beyond its bandwidth in nodes (as Point.Over).
func jobPoint(j wire.JobStatus, used, over map[string]float64) JobPoint {
	jp := JobPoint{Epoch: j.Epoch, AllocMbps: j.AllocMbps, OwnMbps: j.UsedMbps}
	for _, n := range j.Nodes {
		if n.State == wire.NodeDead {
			continue
		}
		jp.Nodes++
		if n.State == wire.NodeJoining {
			jp.Joining++
		}
		jp.UsedMbps += used[n.Addr]
		jp.Over += over[n.Addr]
	}
	return jp
}

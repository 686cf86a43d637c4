package wire

import (
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire/fb"
)

// Bounds of a JobProfile reply, checked when decoding: the runs a profile
// lists and the phases of one run. The controller keeps no more
// (controller/state.MaxProfileRuns and MaxRunPhases, which a controller
// test holds within these).
const (
	MaxProfileRuns = 32
	MaxRunPhases   = 16
)

// JobProfileRequest asks for the profile of job name Name (OpJobProfile):
// a name as registered ("sort"), not a job id ("sort-12").
type JobProfileRequest struct {
	Name string
}

// JobProfile answers OpJobProfile: what the ended jobs of a name used, and
// what the next job of the name registered without size hints is given
// under the answering controller's policy. Runs are newest first, at most
// MaxProfileRuns; Updated is when the newest ended. Times and durations
// travel with millisecond resolution.
type JobProfile struct {
	Name    string
	Updated time.Time
	Runs    []ProfileRun
	Next    ProfileNext
}

// ProfileRun is one ended job of the name: its id, when it ended, how long
// it lived, its peak bandwidth (Mb/s, 10^6 bits a second: the larger of
// rx and tx) and peak bytes stored, the Tier number it ran on, what it was
// allotted (Mb/s, bytes), and the same peaks per phase (equal slices of its
// life, first to last; at most MaxRunPhases).
type ProfileRun struct {
	Job        string
	Ended      time.Time
	Duration   time.Duration
	PeakMbps   float64
	PeakBytes  int64
	Tier       uint8
	AllocMbps  float64
	AllocBytes int64
	Phases     []ProfilePhase
}

// ProfilePhase is a run's peak bandwidth (Mb/s) and bytes in one phase.
type ProfilePhase struct {
	PeakMbps  float64
	PeakBytes int64
}

// ProfileNext is the size the next job of the name registered without
// size hints is allotted (Mbps, Bytes: the estimate, its bandwidth raised
// to at least one lambda's), and the runs' estimate it comes from
// (EstimateMbps, EstimateBytes, weighing EstimateRuns runs).
type ProfileNext struct {
	Mbps          float64
	Bytes         int64
	EstimateMbps  float64
	EstimateBytes int64
	EstimateRuns  uint32
}

var (
	profileReqSpec   = TableSpec{Name: "JobProfileRequest", Fields: []Field{{Kind: String}}}
	profilePhaseSpec = TableSpec{Name: "ProfilePhase", Fields: []Field{{Kind: Scalar8}, {Kind: Scalar8}}}
	profileRunSpec   = TableSpec{Name: "ProfileRun", Fields: []Field{
		{Kind: String}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar1},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: TableVec, Sub: &profilePhaseSpec},
	}}
	profileSpec = TableSpec{Name: "JobProfile", Fields: []Field{
		{Kind: String}, {Kind: Scalar8}, {Kind: TableVec, Sub: &profileRunSpec},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar4},
	}}
)

// ---- JobProfileRequest ----

// Encode implements ControlMessage.
func (m *JobProfileRequest) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	name := str(b, m.Name)
	fb.JobProfileRequestStart(b)
	addOff(b, name, fb.JobProfileRequestAddName)
	b.Finish(fb.JobProfileRequestEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage. An empty name is CodeBadKey, one over
// DefaultMaxJobLen bytes CodeTooLarge.
func (m *JobProfileRequest) Decode(meta []byte) error {
	*m = JobProfileRequest{}
	pos, err := root(meta, &profileReqSpec)
	if err != nil {
		return err
	}
	var t fb.JobProfileRequest
	t.Init(meta, pos)
	if err := checkProfileName(t.Name()); err != nil {
		return err
	}
	*m = JobProfileRequest{Name: string(t.Name())}
	return nil
}

func checkProfileName(name []byte) error {
	if len(name) == 0 {
		return Errorf(CodeBadKey, "job profile: empty job name")
	}
	return checkLen("job name", len(name), DefaultMaxJobLen)
}

// ---- JobProfile ----

// Encode implements ControlMessage.
func (m *JobProfile) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	name := str(b, m.Name)
	runs := encodeRuns(b, m.Runs)
	fb.JobProfileStart(b)
	addOff(b, name, fb.JobProfileAddName)
	fb.JobProfileAddUpdatedMs(b, unixMs(m.Updated))
	addOff(b, runs, fb.JobProfileAddRuns)
	fb.JobProfileAddNextMbps(b, m.Next.Mbps)
	fb.JobProfileAddNextBytes(b, m.Next.Bytes)
	fb.JobProfileAddEstimateMbps(b, m.Next.EstimateMbps)
	fb.JobProfileAddEstimateBytes(b, m.Next.EstimateBytes)
	fb.JobProfileAddEstimateRuns(b, m.Next.EstimateRuns)
	b.Finish(fb.JobProfileEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage: the name within DefaultMaxJobLen, at
// most MaxProfileRuns runs of MaxRunPhases phases, every figure finite and
// not negative, every run with a job id.
func (m *JobProfile) Decode(meta []byte) error {
	*m = JobProfile{}
	pos, err := root(meta, &profileSpec)
	if err != nil {
		return err
	}
	var t fb.JobProfile
	t.Init(meta, pos)
	if err := firstErr(checkLen("job name", len(t.Name()), DefaultMaxJobLen), checkSize("profile updated", t.UpdatedMs()),
		checkNum("next Mb/s", t.NextMbps()), checkSize("next bytes", t.NextBytes()),
		checkNum("estimate Mb/s", t.EstimateMbps()), checkSize("estimate bytes", t.EstimateBytes())); err != nil {
		return err
	}
	runs, err := decodeRuns(t.RunsLength(), t.Runs)
	if err != nil {
		return err
	}
	*m = JobProfile{Name: string(t.Name()), Updated: fromUnixMs(t.UpdatedMs()), Runs: runs,
		Next: ProfileNext{Mbps: t.NextMbps(), Bytes: t.NextBytes(), EstimateMbps: t.EstimateMbps(),
			EstimateBytes: t.EstimateBytes(), EstimateRuns: t.EstimateRuns()}}
	return nil
}

func encodeRuns(b *flatbuffers.Builder, runs []ProfileRun) flatbuffers.UOffsetT {
	if len(runs) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(runs))
	for i := range runs {
		offs[i] = runs[i].build(b)
	}
	return endVector(b, offs, fb.JobProfileStartRunsVector)
}

func (r *ProfileRun) build(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	job := str(b, r.Job)
	phases := encodePhases(b, r.Phases)
	fb.ProfileRunStart(b)
	addOff(b, job, fb.ProfileRunAddJob)
	fb.ProfileRunAddEndedMs(b, unixMs(r.Ended))
	fb.ProfileRunAddDurationMs(b, r.Duration.Milliseconds())
	fb.ProfileRunAddPeakMbps(b, r.PeakMbps)
	fb.ProfileRunAddPeakBytes(b, r.PeakBytes)
	fb.ProfileRunAddTier(b, r.Tier)
	fb.ProfileRunAddAllocMbps(b, r.AllocMbps)
	fb.ProfileRunAddAllocBytes(b, r.AllocBytes)
	addOff(b, phases, fb.ProfileRunAddPhases)
	return fb.ProfileRunEnd(b)
}

func encodePhases(b *flatbuffers.Builder, ps []ProfilePhase) flatbuffers.UOffsetT {
	if len(ps) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(ps))
	for i, p := range ps {
		fb.ProfilePhaseStart(b)
		fb.ProfilePhaseAddPeakMbps(b, p.PeakMbps)
		fb.ProfilePhaseAddPeakBytes(b, p.PeakBytes)
		offs[i] = fb.ProfilePhaseEnd(b)
	}
	return endVector(b, offs, fb.ProfileRunStartPhasesVector)
}

// decodeRuns reads n runs (at most MaxProfileRuns).
func decodeRuns(n int, at func(*fb.ProfileRun, int) bool) ([]ProfileRun, error) {
	if err := checkLen("profile runs", n, MaxProfileRuns); err != nil || n == 0 {
		return nil, err
	}
	out := make([]ProfileRun, n)
	var r fb.ProfileRun
	for i := range out {
		at(&r, i)
		if err := out[i].from(&r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *ProfileRun) from(t *fb.ProfileRun) error {
	if err := firstErr(checkJob(t.Job()), checkSize("run ended", t.EndedMs()), checkSize("run duration", t.DurationMs()),
		checkNum("run peak Mb/s", t.PeakMbps()), checkSize("run peak bytes", t.PeakBytes()),
		checkNum("run allotted Mb/s", t.AllocMbps()), checkSize("run allotted bytes", t.AllocBytes())); err != nil {
		return err
	}
	phases, err := decodePhases(t.PhasesLength(), t.Phases)
	if err != nil {
		return err
	}
	*r = ProfileRun{Job: string(t.Job()), Ended: fromUnixMs(t.EndedMs()), Duration: msToDuration(t.DurationMs()),
		PeakMbps: t.PeakMbps(), PeakBytes: t.PeakBytes(), Tier: t.Tier(), AllocMbps: t.AllocMbps(),
		AllocBytes: t.AllocBytes(), Phases: phases}
	return nil
}

// decodePhases reads n phases (at most MaxRunPhases).
func decodePhases(n int, at func(*fb.ProfilePhase, int) bool) ([]ProfilePhase, error) {
	if err := checkLen("run phases", n, MaxRunPhases); err != nil || n == 0 {
		return nil, err
	}
	out := make([]ProfilePhase, n)
	var p fb.ProfilePhase
	for i := range out {
		at(&p, i)
		if err := firstErr(checkNum("phase peak Mb/s", p.PeakMbps()), checkSize("phase peak bytes", p.PeakBytes())); err != nil {
			return nil, err
		}
		out[i] = ProfilePhase{PeakMbps: p.PeakMbps(), PeakBytes: p.PeakBytes()}
	}
	return out, nil
}

package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"
)

// sampleControl returns one fully populated value of every control message,
// so round trips cover every field.
func sampleControl() []ControlMessage {
	tiers := []TierStat{{Kind: 1, CapacityBytes: 8 << 30, UsedBytes: 1 << 20, Mbps: 8000},
		{Kind: 2, CapacityBytes: 100 << 30, UsedBytes: 0, Mbps: 2500.5}}
	metrics := []Metric{{Name: "gets_per_sec", Value: 12345}, {Name: "delta", Value: -3}}
	nodes := []MapNode{{Addr: "127.0.0.1:7001", Weight: 0.25, State: NodeActive},
		{Addr: "127.0.0.1:7002", Weight: 0.75, State: NodeDead}}
	return []ControlMessage{
		&NodeRegister{Addr: "127.0.0.1:7001", Tiers: tiers, Proof: []byte{3, 1, 4}, Cores: 8, Incarnation: 1<<63 + 9},
		&Heartbeat{Addr: "127.0.0.1:7001", Proof: []byte{9}, Tiers: tiers, RxMbps: 10.5, TxMbps: 20.25,
			CPUPercent: 37.5, Metrics: metrics, Since: 1 << 60, SnapRev: 17, SnapAfter: 12,
			Held:  []HeldJob{{Job: "old-7", Bytes: 650 << 20}, {Job: "gone-3"}},
			Moves: []MoveReport{{Job: "sort-1", Epoch: 4, Left: 120}, {Job: "grep-2", Epoch: 9}},
			Loads: []JobLoad{{Job: "sort-1", RxMbps: 812.5, TxMbps: 20.25, Bytes: 3 << 30}, {Job: "grep-2", Bytes: 1}}, Incarnation: 77, Early: true,
			Persisted: []HeldJob{{Job: "keep-4", Bytes: 5 << 30}, {Job: "keep-9", Bytes: 1}}, PersistedJobs: 1<<31 + 2, PersistedBytes: 6 << 30},
		&NodeAck{Known: true, State: NodeDraining, Heartbeat: time.Second,
			Jobs: []JobEpoch{{Job: "sort-1", Epoch: 3, Gen: 99, Expires: time.UnixMilli(1_800_000_000_123), Tiers: 1 << TierNVMe, OverQuota: true, MaxBytes: 64 << 20},
				{Job: "video-2", Epoch: 1, Revoked: true}, {Job: "grep-2", Epoch: 12, Gen: 7, Out: true},
				{Job: "scan-5", Epoch: 6, Gen: 8, KeepEpoch: 4, Keep: []MapNode{{Addr: "10.0.0.2:7000", Weight: 0.25}, {Addr: "10.0.0.1:7000", Weight: 0.5}}, Owner: "tenant alice"}},
			Rev: 1<<60 + 5, Full: true, More: true, After: 99, Drop: []HeldJob{{Job: "old-7", Bytes: 650 << 20}}, Lease: 33 * time.Second},
		&JobRegister{Name: "sort", Hints: JobHints{Lambdas: 250, CapacityBytes: 100e9, PeakMbps: 16000, LatencySensitive: true},
			TTL: 90 * time.Minute},
		&JobRef{Job: "sort-1", Token: []byte("tok")},
		&JobRef{Job: "sort-1", Token: []byte("tok"), EndedOK: true},
		&JobRef{Job: "sort-1", Proof: bytes.Repeat([]byte{7}, 49)},
		&PlacementMap{Job: "sort-2", Epoch: 3, Nodes: nodes, Token: []byte("tok"), Ended: true},
		&PlacementMap{Job: "sort-1", Tier: 2, Epoch: 7, Nodes: nodes, Token: bytes.Repeat([]byte{0xAB}, 33),
			Expires: time.UnixMilli(1_800_000_000_000),
			Lost:    []LostNode{{Addr: "127.0.0.1:7003", Weight: 0.5, Epoch: 4}, {Addr: "[::1]:7004", Weight: 0.125, Epoch: 6}}},
		&PlacementMap{Job: "etl-9", Epoch: 1, Nodes: nodes, Token: []byte("tok"), AllocMbps: 600, AllocBytes: 66 << 20, Sized: SizedProfile},
		&PlacementMap{Job: "etl-10", Epoch: 1, Nodes: nodes, Token: []byte("tok"), AllocMbps: 600, Sized: SizedHints,
			Quota: QuotaLeft{Bytes: 300 << 20, LeftBytes: 100 << 20, Mbps: 2000, LeftMbps: 1400},
			Note:  "the autoscaler could not add 1 node(s) it wanted for the job"},
		&DropResult{Nodes: 3, Failed: 1, Values: 1000, Bytes: 1 << 30, Message: "node x: refused"},
		&ClusterStatus{
			Nodes: []NodeStatus{{Addr: "127.0.0.1:7001", State: NodeActive, Tiers: tiers, RxMbps: 1, TxMbps: 2,
				CPUPercent: 3, Cores: 4, LastSeen: 1500 * time.Millisecond, Jobs: 2, Metrics: metrics},
				{Addr: "127.0.0.1:7002", State: NodeDead, Persisted: []HeldJob{{Job: "keep-4", Bytes: 5 << 30}, {Job: "keep-9", Bytes: 1}}},
				{Addr: "127.0.0.1:7003", State: NodeActive, Restored: true}},
			Jobs: []JobStatus{{Job: "sort-1", Name: "sort", Tier: 1, Epoch: 2, Nodes: nodes,
				Hints: JobHints{Lambdas: 10, PeakMbps: 6000}, AllocMbps: 6000, AllocBytes: 5 << 30, Age: 3 * time.Second, UsedMbps: 4321.5, UsedBytes: 3 << 30, Tenant: "alice", Settling: true}},
			JobCount: 12000, NodeCount: 3, NextJob: 1<<60 + 1, AutoscaleMaxNodes: 8,
			Prices:     &PriceTable{DRAMGiBHour: 1, NVMeGiBHour: 0, GbpsHour: 0.0102},
			Clients:    []ClientHold{{Client: "tenant alice", Jobs: 2, AllocBytes: 300 << 20, AllocMbps: 1400.5, PersistedBytes: 7 << 30}, {Client: "client 10.0.0.1", Jobs: 1}},
			QuotaBytes: 300 << 20, QuotaMbps: 2000,
			Retired: []RetiredNode{{Addr: "127.0.0.1:7004", At: time.UnixMilli(1_800_000_000_456), Why: "died while draining", Lost: true},
				{Addr: "127.0.0.1:7005", At: time.UnixMilli(1_800_000_000_789), Why: "drained"}},
		},
		&ClusterStatus{JobCount: 1, Jobs: []JobStatus{{Job: "sort-1", Name: "sort"}}}, // no prices: an older controller, a job page
		&JobList{After: 1<<60 + 1, Limit: 500},
		&Challenge{Nonce: bytes.Repeat([]byte{0x5A}, 16)},
		&DrainNode{Addr: "127.0.0.1:7001", Deadline: 90 * time.Second, Proof: []byte{7, 7}, DiscardPersisted: true},
		&NodeHello{Addr: "127.0.0.1:7001", Proof: bytes.Repeat([]byte{0x3C}, 32)},
		&JobProfileRequest{Name: "sort"},
		&JobProfile{Name: "sort", Updated: time.UnixMilli(1_800_000_000_500), Runs: []ProfileRun{
			{Job: "sort-12", Ended: time.UnixMilli(1_800_000_000_500), Duration: 95*time.Second + 250*time.Millisecond,
				PeakMbps: 3012.5, PeakBytes: 5 << 30, Tier: 1, AllocMbps: 16000, AllocBytes: 6 << 30,
				Phases: []ProfilePhase{{PeakMbps: 100, PeakBytes: 1 << 20}, {PeakMbps: 3012.5, PeakBytes: 5 << 30}, {}, {PeakMbps: 0.5}}},
			{Job: "sort-9", Ended: time.UnixMilli(1_700_000_000_000), Duration: time.Millisecond, Tier: 2}},
			Next: ProfileNext{Mbps: 3313.75, Bytes: 5905580032, EstimateMbps: 3313.75, EstimateBytes: 5905580032, EstimateRuns: 2}},
	}
}

// fresh returns a zero value of the same message type as m.
func fresh(m ControlMessage) ControlMessage {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(ControlMessage)
}

func TestControlRoundTrip(t *testing.T) {
	b := flatbuffers.NewBuilder(0)
	for _, m := range sampleControl() {
		meta := m.Encode(b)
		got := fresh(m)
		if err := got.Decode(bytes.Clone(meta)); err != nil {
			t.Fatalf("%T: decode: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%T round trip:\n got %+v\nwant %+v", m, got, m)
		}
		// Zero values round-trip too (absent fields read back as zero),
		// except where a decoder requires a field.
		z := fresh(m)
		err := fresh(m).Decode(bytes.Clone(z.Encode(b)))
		switch z.(type) {
		case *NodeRegister, *Heartbeat, *JobRef, *PlacementMap, *DrainNode, *JobProfileRequest:
			if !errors.Is(err, ErrBadKey) {
				t.Errorf("%T without address or job: %v, want ErrBadKey", z, err)
			}
		default:
			if err != nil {
				t.Errorf("%T zero value: %v", z, err)
			}
		}
	}
}

// TestControlDecodeCopies checks a decoded message does not alias the
// buffer it came from.
func TestControlDecodeCopies(t *testing.T) {
	b := flatbuffers.NewBuilder(0)
	want := &PlacementMap{Job: "a-1", Epoch: 1, Nodes: []MapNode{{Addr: "h:1", Weight: 1, State: NodeActive}}, Token: []byte{1, 2, 3}}
	meta := bytes.Clone(want.Encode(b))
	var got PlacementMap
	if err := got.Decode(meta); err != nil {
		t.Fatal(err)
	}
	for i := range meta {
		meta[i] = 0xFF
	}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("decoded map changed with its buffer: %+v", got)
	}
}

func TestControlDecodeRefuses(t *testing.T) {
	b := flatbuffers.NewBuilder(0)
	long := string(bytes.Repeat([]byte("x"), 300))
	cases := []struct {
		name string
		m    ControlMessage
		want error
	}{
		{"nan weight", &PlacementMap{Job: "j-1", Nodes: []MapNode{{Addr: "a:1", Weight: math.NaN()}}}, ErrMalformed},
		{"negative weight", &PlacementMap{Job: "j-1", Nodes: []MapNode{{Addr: "a:1", Weight: -1}}}, ErrMalformed},
		{"nan allotment", &PlacementMap{Job: "j-1", AllocMbps: math.NaN()}, ErrMalformed},
		{"negative allotment", &PlacementMap{Job: "j-1", AllocBytes: -1}, ErrMalformed},
		{"inf Mb/s", &Heartbeat{Addr: "a:1", RxMbps: math.Inf(1)}, ErrMalformed},
		{"negative capacity", &NodeRegister{Addr: "a:1", Tiers: []TierStat{{Kind: 1, CapacityBytes: -5}}}, ErrMalformed},
		{"long address", &NodeRegister{Addr: long}, ErrTooLarge},
		{"long job", &JobRef{Job: long}, ErrTooLarge},
		{"long name", &JobRegister{Name: long}, ErrTooLarge},
		{"too many tiers", &NodeRegister{Addr: "a:1", Tiers: make([]TierStat, MaxTiers+1)}, ErrTooLarge},
		{"nan metric", &Heartbeat{Addr: "a:1", Metrics: []Metric{{Name: "m", Value: math.NaN()}}}, ErrMalformed},
		{"negative hint", &JobRegister{Name: "j", Hints: JobHints{CapacityBytes: -1}}, ErrMalformed},
		{"long nonce", &Challenge{Nonce: make([]byte, MaxNonce+1)}, ErrTooLarge},
		{"long hello address", &NodeHello{Addr: long}, ErrTooLarge},
		{"too many held", &Heartbeat{Addr: "a:1", Held: make([]HeldJob, MaxHeldJobs+1)}, ErrTooLarge},
		{"negative held", &Heartbeat{Addr: "a:1", Held: []HeldJob{{Job: "j-1", Bytes: -1}}}, ErrMalformed},
		{"too many moves", &Heartbeat{Addr: "a:1", Moves: make([]MoveReport, MaxMoveReports+1)}, ErrTooLarge},
		{"negative left", &Heartbeat{Addr: "a:1", Moves: []MoveReport{{Job: "j-1", Left: -1}}}, ErrMalformed},
		{"bad move job", &Heartbeat{Addr: "a:1", Moves: []MoveReport{{Job: "", Left: 1}}}, ErrBadKey},
		{"too many loads", &Heartbeat{Addr: "a:1", Loads: make([]JobLoad, MaxJobLoads+1)}, ErrTooLarge},
		{"too many persisted", &Heartbeat{Addr: "a:1", Persisted: make([]HeldJob, MaxPersistedJobs+1), PersistedJobs: MaxPersistedJobs + 1}, ErrTooLarge},
		{"negative persisted", &Heartbeat{Addr: "a:1", Persisted: []HeldJob{{Job: "j-1", Bytes: -1}}, PersistedJobs: 1}, ErrMalformed},
		{"negative persisted total", &Heartbeat{Addr: "a:1", PersistedBytes: -1}, ErrMalformed},
		{"persisted over count", &Heartbeat{Addr: "a:1", Persisted: []HeldJob{{Job: "j-1"}, {Job: "j-2"}}, PersistedJobs: 1}, ErrMalformed},
		{"bad persisted job", &Heartbeat{Addr: "a:1", Persisted: []HeldJob{{Job: ""}}, PersistedJobs: 1}, ErrBadKey},
		{"persisted jobs over bound", &Heartbeat{Addr: "a:1", PersistedJobs: MaxNodeJobs + 1}, ErrTooLarge},
		{"persisted bytes over bound", &Heartbeat{Addr: "a:1", PersistedJobs: 1, PersistedBytes: MaxNodeBytes + 1}, ErrTooLarge},
		{"status: too many retired", &ClusterStatus{Retired: make([]RetiredNode, MaxStatusRetired+1)}, ErrTooLarge},
		{"status: too many persisted", &ClusterStatus{Nodes: []NodeStatus{{Addr: "a:1", Persisted: make([]HeldJob, MaxPersistedJobs+1)}}}, ErrTooLarge},
		{"status: negative price", &ClusterStatus{Prices: &PriceTable{GbpsHour: -1}}, ErrMalformed},
		{"status: too many clients", &ClusterStatus{Clients: make([]ClientHold, MaxStatusClients+1)}, ErrTooLarge},
		{"status: negative client bytes", &ClusterStatus{Clients: []ClientHold{{Client: "c", AllocBytes: -1}}}, ErrMalformed},
		{"status: NaN client Mb/s", &ClusterStatus{Clients: []ClientHold{{Client: "c", AllocMbps: math.NaN()}}}, ErrMalformed},
		{"status: negative client persisted bytes", &ClusterStatus{Clients: []ClientHold{{Client: "c", PersistedBytes: -1}}}, ErrMalformed},
		{"status: negative quota", &ClusterStatus{QuotaBytes: -1}, ErrMalformed},
		{"status: NaN price", &ClusterStatus{Prices: &PriceTable{DRAMGiBHour: math.NaN()}}, ErrMalformed},
		{"status: bad persisted job", &ClusterStatus{Nodes: []NodeStatus{{Addr: "a:1", Persisted: []HeldJob{{Job: ""}}}}}, ErrBadKey},
		{"negative job bytes", &Heartbeat{Addr: "a:1", Loads: []JobLoad{{Job: "j-1", Bytes: -1}}}, ErrMalformed},
		{"nan job rx", &Heartbeat{Addr: "a:1", Loads: []JobLoad{{Job: "j-1", RxMbps: math.NaN()}}}, ErrMalformed},
		{"negative job tx", &Heartbeat{Addr: "a:1", Loads: []JobLoad{{Job: "j-1", TxMbps: -1}}}, ErrMalformed},
		{"inf job tx", &Heartbeat{Addr: "a:1", Loads: []JobLoad{{Job: "j-1", TxMbps: math.Inf(1)}}}, ErrMalformed},
		{"bad load job", &Heartbeat{Addr: "a:1", Loads: []JobLoad{{Job: "", RxMbps: 1}}}, ErrBadKey},
		{"long load job", &Heartbeat{Addr: "a:1", Loads: []JobLoad{{Job: long}}}, ErrTooLarge},
		{"long drop", &NodeAck{Drop: []HeldJob{{Job: long}}}, ErrTooLarge},
		{"too many lost", &PlacementMap{Job: "j-1", Lost: make([]LostNode, MaxLostNodes+1)}, ErrTooLarge},
		{"long lost address", &PlacementMap{Job: "j-1", Lost: []LostNode{{Addr: long}}}, ErrTooLarge},
		{"nan lost weight", &PlacementMap{Job: "j-1", Lost: []LostNode{{Addr: "a:1", Weight: math.NaN()}}}, ErrMalformed},
		{"negative lost weight", &PlacementMap{Job: "j-1", Lost: []LostNode{{Addr: "a:1", Weight: -0.5}}}, ErrMalformed},
		{"long profile name", &JobProfileRequest{Name: long}, ErrTooLarge},
		{"long profile reply name", &JobProfile{Name: long}, ErrTooLarge},
		{"too many runs", &JobProfile{Name: "n", Runs: runs(MaxProfileRuns + 1)}, ErrTooLarge},
		{"too many phases", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", Phases: make([]ProfilePhase, MaxRunPhases+1)}}}, ErrTooLarge},
		{"run without job", &JobProfile{Name: "n", Runs: []ProfileRun{{PeakMbps: 1}}}, ErrBadKey},
		{"long run job", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: long}}}, ErrTooLarge},
		{"nan run peak", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", PeakMbps: math.NaN()}}}, ErrMalformed},
		{"negative run bytes", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", PeakBytes: -1}}}, ErrMalformed},
		{"negative run duration", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", Duration: -time.Second}}}, ErrMalformed},
		{"inf allotted", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", AllocMbps: math.Inf(1)}}}, ErrMalformed},
		{"negative allotted bytes", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", AllocBytes: -1}}}, ErrMalformed},
		{"nan phase", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", Phases: []ProfilePhase{{PeakMbps: math.NaN()}}}}}, ErrMalformed},
		{"negative phase bytes", &JobProfile{Name: "n", Runs: []ProfileRun{{Job: "n-1", Phases: []ProfilePhase{{PeakBytes: -1}}}}}, ErrMalformed},
		{"negative next Mb/s", &JobProfile{Name: "n", Next: ProfileNext{Mbps: -1}}, ErrMalformed},
		{"negative next bytes", &JobProfile{Name: "n", Next: ProfileNext{Bytes: -1}}, ErrMalformed},
		{"nan estimate", &JobProfile{Name: "n", Next: ProfileNext{EstimateMbps: math.NaN()}}, ErrMalformed},
		{"negative estimate bytes", &JobProfile{Name: "n", Next: ProfileNext{EstimateBytes: -1}}, ErrMalformed},
	}
	for _, c := range cases {
		err := fresh(c.m).Decode(bytes.Clone(c.m.Encode(b)))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for _, m := range sampleControl() {
		if err := fresh(m).Decode(nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%T: empty metadata: %v", m, err)
		}
		// Every truncation of a valid message is refused or decodes; it
		// never panics.
		meta := bytes.Clone(m.Encode(b))
		for n := range meta {
			_ = fresh(m).Decode(meta[:n])
		}
	}
}

func TestControlOpNames(t *testing.T) {
	want := map[Op]string{OpRegisterNode: "register-node", OpHeartbeat: "heartbeat", OpRegisterJob: "register-job",
		OpDeregisterJob: "deregister-job", OpGetMap: "get-map", OpStatus: "status", OpDrainNode: "drain-node",
		OpListJobs: "list-jobs", OpChallenge: "challenge", OpGoAway: "go-away",
		OpNodeHello: "node-hello", OpJobProfile: "job-profile"}
	for op, name := range want {
		if op < ControlBase || op.IsReply() {
			t.Errorf("%s: opcode %#x outside the control range", name, uint8(op))
		}
		if op.String() != name || op.Reply().String() != name+"-reply" {
			t.Errorf("op %#x: %q", uint8(op), op.String())
		}
	}
	if NodeActive.String() != "active" || NodeDraining.String() != "draining" || NodeDead.String() != "dead" {
		t.Error("node state names")
	}
}

func TestControlFrame(t *testing.T) {
	b := flatbuffers.NewBuilder(0)
	meta := (&JobRef{Job: "j-1"}).Encode(b)
	frame := AppendControlFrame(nil, OpGetMap, 42, CodeOK, meta)
	lim := ControlLimits()
	h, got, err := ReadControlFrame(bufio.NewReader(bytes.NewReader(frame)), &lim, nil)
	if err != nil || h.Op != OpGetMap || h.ID != 42 || !bytes.Equal(got, meta) {
		t.Fatalf("read back: %+v %v", h, err)
	}
	// A control connection takes no payload.
	bad := AppendHeader(nil, &Header{Op: OpGetMap, PayloadLen: 1})
	if _, _, err := ReadControlFrame(bufio.NewReader(bytes.NewReader(bad)), &lim, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("payload on control frame: %v", err)
	}
	// A frame cut short is an unexpected EOF, an empty stream a clean EOF.
	if _, _, err := ReadControlFrame(bufio.NewReader(bytes.NewReader(frame[:len(frame)-1])), &lim, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v", err)
	}
	if _, _, err := ReadControlFrame(bufio.NewReader(bytes.NewReader(nil)), &lim, nil); err != io.EOF {
		t.Fatalf("empty stream: %v", err)
	}
	// A data-plane reply with a payload is read and its payload skipped.
	dl := DefaultLimits()
	withPayload := append(AppendHeader(nil, &Header{Op: OpDropJob.Reply(), MetaLen: uint32(len(meta)), PayloadLen: 3}), meta...)
	withPayload = append(withPayload, 1, 2, 3)
	withPayload = AppendControlFrame(withPayload, OpStatus, 7, CodeOK, nil)
	r := bufio.NewReader(bytes.NewReader(withPayload))
	if _, _, err := ReadControlFrame(r, &dl, nil); err != nil {
		t.Fatal(err)
	}
	if h, _, err := ReadControlFrame(r, &dl, nil); err != nil || h.ID != 7 {
		t.Fatalf("frame after a payload: %+v %v", h, err)
	}
}

// fuzzControl fuzzes one decoder: no input may panic it, and whatever it
// accepts must survive an encode/decode round trip unchanged.
func fuzzControl(f *testing.F, proto ControlMessage) {
	b := flatbuffers.NewBuilder(0)
	for _, m := range sampleControl() {
		f.Add(bytes.Clone(m.Encode(b)))
	}
	f.Add([]byte{})
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := fresh(proto)
		if m.Decode(data) != nil {
			return
		}
		again := fresh(proto)
		if err := again.Decode(bytes.Clone(m.Encode(flatbuffers.NewBuilder(0)))); err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", m, err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("%T changed in a round trip:\n%+v\n%+v", m, m, again)
		}
	})
}

func FuzzNodeRegister(f *testing.F)      { fuzzControl(f, &NodeRegister{}) }
func FuzzHeartbeat(f *testing.F)         { fuzzControl(f, &Heartbeat{}) }
func FuzzNodeAck(f *testing.F)           { fuzzControl(f, &NodeAck{}) }
func FuzzJobRegister(f *testing.F)       { fuzzControl(f, &JobRegister{}) }
func FuzzJobRef(f *testing.F)            { fuzzControl(f, &JobRef{}) }
func FuzzPlacementMap(f *testing.F)      { fuzzControl(f, &PlacementMap{}) }
func FuzzDropResult(f *testing.F)        { fuzzControl(f, &DropResult{}) }
func FuzzClusterStatus(f *testing.F)     { fuzzControl(f, &ClusterStatus{}) }
func FuzzJobList(f *testing.F)           { fuzzControl(f, &JobList{}) }
func FuzzChallenge(f *testing.F)         { fuzzControl(f, &Challenge{}) }
func FuzzDrainNode(f *testing.F)         { fuzzControl(f, &DrainNode{}) }
func FuzzNodeHello(f *testing.F)         { fuzzControl(f, &NodeHello{}) }
func FuzzJobProfileRequest(f *testing.F) { fuzzControl(f, &JobProfileRequest{}) }
func FuzzJobProfile(f *testing.F)        { fuzzControl(f, &JobProfile{}) }

// runs returns n runs of distinct jobs.
func runs(n int) []ProfileRun {
	out := make([]ProfileRun, n)
	for i := range out {
		out[i] = ProfileRun{Job: "n-" + strconv.Itoa(i+1)}
	}
	return out
}

// FuzzReadControlFrame feeds arbitrary streams to the frame reader.
func FuzzReadControlFrame(f *testing.F) {
	f.Add(AppendControlFrame(nil, OpStatus, 1, CodeOK, []byte{1, 2, 3}))
	f.Add([]byte("PK\x01\x45"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := ControlLimits()
		r := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 4; i++ {
			h, meta, err := ReadControlFrame(r, &lim, nil)
			if err != nil {
				return
			}
			if len(meta) != int(h.MetaLen) {
				t.Fatalf("meta %d bytes, header says %d", len(meta), h.MetaLen)
			}
		}
	})
}

func BenchmarkHeartbeatCodec(b *testing.B) {
	hb := sampleControl()[1].(*Heartbeat)
	fbb := flatbuffers.NewBuilder(512)
	b.ReportAllocs()
	var out Heartbeat
	for b.Loop() {
		if err := out.Decode(hb.Encode(fbb)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFullHeartbeatFits: a heartbeat at every list's limit (held jobs,
// move reports, job loads, metrics), each name at its longest, fits in
// one control frame and decodes whole.
func TestFullHeartbeatFits(t *testing.T) {
	job := func(i int) string {
		s := []byte(strings.Repeat("j", DefaultMaxJobLen))
		copy(s, strconv.Itoa(i))
		return string(s)
	}
	hb := &Heartbeat{Addr: strings.Repeat("a", MaxAddrLen), Proof: make([]byte, DefaultMaxToken),
		Tiers: make([]TierStat, MaxTiers), Metrics: make([]Metric, MaxMetrics),
		Held: make([]HeldJob, MaxHeldJobs), Moves: make([]MoveReport, MaxMoveReports), Loads: make([]JobLoad, MaxJobLoads)}
	for i := range hb.Metrics {
		hb.Metrics[i] = Metric{Name: strings.Repeat("m", MaxMetricName), Value: 1}
	}
	for i := range hb.Held {
		hb.Held[i] = HeldJob{Job: job(i), Bytes: 1 << 40}
	}
	for i := range hb.Moves {
		hb.Moves[i] = MoveReport{Job: job(i), Epoch: 1 << 40, Left: 1 << 40}
	}
	for i := range hb.Loads {
		hb.Loads[i] = JobLoad{Job: job(i), RxMbps: 1e5, TxMbps: 1e5, Bytes: 1 << 40}
	}
	meta := hb.Encode(flatbuffers.NewBuilder(0))
	if len(meta) > DefaultControlMaxMeta {
		t.Fatalf("a full heartbeat is %d bytes, over a control frame's %d", len(meta), DefaultControlMaxMeta)
	}
	var got Heartbeat
	if err := got.Decode(meta); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, hb) {
		t.Fatal("a full heartbeat changed in a round trip")
	}
	t.Logf("a full heartbeat: %d bytes of %d", len(meta), DefaultControlMaxMeta)
}

// TestFullProfileFits: a profile at every limit (MaxProfileRuns runs of
// MaxRunPhases phases, each name at its longest) fits in one control
// frame and decodes whole.
func TestFullProfileFits(t *testing.T) {
	p := &JobProfile{Name: strings.Repeat("n", DefaultMaxJobLen), Runs: runs(MaxProfileRuns)}
	for i := range p.Runs {
		p.Runs[i].Job = strings.Repeat("j", DefaultMaxJobLen-3) + strconv.Itoa(100+i)
		p.Runs[i].Phases = make([]ProfilePhase, MaxRunPhases)
	}
	meta := p.Encode(flatbuffers.NewBuilder(0))
	if len(meta) > DefaultControlMaxMeta {
		t.Fatalf("full profile: %d bytes, over the control frame's %d", len(meta), DefaultControlMaxMeta)
	}
	var got JobProfile
	if err := got.Decode(bytes.Clone(meta)); err != nil || !reflect.DeepEqual(&got, p) {
		t.Fatalf("full profile: %v", err)
	}
}

// TestJobRegisterTTLRoundsUp: a positive TTL under a millisecond goes on
// the wire as 1 ms, and others up to a whole millisecond. Before, it was
// truncated to 0, which the controller reads as "its default": without a
// --token-ttl, a token that never expires (a hostile trial: --ttl 1ns).
func TestJobRegisterTTLRoundsUp(t *testing.T) {
	for _, c := range []struct{ ttl, want time.Duration }{
		{time.Nanosecond, time.Millisecond}, {999 * time.Microsecond, time.Millisecond},
		{1500 * time.Microsecond, 2 * time.Millisecond}, {time.Second, time.Second}, {0, 0},
	} {
		b := flatbuffers.NewBuilder(0)
		var got JobRegister
		if err := got.Decode((&JobRegister{Name: "j", TTL: c.ttl}).Encode(b)); err != nil || got.TTL != c.want {
			t.Errorf("TTL %v: decoded %v, %v; want %v", c.ttl, got.TTL, err, c.want)
		}
	}
}

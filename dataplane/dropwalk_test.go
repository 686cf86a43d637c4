package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// putNVMe stores value under job/key in nv with flags, failing the test on
// an error.
func putNVMe(t *testing.T, nv *NVMe, job, key string, value []byte, flags PutFlags) {
	t.Helper()
	p, err := nv.Create([]byte(job), []byte(key), int64(len(value)), Meta{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range p.Buffers() {
		value = value[copy(b, value):]
	}
	if _, err := p.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestNVMeDropJobLetsOthersIn: the drop of a job with many keys lets the
// tier's lock go between batches, so another job's requests are served
// while it runs. On the code before, the drop held the whole tier's write
// lock for its whole walk: a hostile trial's job of 332,000 one-byte values
// held it 0.5-1.5 s when the job ended, and every event loop with an NVMe
// request waiting for it (another job's, behind which that loop's DRAM
// requests waited too) served nothing meanwhile. A reader waiting for the
// lock gets in whenever the drop lets it go, so the tier's value count is
// seen between full and empty; before, it read one or the other.
func TestNVMeDropJobLetsOthersIn(t *testing.T) {
	nv := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20}, NVMeOptions{})
	const keys = 40 * scanBatch
	for i := range keys {
		putNVMe(t, nv, "big", fmt.Sprintf("k-%06d", i), nil, 0)
	}
	putNVMe(t, nv, "other", "k", []byte("v"), 0)
	full := nv.Usage().Values
	var done atomic.Bool
	dropped := make(chan Dropped)
	go func() {
		d := nv.DropJob([]byte("big"), false)
		done.Store(true)
		dropped <- d
	}()
	between := 0
	for !done.Load() {
		if n := nv.Usage().Values; n > 1 && n < full {
			between++
		}
	}
	if d := <-dropped; d.Values != keys {
		t.Fatalf("dropped %d values, want %d", d.Values, keys)
	}
	if between == 0 {
		t.Fatal("no reader got the tier's lock while the drop ran: it held the lock for its whole walk")
	}
	if u := nv.Usage(); u.Values != 1 {
		t.Fatalf("%d values left, want 1 (the other job's)", u.Values)
	}
	if _, err := nv.Stat([]byte("other"), []byte("k")); err != nil {
		t.Fatalf("the other job's value: %v", err)
	}
}

// TestNVMeDropJobUnderWrites: keys of the job deleted and put again while
// its drop lets the lock go are looked up again when the walk reaches
// them, so no value's extents are freed twice and none is left counted:
// once the drop (keeping persistent values) and the writes end and the
// writer's keys are deleted, the tier holds exactly the persistent values.
// The walk's next key is replaced at every batch (testHookNVMeDropBatch);
// taken as the walk had it, its old version was retired twice.
func TestNVMeDropJobUnderWrites(t *testing.T) {
	nv := fileNVMe(t, nvme.Options{Size: 256 << 20, BufferPool: 16 << 20}, NVMeOptions{})
	const keys, kept, churn = 20 * scanBatch, 500, 200
	val := make([]byte, 1000)
	for i := range kept {
		putNVMe(t, nv, "j", fmt.Sprintf("k-%06d", i), val, Persist)
	}
	usedKept := nv.Usage().Used
	for i := kept; i < keys; i++ {
		putNVMe(t, nv, "j", fmt.Sprintf("k-%06d", i), val, 0)
	}
	replaced := 0
	testHookNVMeDropBatch = func(key string) {
		if info, err := nv.Delete([]byte("j"), []byte(key)); err == nil {
			putNVMe(t, nv, "j", key, val, info.Flags&Persist)
			replaced++
		}
	}
	defer func() { testHookNVMeDropBatch = nil }()
	var done atomic.Bool
	go func() {
		nv.DropJob([]byte("j"), true)
		done.Store(true)
	}()
	for r := 0; !done.Load(); r++ {
		k := fmt.Sprintf("k-%06d", kept+r%churn)
		_, _ = nv.Delete([]byte("j"), []byte(k))
		putNVMe(t, nv, "j", k, val, 0)
	}
	for i := range churn {
		_, _ = nv.Delete([]byte("j"), []byte(fmt.Sprintf("k-%06d", kept+i)))
	}
	if replaced == 0 {
		t.Fatal("no key was replaced while the drop let the lock go")
	}
	u := nv.Usage()
	if u.Values != kept {
		t.Fatalf("%d values left, want the %d persistent ones", u.Values, kept)
	}
	_ = nv.List([]byte("j"), nil, nil, func(_ []byte, info Info) bool {
		if info.Flags&Persist == 0 {
			t.Errorf("a value without persist outlived the drop: %+v", info)
		}
		return true
	})
	if u.Used != usedKept {
		t.Fatalf("tier counts %d bytes used, its persistent values took %d", u.Used, usedKept)
	}
}

// TestVersionWalkLetsOthersIn: the end of a job with many object versions
// lets the version table's lock go between batches, so every other job's
// chunk puts, which file under it, go on meanwhile. On the code before,
// the drop held it for its whole walk of every job's versions. A goroutine
// waiting for the lock gets in while the drop runs, so the table is seen
// between full and emptied of the job.
func TestVersionWalkLetsOthersIn(t *testing.T) {
	v := newVersionTable()
	defer v.close()
	const vers = 40 * scanBatch
	for i := range vers {
		ver := uint64(i + 1)
		v.add(nil, verKey{KindDRAM, "big", ver}, string(wire.AppendChunkKey(nil, []byte("k"), ver, 1)), false, 1)
	}
	v.add(nil, verKey{KindDRAM, "other", 1}, string(wire.AppendChunkKey(nil, []byte("k"), 1, 1)), false, 1)
	size := func() int {
		v.mu.Lock()
		defer v.mu.Unlock()
		return len(v.m)
	}
	var done atomic.Bool
	go func() {
		v.dropJob([]byte("big"))
		done.Store(true)
	}()
	between := 0
	for !done.Load() {
		if n := size(); n > 1 && n < vers+1 {
			between++
		}
	}
	if n := size(); n != 1 {
		t.Fatalf("%d versions left, want 1 (the other job's)", n)
	}
	if between == 0 {
		t.Fatal("no goroutine got the version table's lock while the drop ran: it held the lock for its whole walk")
	}
}

// TestDropOrderLeavesTheLoopFree: the controller's drop order runs on the
// scan lane, so the event loop that read it serves its connections while
// the drop runs: a ping sent behind the order on the same connection is
// answered while the drop is held (testHookDropUnlinked), and the order's
// reply comes after. On the code before, the order ran on the event loop:
// the ping waited for the whole drop (a hostile trial's order to drop a
// job of 332,000 NVMe values held that loop's other connections, other
// jobs' DRAM gets among them, for 0.5-1.5 s).
func TestDropOrderLeavesTheLoopFree(t *testing.T) {
	const job = "big-drop"
	// Set before the node starts its goroutines: the race detector does
	// not see the order travel through the socket.
	release, ran := make(chan struct{}), make(chan struct{})
	testHookDropUnlinked = func() {
		defer close(ran)
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	}
	defer func() { // the drop's read of the hook comes first
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
		}
		testHookDropUnlinked = nil
	}()
	n := tokenNode(t)
	holdValues(t, n, job)
	nc, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	frames := orderFrame(t, wire.FlagPrefix, dropOrder(n, n.Addr().String(), job, wire.FlagPrefix, "nonce-big-drop-01"))
	frames = wire.AppendHeader(frames, &wire.Header{Op: wire.OpPing, ID: 2})
	if _, err := nc.Write(frames); err != nil {
		t.Fatal(err)
	}
	var ops []wire.Op
	for range 2 {
		h, err := readHeader(nc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)+int64(h.PayloadLen)); err != nil {
			t.Fatal(err)
		}
		if h.Code != wire.CodeOK {
			t.Fatalf("%v answered %v", h.Op, h.Code)
		}
		ops = append(ops, h.Op)
		if h.Op == wire.OpPing.Reply() {
			close(release)
		}
	}
	if ops[0] != wire.OpPing.Reply() {
		t.Fatalf("replies came as %v: the ping waited for the drop order", ops)
	}
	if u := n.jobUsage([]byte(job)); u != 0 {
		t.Fatalf("the node holds %d bytes of the job after its drop order with every value", u)
	}
}

// TestAckDropsOffTheHeartbeat: a job an ack revokes is dropped on a
// goroutine of its own, so ApplyAck, called on the goroutine that sends
// the node's heartbeats, returns while the drop runs (held here at its
// first batch); the drop then ends and takes every value. On the code
// before, ApplyAck dropped the job itself: a drop of hundreds of
// thousands of NVMe values held the next heartbeat back for seconds, and
// a node silent for the controller's DeadAfter (3 s) is marked dead.
func TestAckDropsOffTheHeartbeat(t *testing.T) {
	nv := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20}, NVMeOptions{})
	release, held := make(chan struct{}), make(chan struct{}, 1)
	testHookNVMeDropBatch = func(string) {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}
	defer func() { testHookNVMeDropBatch = nil }()
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, NVMe: nv, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1}}, d)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "big-1", Gen: 90}))
	if err := jobOp(t, n, wire.OpPut, "big-1", "first", jobTok("big-1", 90), 0, wire.FlagTierNVMe); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * scanBatch {
		putNVMe(t, nv, "big-1", fmt.Sprintf("k-%06d", i), nil, 0)
	}
	applied := make(chan struct{})
	go func() {
		n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 101,
			Jobs: []wire.JobEpoch{{Job: "big-1", Gen: 90, Revoked: true}}})
		close(applied)
	}()
	select {
	case <-applied:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("ApplyAck waited for the revoked job's drop")
	}
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked job's drop did not start")
	}
	close(release)
	AwaitDrops(n)
	if u := nv.Usage(); u.Values != 0 {
		t.Fatalf("%d values left after the revoked job's drop", u.Values)
	}
}

// TestPutsGoToTheJobsTier: a job the controller placed on the NVMe tier
// (its entry's Tiers) has its puts to the DRAM tier refused, naming the
// tier; its NVMe puts are taken, and a job whose entry names no tier (an
// older controller) puts to either. Before, a hostile trial's job placed
// and priced on NVMe filled a node's DRAM by putting with the DRAM flag.
func TestPutsGoToTheJobsTier(t *testing.T) {
	nv := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20}, NVMeOptions{})
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, NVMe: nv, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1}}, d)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "nv-1", Gen: 90, Tiers: 1 << wire.TierNVMe}, wire.JobEpoch{Job: "any-1", Gen: 91}))
	err := jobOp(t, n, wire.OpPut, "nv-1", "k", jobTok("nv-1", 90), 0, 0)
	if !errors.Is(err, wire.ErrUnsupported) || !strings.Contains(err.Error(), "placed on the nvme tier") {
		t.Fatalf("an NVMe job's put to DRAM: %v, want refused naming its tier", err)
	}
	if err := jobOp(t, n, wire.OpPut, "nv-1", "k", jobTok("nv-1", 90), 0, wire.FlagTierNVMe); err != nil {
		t.Fatalf("an NVMe job's put to NVMe: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "nv-1", "k", jobTok("nv-1", 90), 0, wire.FlagTierNVMe); err != nil {
		t.Fatalf("an NVMe job's get: %v", err)
	}
	for _, flags := range []uint16{0, wire.FlagTierNVMe} {
		if err := jobOp(t, n, wire.OpPut, "any-1", "k", jobTok("any-1", 91), 0, flags); err != nil {
			t.Fatalf("a job of no tier's put (flags %#x): %v", flags, err)
		}
	}
	if u := d.JobUsage([]byte("nv-1")); u != 0 {
		t.Fatalf("the NVMe job holds %d bytes of DRAM", u)
	}
}

// TestBackgroundDropsAfterCloseRunOnTheCaller: once the node closes
// (bgDrops.close waits for the drops running), a drop or order that comes
// after runs on its caller, so no goroutine is added beside the close's
// wait (a sync.WaitGroup must not be added to while it is waited on).
func TestBackgroundDropsAfterCloseRunOnTheCaller(t *testing.T) {
	var b bgDrops
	b.close()
	ran := 0
	b.start("j", func() { ran++ })
	b.run(func() { ran++ })
	if ran != 2 {
		t.Fatalf("%d of 2 ran on the caller after close", ran)
	}
}

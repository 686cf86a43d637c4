package pocket

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// History checker
//
// Clients put, get and delete a handful of keys at once, small values and
// chunked objects of a few chunks, while faults are injected: operations
// cancelled after 0-3 ms, writers killed after some of their chunks (their
// versions left leased, under a 200 ms chunk lease), tiers too small for
// every put (and a put a round larger than all of them, which fills them
// until it is refused), and (TestHistoryDrain) a node drained away
// meanwhile. Every
// call and return is recorded and the history checked for linearizability
// against a register per key with porcupine, the checker etcd's robustness
// tests use. Then every key is deleted and every node must hold no byte of
// the job once the lease has passed.
//
// Values check themselves: word k (8 bytes, little-endian) of put #id is
// id<<32 | k, and each put has its own length. A get maps back to exactly
// one put, or is "bad" (torn, wrong length, never put, or a killed
// writer's), an output the model rejects, so the checker fails on it.
//
// Outcomes, as etcd's robustness tests record them:
//
//   - a put or delete that returned an error may or may not have happened
//     (a cancelled request can still run on its node): it returns at the
//     end of time (math.MaxInt64), with an output the model accepts; a put
//     whose value a get returned returns, instead, when that get did;
//   - a put refused for space (ErrNoSpace) certainly did not happen and is
//     left out;
//   - a failed get observed nothing and is left out.
//
// The run goes in rounds of fresh keys (so every key's history stays small
// enough to check): short by default, POCKET_HISTORY_LONG=1 (or
// -history.long) for a minute with more clients. A failed check writes
// porcupine's visualization to a temporary file and names it; bytes left
// behind are listed by chunk version, with the put that wrote them and
// what replaced it.

var historyLong = flag.Bool("history.long", false, "run the history tests for a minute with more clients (also POCKET_HISTORY_LONG=1)")

func histLongMode() bool { return *historyLong || os.Getenv("POCKET_HISTORY_LONG") == "1" }

var historySeed = flag.Uint64("history.seed", 0, "seed of the history tests' clients, as a failed run logs it (0: from the clock; also POCKET_HISTORY_SEED)")

// histSeed is a history run's seed, logged: -history.seed, else
// POCKET_HISTORY_SEED, else the clock. It replays each client's choices
// (keys, operations, sizes, which are cancelled and after how long), not
// the run: the interleaving, and when the map changes, vary.
func histSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *historySeed
	if env := os.Getenv("POCKET_HISTORY_SEED"); seed == 0 && env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("POCKET_HISTORY_SEED=%q: want a decimal seed as a run logs it: %v", env, err)
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", seed)
	return seed
}

type histKind uint8

const (
	histPut histKind = iota
	histGet
	histDel
)

// histIn is an operation's input: a put carries its value's id and length.
type histIn struct {
	Kind histKind
	Key  string
	ID   int64
	Len  int
}

// histOut is an operation's output.
type histOut struct {
	Unknown bool   // put or delete that failed: it may or may not have happened
	Found   bool   // delete: there was a value
	ID      int64  // get: the put read (0: none)
	Bad     string // get: what is wrong with the bytes read; the model rejects it
}

// histModel is a register per key: the state is the id of the put the key
// holds, 0 for none.
var histModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(histIn).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return int64(0) },
	Hash: func(state any) uint64 { return uint64(state.(int64)) },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(int64), input.(histIn), output.(histOut)
		switch in.Kind {
		case histPut:
			return true, in.ID
		case histGet:
			return out.Bad == "" && out.ID == s, s
		default:
			return out.Unknown || out.Found == (s != 0), int64(0)
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(histIn), output.(histOut)
		switch in.Kind {
		case histPut:
			s := fmt.Sprintf("put(%s, #%d %dB)", in.Key, in.ID, in.Len)
			if out.Unknown {
				s += " -> ?"
			}
			return s
		case histGet:
			switch {
			case out.Bad != "":
				return fmt.Sprintf("get(%s) -> BAD #%d: %s", in.Key, out.ID, out.Bad)
			case out.ID == 0:
				return fmt.Sprintf("get(%s) -> none", in.Key)
			}
			return fmt.Sprintf("get(%s) -> #%d", in.Key, out.ID)
		default:
			switch {
			case out.Unknown:
				return fmt.Sprintf("delete(%s) -> ?", in.Key)
			case out.Found:
				return fmt.Sprintf("delete(%s) -> ok", in.Key)
			}
			return fmt.Sprintf("delete(%s) -> not found", in.Key)
		}
	},
	DescribeState: func(state any) string {
		if s := state.(int64); s != 0 {
			return fmt.Sprintf("#%d", s)
		}
		return "none"
	},
}

// histValue is put #id's value of n bytes (n >= 8).
func histValue(id int64, n int) []byte {
	b := make([]byte, n+7)
	for off, k := 0, uint64(0); off < n; off, k = off+8, k+1 {
		binary.LittleEndian.PutUint64(b[off:], uint64(id)<<32|k)
	}
	return b[:n:n]
}

// histLog is a run's record: the operations, and every value written.
type histLog struct {
	start  time.Time
	nextID atomic.Int64

	mu   sync.Mutex
	ops  []porcupine.Operation
	lens map[int64]int    // put id -> length
	dead map[int64]bool   // ids a killed writer wrote chunks of
	outc map[int64]string // put id -> how it ended (for leak reports)
	next map[int64]string // put id -> what replaced it in the checker's linearization

	// counts, for the log
	puts, putsUnknown, putsNoSpace                     atomic.Int64
	gets, getsNone, getsFailed, getsCancelled, getsBad atomic.Int64
	dels, delsUnknown, killedWriters, killedChunks     atomic.Int64
	firstErrs                                          sync.Map // error class -> first error
	chunkedPuts, chunkedPutsOK, chunkedPutsNoSpace     atomic.Int64
}

func newHistLog() *histLog {
	return &histLog{start: time.Now(), lens: map[int64]int{}, dead: map[int64]bool{}, outc: map[int64]string{}, next: map[int64]string{}}
}

func (h *histLog) now() int64 { return int64(time.Since(h.start)) }

// newValue registers a put of n bytes, or a killed writer's, and returns
// its id and value.
func (h *histLog) newValue(n int, dead bool) (int64, []byte) {
	id := h.nextID.Add(1)
	h.mu.Lock()
	if dead {
		h.dead[id] = true
	} else {
		h.lens[id] = n
	}
	h.mu.Unlock()
	return id, histValue(id, n)
}

// ended notes how put #id ended.
func (h *histLog) ended(id int64, how string) {
	h.mu.Lock()
	h.outc[id] = how
	h.mu.Unlock()
}

// explain says how put #id ended and how many puts and deletes of its key
// called after it have an unknown outcome. Those are failed or cancelled
// calls, which still drop what they replaced when their reply comes (on a
// context of their own), so a count above 0 does not explain a leak: only
// a reply that never came does (the package doc's lost reply to step 4).
// The one leak traced so far was a drop that went on over a map that had
// changed under it (TestDropSpansMapChange).
func (h *histLog) explain(id int64) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead[id] {
		return fmt.Sprintf("put #%d, a killed writer's, leased", id)
	}
	i := slices.IndexFunc(h.ops, func(op porcupine.Operation) bool {
		in := op.Input.(histIn)
		return in.Kind == histPut && in.ID == id
	})
	if i < 0 {
		return fmt.Sprintf("put #%d (%s), not in the history", id, h.outc[id])
	}
	in, call := h.ops[i].Input.(histIn), h.ops[i].Call
	unknown := 0
	for _, op := range h.ops {
		if k := op.Input.(histIn); k.Key == in.Key && k.Kind != histGet && op.Call > call && op.Output.(histOut).Unknown {
			unknown++
		}
	}
	next := h.next[id]
	if next == "" {
		next = "nothing: the key's last value, deleted by the cleanup"
	}
	return fmt.Sprintf("put #%d of %s (%s), replaced in the checker's linearization by %s; puts and deletes of %s of unknown outcome after it: %d",
		id, in.Key, h.outc[id], next, in.Key, unknown)
}

func (h *histLog) record(client int, in histIn, out histOut, call, ret int64) {
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// decode names the put a get read, or says what is wrong with it.
func (h *histLog) decode(b []byte) (int64, string) {
	if len(b) < 8 {
		return 0, fmt.Sprintf("%d bytes: no put was that short", len(b))
	}
	id := int64(binary.LittleEndian.Uint64(b) >> 32)
	h.mu.Lock()
	n, ok := h.lens[id]
	dead := h.dead[id]
	h.mu.Unlock()
	switch {
	case dead:
		return id, "bytes of a killed writer's unpublished version"
	case !ok:
		return id, "bytes no put wrote"
	case len(b) != n:
		return id, fmt.Sprintf("%d bytes, the put wrote %d", len(b), n)
	}
	want := histValue(id, n)
	for off := 0; off < n; off += 8 {
		hi := min(off+8, n)
		if string(b[off:hi]) != string(want[off:hi]) {
			var w [8]byte
			copy(w[:], b[off:hi])
			return id, fmt.Sprintf("torn: byte %d holds put #%d's word %d", off, binary.LittleEndian.Uint64(w[:])>>32, uint32(binary.LittleEndian.Uint64(w[:])))
		}
	}
	return id, ""
}

// noteErr keeps the first error of each class for the log.
func (h *histLog) noteErr(class string, err error) {
	h.firstErrs.LoadOrStore(class, err)
}

// check checks the history and fails unless it is linearizable.
func (h *histLog) check(t *testing.T, timeout time.Duration) {
	t.Helper()
	if res, vis := h.verdict(t, timeout); res != porcupine.Ok {
		t.Fatalf("history is %s; visualization: %s", histResult(res), vis)
	}
}

// verdict checks the history; unless it is linearizable it writes
// porcupine's visualization to a temporary file and returns its path.
func (h *histLog) verdict(t *testing.T, timeout time.Duration) (porcupine.CheckResult, string) {
	t.Helper()
	h.mu.Lock()
	ops := histPinObserved(slices.Clone(h.ops))
	h.mu.Unlock()
	t0 := time.Now()
	res, info := porcupine.CheckOperationsVerbose(histModel, ops, timeout)
	t.Logf("checked %d operations in %v: %s", len(ops), time.Since(t0).Round(time.Millisecond), histResult(res))
	if res == porcupine.Ok {
		h.noteSuccessors(info)
		return res, ""
	}
	f, err := os.CreateTemp("", "pocket-history-*.html")
	if err != nil {
		t.Logf("visualization: %v", err)
		return res, "(none)"
	}
	defer f.Close()
	if err := porcupine.Visualize(histModel, info, f); err != nil {
		t.Logf("visualization: %v", err)
	}
	return res, f.Name()
}

// noteSuccessors notes, from the checker's linearization of each key,
// which put or delete came after each put: the operation that replaced or
// removed its value (for leak reports).
func (h *histLog) noteSuccessors(info porcupine.LinearizationInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, lins := range info.PartialLinearizationsOperations() {
		if len(lins) == 0 {
			continue
		}
		var last int64
		for _, op := range lins[0] {
			in, out := op.Input.(histIn), op.Output.(histOut)
			if in.Kind == histGet {
				continue
			}
			if last != 0 {
				h.next[last] = histModel.DescribeOperation(in, out)
				if in.Kind == histPut {
					h.next[last] += " (" + h.outc[in.ID] + ")"
				}
			}
			last = 0
			if in.Kind == histPut {
				last = in.ID
			}
		}
	}
}

// histPinObserved gives a put of unknown outcome whose value some get
// returned the earliest such get's return as its own: it happened, and
// before then. Sound, and it spares the checker from trying it everywhere
// up to the end of the history. Puts whose value nobody read keep an open
// end.
func histPinObserved(ops []porcupine.Operation) []porcupine.Operation {
	seen := map[int64]int64{} // put id -> earliest return of a get of it
	for _, op := range ops {
		if in, out := op.Input.(histIn), op.Output.(histOut); in.Kind == histGet && out.ID != 0 && out.Bad == "" {
			if r, ok := seen[out.ID]; !ok || op.Return < r {
				seen[out.ID] = op.Return
			}
		}
	}
	for i, op := range ops {
		in, out := op.Input.(histIn), op.Output.(histOut)
		if r, ok := seen[in.ID]; ok && in.Kind == histPut && out.Unknown && r >= op.Call {
			ops[i].Return = r
		}
	}
	return ops
}

func histResult(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Illegal:
		return "NOT linearizable"
	}
	return "unknown (the check timed out)"
}

func (h *histLog) summary(t *testing.T) {
	t.Logf("puts %d (chunked %d: %d ok, %d refused for space; all: %d unknown outcome, %d refused), gets %d (%d none, %d BAD, %d cancelled, %d failed otherwise), deletes %d (%d unknown), killed writers %d (%d chunks)",
		h.puts.Load(), h.chunkedPuts.Load(), h.chunkedPutsOK.Load(), h.chunkedPutsNoSpace.Load(), h.putsUnknown.Load(), h.putsNoSpace.Load(),
		h.gets.Load(), h.getsNone.Load(), h.getsBad.Load(), h.getsCancelled.Load(), h.getsFailed.Load(),
		h.dels.Load(), h.delsUnknown.Load(), h.killedWriters.Load(), h.killedChunks.Load())
	h.firstErrs.Range(func(k, v any) bool {
		t.Logf("first %s: %v", k, v)
		return true
	})
}

// histParams size a run.
type histParams struct {
	clients   int           // concurrent clients per round
	keys      int           // keys per round
	roundLen  time.Duration // each round's length
	duration  time.Duration // the run's length (rounds until it is over)
	maxOps    int           // per client and round
	huge      int           // bytes of a put too large for the tiers (0: none)
	cancelP   float64       // share of operations cancelled after 0-3 ms
	chunk     int64         // the SDK's chunk size
	killers   int           // killed writers per round
	checkTime time.Duration // porcupine's budget
}

func histShortOrLong() histParams {
	p := histParams{clients: 4, keys: 3, roundLen: 500 * time.Millisecond, duration: time.Second, maxOps: 150,
		cancelP: 0.15, chunk: 16 << 10, killers: 1, checkTime: time.Minute}
	if histLongMode() {
		// More clients, rounds of as many operations per key as the
		// short run's, so that each key's history stays quick to check.
		p.clients, p.keys, p.duration, p.maxOps, p.killers, p.checkTime = 12, 4, time.Minute, 40, 2, 10*time.Minute
	}
	return p
}

// histSize picks a put's length: small values, values at the chunk size,
// and objects of 2 to 5 chunks.
func histSize(rng *rand.Rand, cs int) int {
	switch r := rng.IntN(20); {
	case r < 7:
		return 8 + rng.IntN(2048)
	case r < 9:
		return cs - 8 + rng.IntN(17) // cs-8 .. cs+8: one record or two chunks
	default:
		return cs + 1 + rng.IntN(4*cs)
	}
}

// histRound runs one round: clients and killed writers on fresh keys
// until the round's deadline. Every operation has returned (or been
// abandoned by its caller) when it returns.
func histRound(j *Job, h *histLog, p histParams, round int, seed uint64) []string {
	return histRoundOn([]*Job{j}, h, p, round, seed)
}

// histRoundOn is histRound with client c (and killed writer k) using
// js[c % len(js)]: handles of one job on separate stores, each with its
// own copy of the map.
func histRoundOn(js []*Job, h *histLog, p histParams, round int, seed uint64) []string {
	keys := make([]string, p.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("hist/r%d/k%d", round, i)
	}
	deadline := time.Now().Add(p.roundLen)
	var wg sync.WaitGroup
	for c := 0; c < p.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := js[c%len(js)]
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			for i := 0; i < p.maxOps && time.Now().Before(deadline); i++ {
				key := keys[rng.IntN(len(keys))]
				if p.huge > 0 && c == 0 && i == 3 {
					// One put a round fills the tiers up, chunk by
					// chunk, until it is refused and aborted; puts
					// meanwhile may be refused too.
					h.put(context.Background(), j, c, key, p.huge, p.chunk)
					continue
				}
				histOne(j, h, p, rng, c, key)
			}
		}()
	}
	for k := 0; k < p.killers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := js[k%len(js)]
			rng := rand.New(rand.NewPCG(seed, uint64(1000+k)))
			for time.Now().Before(deadline) {
				histKilledWriter(j, h, p, rng, keys[rng.IntN(len(keys))])
				time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return keys
}

// histKilledWriter writes some, never all, chunks of a new version of key
// and dies: no confirm, no manifest, no abort. The node's lease reclaims
// them.
func histKilledWriter(j *Job, h *histLog, p histParams, rng *rand.Rand, key string) {
	cs := int(p.chunk)
	n := 2 + rng.IntN(4)
	k := 1 + rng.IntN(n-1)
	_, val := h.newValue(n*cs, true)
	w := j.newObject(key, 0)
	h.killedWriters.Add(1)
	for i := 1; i <= k; i++ {
		if w.putChunk(context.Background(), i, val[(i-1)*cs:i*cs]) == nil {
			h.killedChunks.Add(1)
		}
	}
}

// histOne runs and records one operation of client c.
func histOne(j *Job, h *histLog, p histParams, rng *rand.Rand, c int, key string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if rng.Float64() < p.cancelP {
		t := time.AfterFunc(time.Duration(rng.Int64N(int64(3*time.Millisecond))), cancel)
		defer t.Stop()
	}
	switch r := rng.IntN(10); {
	case r < 4:
		h.put(ctx, j, c, key, histSize(rng, int(p.chunk)), p.chunk)
	case r < 8:
		h.get(ctx, j, c, key)
	default:
		h.del(ctx, j, c, key)
	}
}

// put puts a new value of n bytes under key and records it.
func (h *histLog) put(ctx context.Context, j *Job, c int, key string, n int, chunk int64) {
	id, val := h.newValue(n, false)
	in := histIn{Kind: histPut, Key: key, ID: id, Len: n}
	chunked := int64(n) > chunk
	h.puts.Add(1)
	if chunked {
		h.chunkedPuts.Add(1)
	}
	call := h.now()
	err := j.Put(ctx, key, val)
	ret := h.now()
	switch {
	case err == nil:
		if chunked {
			h.chunkedPutsOK.Add(1)
		}
		h.ended(id, "succeeded")
		h.record(c, in, histOut{}, call, ret)
	case errors.Is(err, ErrNoSpace):
		// Refused: certainly no effect, so left out.
		h.putsNoSpace.Add(1)
		if chunked {
			h.chunkedPutsNoSpace.Add(1)
		}
		h.noteErr("put refused for space", err)
		h.ended(id, "refused: "+err.Error())
	default:
		h.putsUnknown.Add(1)
		if ctx.Err() == nil {
			h.noteErr("failed put (not cancelled)", err)
		}
		h.ended(id, "failed: "+err.Error())
		h.record(c, in, histOut{Unknown: true}, call, math.MaxInt64)
	}
}

// get reads key and records what it read.
func (h *histLog) get(ctx context.Context, j *Job, c int, key string) {
	in := histIn{Kind: histGet, Key: key}
	h.gets.Add(1)
	call := h.now()
	got, err := j.Get(ctx, key)
	ret := h.now()
	switch {
	case err == nil:
		id, bad := h.decode(got)
		if bad != "" {
			h.getsBad.Add(1)
			h.noteErr("bad get", fmt.Errorf("get %s -> #%d: %s", key, id, bad))
		}
		h.record(c, in, histOut{ID: id, Bad: bad}, call, ret)
	case errors.Is(err, ErrNotFound):
		h.getsNone.Add(1)
		h.record(c, in, histOut{}, call, ret)
	case ctx.Err() != nil:
		h.getsCancelled.Add(1)
	default:
		h.getsFailed.Add(1)
		h.noteErr("failed get (not cancelled)", err)
	}
}

// del deletes key and records the outcome.
func (h *histLog) del(ctx context.Context, j *Job, c int, key string) {
	in := histIn{Kind: histDel, Key: key}
	h.dels.Add(1)
	call := h.now()
	err := j.Delete(ctx, key)
	ret := h.now()
	switch {
	case err == nil:
		h.record(c, in, histOut{Found: true}, call, ret)
	case errors.Is(err, ErrNotFound):
		h.record(c, in, histOut{}, call, ret)
	default:
		h.delsUnknown.Add(1)
		if ctx.Err() == nil {
			h.noteErr("failed delete (not cancelled)", err)
		}
		h.record(c, in, histOut{Unknown: true}, call, math.MaxInt64)
	}
}

// histDeleteAll deletes keys (not recorded: every recorded operation on
// them has returned).
func histDeleteAll(t *testing.T, j *Job, keys []string) {
	t.Helper()
	for _, k := range keys {
		err := j.Delete(context.Background(), k)
		for try := 0; try < 3 && err != nil && !errors.Is(err, ErrNotFound); try++ {
			t.Logf("cleanup: %v (again)", err)
			err = j.Delete(context.Background(), k)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// histNoLeak waits (bounded) for every tier to hold no byte of job, and
// fails naming what is left, and whose bytes it holds.
func histNoLeak(t *testing.T, h *histLog, job string, tiers []dataplane.Tier, within time.Duration) {
	t.Helper()
	if left := histLeftovers(h, job, tiers, within); left != "" {
		t.Fatalf("bytes left %v after deleting every key:\n%s", within, left)
	}
}

// histLeftovers waits (bounded) for every tier to hold no byte of job,
// and then says what is left ("" for nothing), and whose bytes it holds.
func histLeftovers(h *histLog, job string, tiers []dataplane.Tier, within time.Duration) string {
	empty := func(tier dataplane.Tier) bool {
		u := tier.Usage()
		return u.Used == 0 && u.Values == 0 && tier.JobUsage([]byte(job)) == 0
	}
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if !slices.ContainsFunc(tiers, func(tier dataplane.Tier) bool { return !empty(tier) }) {
			return ""
		}
		if time.Now().After(deadline) {
			break
		}
	}
	// What is left, by chunk version; chunks name their put in their
	// first word.
	type piece struct {
		tier int
		key  []byte
		size int64
	}
	byVer := map[uint64][]piece{}
	ids := map[uint64]int64{}
	var left []string
	for i, tier := range tiers {
		if empty(tier) {
			continue
		}
		u := tier.Usage()
		left = append(left, fmt.Sprintf("tier %d: %d values, %d bytes used, %d bytes of the job", i, u.Values, u.Used, tier.JobUsage([]byte(job))))
		var keys [][]byte
		_ = tier.List([]byte(job), nil, nil, func(key []byte, _ dataplane.Info) bool {
			keys = append(keys, slices.Clone(key))
			return true
		})
		for _, key := range keys {
			v, err := tier.Open([]byte(job), key)
			if err != nil {
				continue
			}
			var head []byte
			for _, seg := range v.Segments() {
				head = append(head, seg[:min(len(seg), 8-len(head))]...)
			}
			if len(head) == 8 {
				ids[v.Version()] = int64(binary.LittleEndian.Uint64(head) >> 32)
			}
			byVer[v.Version()] = append(byVer[v.Version()], piece{i, key, v.Size()})
			v.Release()
		}
	}
	for ver, ps := range byVer {
		var where []string
		for _, p := range ps {
			where = append(where, fmt.Sprintf("%q (%d B) on tier %d", p.key, p.size, p.tier))
		}
		who := "bytes of no known put"
		if id, ok := ids[ver]; ok {
			who = h.explain(id)
		}
		left = append(left, fmt.Sprintf("version %016x: %s:\n\t%s", ver, who, strings.Join(where, "\n\t")))
	}
	return strings.Join(left, "\n")
}

// histCluster starts n DRAM nodes of capacity bytes in slab pages of 64
// KiB (fine-grained enough that a small tier fills up value by value),
// with a short chunk lease.
func histCluster(t *testing.T, n int, capacity int64, lease time.Duration) ([]string, []dataplane.Tier) {
	t.Helper()
	var addrs []string
	var tiers []dataplane.Tier
	for i := 0; i < n; i++ {
		d, err := dataplane.NewDRAM(capacity, dataplane.DRAMOptions{PageSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
		if err != nil {
			t.Fatal(err)
		}
		nd.SetChunkLease(lease)
		t.Cleanup(func() {
			nd.Close()
			d.Close()
		})
		addrs = append(addrs, nd.Addr().String())
		tiers = append(tiers, d)
	}
	return addrs, tiers
}

const histLease = 200 * time.Millisecond

// histTierBytes is each node's DRAM in TestHistoryLinearizable: twelve
// 64 KiB slab pages, enough for a round's keys and the puts in flight most
// of the time, not always; a put of 3*histTierBytes never fits.
const histTierBytes = 768 << 10

// histMoreFor bounds how much longer than its duration a history run
// goes on to meet every fault it checks it met: on a loaded CI machine
// the short run's one second once made 21 operations, none a put of
// unknown outcome, and failed that check.
const histMoreFor = 15 * time.Second

// exercised reports whether the run has met the faults every history run
// checks it met: a chunked put that succeeded, a put of unknown outcome
// and a killed writer's chunks.
func (h *histLog) exercised() bool {
	return h.chunkedPutsOK.Load() > 0 && h.putsUnknown.Load() > 0 && h.killedChunks.Load() > 0
}

// TestHistoryLinearizable: concurrent puts, gets and deletes of small and
// chunked values with cancellations, killed writers and tiers too small
// for every put are linearizable, and leave no byte behind.
func TestHistoryLinearizable(t *testing.T) {
	p := histShortOrLong()
	p.huge = 3 * histTierBytes
	addrs, tiers := histCluster(t, 3, histTierBytes, histLease)
	j := staticJob(t, Config{ChunkSize: p.chunk, Parallel: 4}, addrs)
	h := newHistLog()
	var all []string
	seed := histSeed(t)
	exercised := func() bool { return h.exercised() && h.putsNoSpace.Load() > 0 }
	for r := 0; time.Since(h.start) < p.duration || !exercised() && time.Since(h.start) < p.duration+histMoreFor; r++ {
		keys := histRound(j, h, p, r, seed+uint64(r))
		histDeleteAll(t, j, keys) // room for the next round
		all = append(all, keys...)
	}
	h.summary(t)
	if !exercised() {
		t.Errorf("the run did not exercise its faults: %d chunked puts succeeded, %d puts of unknown outcome, %d chunks of killed writers, %d puts refused for space",
			h.chunkedPutsOK.Load(), h.putsUnknown.Load(), h.killedChunks.Load(), h.putsNoSpace.Load())
	}
	if 2*h.chunkedPutsNoSpace.Load() > h.chunkedPuts.Load() {
		t.Logf("%d of %d chunked puts refused for space: the tiers filled up (with leaked bytes?)", h.chunkedPutsNoSpace.Load(), h.chunkedPuts.Load())
	}
	histVerdict(t, h, p, j, all, tiers)
}

// histVerdict checks the history, then deletes every key and checks that
// no byte of the job is left once the chunk lease has passed.
func histVerdict(t *testing.T, h *histLog, p histParams, j *Job, keys []string, tiers []dataplane.Tier) {
	t.Run("linearizable", func(t *testing.T) { h.check(t, p.checkTime) })
	t.Run("no leaked bytes", func(t *testing.T) {
		time.Sleep(histLease) // requests of cancelled calls still arriving, leases running out
		histDeleteAll(t, j, keys)
		histNoLeak(t, h, j.ID(), tiers, 10*histLease+5*time.Second)
	})
}

// TestHistoryDrain is TestHistoryLinearizable (without the full tier)
// while the fullest node is drained away through the controller.
func TestHistoryDrain(t *testing.T) {
	p := histShortOrLong()
	ctl, addr, nodes := startDrainCluster(t, 3, 64<<20)
	for _, n := range nodes {
		n.node.SetChunkLease(histLease)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.duration+time.Minute)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: p.chunk, Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "history", Hints{PeakMbps: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.Map().Nodes); n != 3 {
		t.Fatalf("job on %d nodes, want 3", n)
	}
	h := newHistLog()
	seed := histSeed(t)

	// The drain starts a little into the run, of the node holding most.
	var drained atomic.Bool
	var drainErr error
	var victim *drainNode
	drainDone := make(chan struct{})
	go func() {
		defer close(drainDone)
		time.Sleep(min(p.roundLen/2, p.duration/4))
		victim = fullest(nodes)
		a := victim.node.Addr().String()
		if _, err := ctl.Drain(a, 30*time.Second); err != nil {
			drainErr = err
			return
		}
		for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			gone := true
			for _, n := range ctl.Status().Nodes {
				gone = gone && n.Addr != a
			}
			if gone {
				drained.Store(true)
				return
			}
		}
		drainErr = fmt.Errorf("node %s did not leave in 40 s", a)
	}()

	var all []string
	drainedAt := -1
	for r := 0; ; r++ {
		if drained.Load() && drainedAt < 0 {
			drainedAt = r
		}
		// Until the drain is over and one more round has run on the map
		// after it, and at least p.duration, and (for at most
		// histMoreFor more) every fault has been met.
		if time.Since(h.start) >= p.duration && drainedAt >= 0 && r > drainedAt &&
			(h.exercised() || time.Since(h.start) >= p.duration+histMoreFor) {
			break
		}
		select {
		case <-drainDone:
			if drainErr != nil {
				t.Fatal(drainErr)
			}
		default:
		}
		keys := histRound(j, h, p, r, seed+uint64(r))
		histDeleteAll(t, j, keys)
		all = append(all, keys...)
	}
	<-drainDone
	t.Logf("node %s drained during round %d", victim.node.Addr(), drainedAt-1)
	h.summary(t)
	if !h.exercised() {
		t.Errorf("the run did not exercise its faults: %d chunked puts succeeded, %d puts of unknown outcome, %d chunks of killed writers",
			h.chunkedPutsOK.Load(), h.putsUnknown.Load(), h.killedChunks.Load())
	}
	var tiers []dataplane.Tier
	for _, n := range nodes {
		tiers = append(tiers, n.tier)
	}
	histVerdict(t, h, p, j, all, tiers)
}

// TestHistoryCheckerCatches: the checker is not vacuous. Hand-made
// histories with a value never put, a torn or truncated value, a killed
// writer's bytes, a stale read, a read after a delete and a delete that
// finds nothing where a value is are not linearizable; concurrent and
// unknown-outcome operations are. A torn object served by real nodes
// (published on purpose from chunks of two puts) is caught end to end,
// and so are chunks no drop reached (the leak check names their version
// and put; a put then a delete leave nothing for it to name).
func TestHistoryCheckerCatches(t *testing.T) {
	const cs = 16 << 10
	type op struct {
		in        histIn
		out       histOut
		call, ret int64
	}
	put := func(id int64, call, ret int64) op {
		return op{histIn{Kind: histPut, Key: "k", ID: id, Len: 40 << 10}, histOut{}, call, ret}
	}
	unknownPut := func(id int64, call int64) op {
		return op{histIn{Kind: histPut, Key: "k", ID: id, Len: 40 << 10}, histOut{Unknown: true}, call, math.MaxInt64}
	}
	del := func(found bool, call, ret int64) op {
		return op{histIn{Kind: histDel, Key: "k"}, histOut{Found: found}, call, ret}
	}
	// get decodes b as a recorded get would.
	var h0 *histLog
	get := func(b []byte, call, ret int64) op {
		out := histOut{}
		if b != nil {
			out.ID, out.Bad = h0.decode(b)
		}
		return op{histIn{Kind: histGet, Key: "k"}, out, call, ret}
	}
	a := histValue(1, 40<<10)
	b := histValue(2, 40<<10)
	torn := slices.Concat(a[:cs], b[cs:])
	cases := []struct {
		name string
		ok   bool
		ops  func() []op
	}{
		{"value never put", false, func() []op { return []op{put(1, 0, 10), get(histValue(99, 100), 20, 30)} }},
		{"torn object", false, func() []op { return []op{put(1, 0, 10), put(2, 0, 10), get(torn, 20, 30)} }},
		{"truncated object", false, func() []op { return []op{put(1, 0, 10), get(a[:cs], 20, 30)} }},
		{"killed writer's bytes", false, func() []op { return []op{put(1, 0, 10), get(histValue(3, 3*cs), 20, 30)} }},
		{"stale read", false, func() []op { return []op{put(1, 0, 10), put(2, 20, 30), get(a, 40, 50)} }},
		{"read after delete", false, func() []op { return []op{put(1, 0, 10), del(true, 20, 30), get(a, 40, 50)} }},
		{"delete finds nothing", false, func() []op { return []op{put(1, 0, 10), del(false, 20, 30)} }},
		{"lost then found", false, func() []op { return []op{put(1, 0, 10), get(nil, 20, 30), get(a, 40, 50)} }},
		{"concurrent", true, func() []op {
			return []op{put(1, 0, 100), get(nil, 10, 20), get(a, 30, 40), put(2, 35, 60), get(a, 50, 55), get(b, 70, 80), del(true, 90, 95)}
		}},
		{"unknown outcomes", true, func() []op {
			return []op{put(1, 0, 10), unknownPut(2, 20), get(a, 30, 40), get(b, 50, 60),
				{histIn{Kind: histDel, Key: "k"}, histOut{Unknown: true}, 70, math.MaxInt64}, get(nil, 80, 90), get(nil, 100, 110)}
		}},
	}
	t.Run("decode", func(t *testing.T) {
		h := newHistLog()
		h.newValue(40<<10, false)
		h.newValue(40<<10, false)
		for _, c := range []struct {
			b    []byte
			id   int64
			want string
		}{{a, 1, ""}, {b, 2, ""}, {torn, 1, "torn: byte 16384 holds put #2's word 2048"}, {a[:cs], 1, "16384 bytes, the put wrote 40960"},
			{histValue(7, 10), 7, "bytes no put wrote"}, {a[:5], 0, "5 bytes: no put was that short"}} {
			if id, bad := h.decode(c.b); id != c.id || bad != c.want {
				t.Errorf("decode: #%d %q, want #%d %q", id, bad, c.id, c.want)
			}
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHistLog()
			h0 = h
			h.newValue(40<<10, false) // #1
			h.newValue(40<<10, false) // #2
			h.newValue(3*cs, true)    // #3, a killed writer's
			for _, o := range c.ops() {
				h.record(0, o.in, o.out, o.call, o.ret)
			}
			res, vis := h.verdict(t, 10*time.Second)
			if vis != "" {
				if fi, err := os.Stat(vis); err != nil || fi.Size() == 0 {
					t.Errorf("visualization %s: %v", vis, err)
				}
				os.Remove(vis)
			}
			if want := map[bool]porcupine.CheckResult{true: porcupine.Ok, false: porcupine.Illegal}[c.ok]; res != want {
				t.Fatalf("checker says %s, want %s", histResult(res), histResult(want))
			}
		})
	}

	t.Run("leaked chunks caught", func(t *testing.T) {
		// A put and a delete leave nothing; a confirmed version that no
		// manifest names and no drop reached (a drop that missed a node)
		// is named, with the put that wrote it.
		addrs, tiers := histCluster(t, 3, 4<<20, histLease)
		j := staticJob(t, Config{ChunkSize: cs}, addrs)
		h := newHistLog()
		ctx := context.Background()
		h.put(ctx, j, 0, "k", 3*cs, cs)
		h.del(ctx, j, 0, "k")
		if left := histLeftovers(h, j.ID(), tiers, 2*histLease); left != "" {
			t.Fatalf("a put and a delete left:\n%s", left)
		}
		id, val := h.newValue(3*cs, false)
		h.record(0, histIn{Kind: histPut, Key: "k", ID: id, Len: 3 * cs}, histOut{}, h.now(), h.now())
		w := j.newObject("k", 0)
		for i := 1; i <= 3; i++ {
			if err := w.putChunk(ctx, i, val[(i-1)*cs:i*cs]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.confirm(ctx); err != nil {
			t.Fatal(err)
		}
		left := histLeftovers(h, j.ID(), tiers, 2*histLease)
		if want := fmt.Sprintf("version %016x: put #%d of k", w.ver, id); !strings.Contains(left, want) {
			t.Fatalf("leftovers after the lease:\n%s\nwant them named %q", left, want)
		}
	})

	t.Run("torn object served", func(t *testing.T) {
		addrs, _ := histCluster(t, 3, 4<<20, histLease)
		j := staticJob(t, Config{ChunkSize: cs}, addrs)
		h := newHistLog()
		ctx := context.Background()
		id1, v1 := h.newValue(3*cs, false)
		_, v2 := h.newValue(3*cs, false)
		// A buggy writer: put #1's chunks 1 and 3 and put #2's chunk 2
		// under one version, published.
		w := j.newObject("k", 0)
		for i, part := range [][]byte{v1[:cs], v2[cs : 2*cs], v1[2*cs:]} {
			if err := w.putChunk(ctx, i+1, part); err != nil {
				t.Fatal(err)
			}
		}
		call := h.now()
		if err := w.commit(ctx, wire.Manifest{Version: w.ver, Size: 3 * cs, Chunk: cs, Count: 3}); err != nil {
			t.Fatal(err)
		}
		h.record(0, histIn{Kind: histPut, Key: "k", ID: id1, Len: 3 * cs}, histOut{}, call, h.now())
		h.get(ctx, j, 1, "k")
		if h.gets.Load() != 1 || h.getsNone.Load() != 0 || h.getsFailed.Load() != 0 {
			t.Fatalf("the get of the torn object failed: %+v", h.ops)
		}
		res, vis := h.verdict(t, 10*time.Second)
		os.Remove(vis)
		if res != porcupine.Illegal {
			t.Fatalf("a torn object served: checker says %s", histResult(res))
		}
	})
}

package main

// `pocket job show JOBID`: a tenant's view of its own job, by the job's
// token (issue 15: elastic jobs, whose map grows and shrinks while they
// run). pocket status is the operator's view of the whole cluster.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	registerSub("job show", "JOBID", "show a job's placement map by its token (as pocket ls): its tier, epoch and nodes with their state, "+
		"the nodes it lost, whether it has ended, and the bytes its values take")
	helpMore["job show"] = jobShowHelp
}

// jobShowHelp explains the output of pocket job show.
const jobShowHelp = `The job is opened as pocket ls opens it: its token ($POCKET_TOKEN or
--token-file; $POCKET_CREDENTIAL when it names JOBID), its map from the
controller. The token is never printed.

Nodes: each node of the job's map, its weight (its share of the job's keys
is its weight over the sum of the weights) and its state: "active",
"joining" (new in the map, its values still arriving), "draining" (leaving
the map, its values moving to the job's other nodes) or "dead" (not
answering; its values are lost if it stays dead past the controller's
grace). Lost nodes left the map dead at the epoch shown: their values are
gone. An ended job (deregistered, or its token expired) shows the map it
ended with, and its used bytes are those of its values put with --persist;
its nodes that are dead or were found gone are "gone" (retired or dead
since the job ended: nothing listens there, what they held is lost).

Used: the bytes the job's values take on its nodes (values, chunks and
manifests), asked of each live node within 5 s in all (a frozen node would
otherwise hold the count for the client's 30 s silence bound).

--json prints one object with every field always present: job_id, tier,
epoch, ended, expires (RFC 3339, "" when the token never expires), nodes
[{addr, weight, state}], lost [{addr, epoch}], used_known (false: the
count failed, a node did not answer within 5 s, say; used_bytes is then 0
and a note on stderr says why), used_bytes and used_uncounted (the dead or
gone nodes, not asked: their values are not in used_bytes). Exit 0; 3 when the map is printed but used_bytes is not the
whole job's (a dead node, or a node that could not be asked: a note on
stderr says which); 1 when the job cannot be opened (bad token, which an
unknown JOBID also gets; an unreachable controller), with nothing on
stdout; 2 for bad usage.
`

// jobShowJSON is the --json form of pocket job show. Lists are [] when
// empty, never null.
type jobShowJSON struct {
	JobID string `json:"job_id"`
	Tier  string `json:"tier"`
	Epoch uint64 `json:"epoch"`
	// Ended: the job was deregistered or its token expired; Nodes are
	// then the map it ended with.
	Ended bool `json:"ended"`
	// Expires is when the token expires (RFC 3339, UTC); "" when it never
	// does or the controller did not say.
	Expires string        `json:"expires"`
	Nodes   []mapNodeJSON `json:"nodes"`
	Lost    []lostJSON    `json:"lost"`
	// UsedKnown: the live nodes answered; UsedBytes is then the bytes the
	// job's values take on them (0 and meaningless when not known).
	// UsedUncounted are the dead nodes, not asked: their values are not in
	// UsedBytes.
	UsedKnown     bool     `json:"used_known"`
	UsedBytes     int64    `json:"used_bytes"`
	UsedUncounted []string `json:"used_uncounted"`
}

// lostJSON is a node that left the job's map dead: Epoch is the first
// map epoch without it.
type lostJSON struct {
	Addr  string `json:"addr"`
	Epoch uint64 `json:"epoch"`
	// AfterEnd: lost after the job ended (the controller notes such a
	// loss at the final map's epoch + 1, the map staying as it ended).
	AfterEnd bool `json:"after_end,omitempty"`
}

func runJobShow(args []string) int {
	d := newDataCmd("job show")
	pos, code, ok := d.parse(args, 1, 1)
	if !ok {
		return code
	}
	j, _, ctx, done, err := d.open(pos)
	if err != nil {
		return fail("job show: %v", err)
	}
	defer done()
	uctx, cancel := context.WithTimeout(ctx, usageWait)
	used, err := j.Usage(uctx)
	cancel()
	if err != nil && ctx.Err() != nil {
		return fail("job show: %v", interruptNote(ctx, "nothing was shown", err))
	}
	if err != nil && uctx.Err() != nil {
		err = fmt.Errorf("not every node of the job's map answered within %v (a node frozen or overloaded; the controller marks a silent node dead within seconds): %w",
			usageWait, err)
	}
	// The map after the count: a count that met a newer epoch fetched it.
	v := jobShowView(j.Map(), j.Ended(), j.GoneNodes())
	v.UsedKnown, v.UsedBytes = err == nil, used
	if *d.json {
		code = printJSON(v)
	} else {
		printJobShow(v)
	}
	if code != 0 {
		return code
	}
	return noteUncounted(v, err)
}

// usageWait bounds job show's count of the job's bytes: a frozen node
// holds a request for the client's silence bound (client.DefaultSilence,
// 30 s), while the controller marks it dead within seconds, after which
// it is not asked. Before, job show printed nothing for up to 30 s (a new
// user's trial).
const usageWait = 5 * time.Second

// jobShowView is the --json form of m, the job's map (ended: the job has
// ended, as the handle knows, Job.Ended; gone: the nodes a call found
// gone, Job.GoneNodes); its used bytes are for the caller to fill in.
// Before, an ended job opened from a credential showed as live: the map
// a credential carries is not marked ended (a new user's trial).
func jobShowView(m pocket.Map, ended bool, gone []string) jobShowJSON {
	v := jobShowJSON{JobID: m.Job, Tier: m.Tier.String(), Epoch: m.Epoch, Ended: m.Ended || ended,
		Nodes: make([]mapNodeJSON, len(m.Nodes)), Lost: make([]lostJSON, len(m.Lost)), UsedUncounted: nonNil(deadNodes(m))}
	if !m.Expires.IsZero() {
		v.Expires = m.Expires.UTC().Format(time.RFC3339)
	}
	for i, n := range m.Nodes {
		state := nodeStateIn(m, n.Addr).String()
		if v.Ended && (state == wire.NodeDead.String() || slices.Contains(gone, n.Addr)) {
			state = stateGone
		}
		v.Nodes[i] = mapNodeJSON{Addr: n.Addr, Weight: n.Weight, State: state}
	}
	for i, l := range m.Lost {
		v.Lost[i] = lostJSON{Addr: l.Addr, Epoch: l.Epoch, AfterEnd: v.Ended && l.Epoch > m.Epoch}
	}
	return v
}

// stateGone is the state job show gives a node of an ended job's map that
// is dead or was found gone: retired or dead since the job ended, nothing
// listens there (as pocket ls says), and what it held is lost.
const stateGone = "gone"

// nodeStateIn is the state of the node at addr in m: dead before
// draining before joining, else active.
func nodeStateIn(m pocket.Map, addr string) wire.NodeState {
	switch {
	case m.Dead[addr]:
		return wire.NodeDead
	case m.Draining[addr]:
		return wire.NodeDraining
	case m.Joining[addr]:
		return wire.NodeJoining
	}
	return wire.NodeActive
}

// printJobShow prints v as text: a line on the job, its nodes' table,
// its lost nodes and its used bytes.
func printJobShow(v jobShowJSON) {
	life := "live"
	if v.Ended {
		life = "ended (deregistered, or its token expired): the map it ended with"
	}
	fmt.Printf("job %s: %s, map epoch %d, %d %s node(s)\n", v.JobID, life, v.Epoch, len(v.Nodes), v.Tier)
	if v.Expires != "" {
		fmt.Printf("token %s at %s\n", expiresVerb(v.Expires), v.Expires)
	}
	fmt.Printf("  %-22s %-8s %s\n", "NODE", "WEIGHT", "STATE")
	for _, n := range v.Nodes {
		fmt.Printf("  %-22s %-8.3f %s\n", n.Addr, n.Weight, n.State)
	}
	for _, l := range v.Lost {
		if l.AfterEnd {
			// A new user read "map epoch 1" beside "lost ... at epoch 2".
			fmt.Printf("lost %s after the job ended (it died, or was drained with --discard-persisted): the persisted values it held are gone\n", l.Addr)
			continue
		}
		fmt.Printf("lost %s at epoch %d: it left the map dead, its values are gone\n", l.Addr, l.Epoch)
	}
	fmt.Println(usedLine(v))
}

// expiresVerb is "expired" for an RFC 3339 time in the past, else
// "expires".
func expiresVerb(at string) string {
	if t, err := time.Parse(time.RFC3339, at); err == nil && t.Before(time.Now()) {
		return "expired"
	}
	return "expires"
}

// usedLine says what the job's values take: "used 1.5MiB", with the
// dead nodes it leaves out, or "used: not known" when the count failed.
func usedLine(v jobShowJSON) string {
	what := "used"
	if v.Ended {
		what = "used by its values put with --persist"
	}
	if !v.UsedKnown {
		return what + ": not known (see the note on stderr)"
	}
	line := what + " " + units.FormatSize(v.UsedBytes)
	if len(v.UsedUncounted) > 0 {
		line += " on its live nodes (not counted: " + uncountedWhat(v) + " " + strings.Join(v.UsedUncounted, ", ") + ")"
	}
	return line
}

// noteUncounted says on stderr what the used bytes of v leave out (the
// dead nodes, or the count's failure err) and returns the exit code:
// exitPartial when they leave something out, else 0.
func noteUncounted(v jobShowJSON, err error) int {
	if err != nil {
		why := strings.Join(usageFailures(err, v.UsedUncounted), "; ")
		if why == "" {
			why = err.Error()
		}
		warn("job show", "note: the job's used bytes could not be counted: %s", why)
		return exitPartial
	}
	if len(v.UsedUncounted) > 0 && v.Ended {
		warn("job show", "note: %d node(s) of ended job %s's map are gone (%s: retired or dead, nothing listens there since the job ended): "+
			"what they held, if anything, is lost and not counted", len(v.UsedUncounted), v.JobID, strings.Join(v.UsedUncounted, ", "))
		return exitPartial
	}
	if len(v.UsedUncounted) > 0 {
		warn("job show", "note: %d node(s) of job %s's map are dead (%s): the bytes they hold are not counted", len(v.UsedUncounted), v.JobID,
			strings.Join(v.UsedUncounted, ", "))
		return exitPartial
	}
	return 0
}

// uncountedWhat names the nodes whose bytes v leaves out: dead ones, or
// for an ended job gone ones.
func uncountedWhat(v jobShowJSON) string {
	if v.Ended {
		return "gone node(s)"
	}
	return "dead node(s)"
}

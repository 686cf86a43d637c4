package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	register("put", "JOBID KEY FILE|-", "store a file (or - for stdin) under a key", runPut)
	register("get", "JOBID KEY [FILE|-]", "read a key into a file (default stdout)", runGet)
	register("ls", "JOBID [PREFIX]", "list a job's keys that start with PREFIX (a string prefix: a lists ab too; a/ lists what is under a/), one a line (a key with a control character such as a newline, invalid UTF-8 or a leading \" prints Go-quoted); exit 3 with a note when a node of the job is dead or lost (its keys are missing)", runLs)
	register("rm", "JOBID [KEY]", "delete KEY (every key of the job: --all, without KEY) and, recursively, every key under KEY/ (not ab for a); prints the count; exit 1 when a named KEY held nothing (0 for --all on an empty job), 3 when a node of the job is dead (its keys stay)", runRm)
}

// dataCmd parses the common flags of the data commands and opens the job.
type dataCmd struct {
	fs         *flag.FlagSet
	controller *string
	tok        *string
	persist    *bool
	once       *bool
	all        *bool
	json       *bool
	chunk      *string // put: --chunk-size
	tls        tlsFlags
}

func newDataCmd(name string) *dataCmd {
	fs := newFlagSet(name)
	d := &dataCmd{
		fs:         fs,
		controller: fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $POCKET_CONTROLLER, else "+ctlDefaultAddr+")"),
		tok: fs.String("token-file", "", "file (mode 0600) holding the job's token (default $POCKET_TOKEN). $POCKET_CREDENTIAL, when it names JOBID,\n"+
			"is used instead: the credential pocket job deregister prints (Job.Credential in the SDKs), which reads and deletes\n"+
			"the values a deregistered job put with --persist, or opens a live job (with its current map, from the controller)"),
	}
	switch name {
	case "put":
		d.persist = fs.Bool("persist", false, "keep the value after the job is deregistered")
		d.chunk = fs.String("chunk-size", "1MiB", "store a value larger than SIZE in chunks of SIZE spread over the job's nodes (the SDKs' chunk size; at most "+
			units.FormatSize(wire.DefaultMaxPayload)+"); a node of an NVMe tier refuses a chunk larger than half its --nvme-staging")
		addFlagCheck(fs, func() error { _, err := d.chunkSize(); return err })
	case "get":
		d.once = fs.Bool("delete-after-read", false, "delete the value once read")
	case "rm":
		d.all = fs.Bool("all", false, "delete every key of the job (give no KEY, or an empty one)")
	case "job show":
		d.json = fs.Bool("json", false, "print a JSON object: job_id, tier, epoch, ended, expires, nodes, lost, used_known, used_bytes, used_uncounted")
	}
	d.tls.bind(fs)
	return d
}

// chunkSize is put's --chunk-size in bytes (0 for the other commands:
// the SDK's default), or why it is refused.
func (d *dataCmd) chunkSize() (int64, error) {
	if d.chunk == nil {
		return 0, nil
	}
	n, err := sizeFlag("chunk-size", *d.chunk, *d.chunk, "is refused")
	if err == nil && (n <= 0 || n > wire.DefaultMaxPayload) {
		err = fmt.Errorf("--chunk-size %q: want 1 byte to %s", *d.chunk, units.FormatSize(wire.DefaultMaxPayload))
	}
	return n, err
}

// parse parses args and checks the count of positionals and the key
// (pos[1]); when ok is false the command returns code.
func (d *dataCmd) parse(args []string, minPos, maxPos int) (pos []string, code int, ok bool) {
	pos, code, ok = parseFlags(d.fs, args, minPos, maxPos)
	if ok && len(pos) > 1 {
		if err := checkKey(pos[1]); err != nil {
			return nil, fail("%s: %v", d.fs.Name(), err), false
		}
	}
	return pos, code, ok
}

// open opens the job pos[0].
func (d *dataCmd) open(pos []string) (*pocket.Job, []string, context.Context, func(), error) {
	names, err := credentialNames(pos[0])
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if names {
		return d.openCredential(pos)
	}
	tok, err := jobToken(*d.tok)
	if errors.Is(err, errNoToken) {
		err = noTokenFor(pos[0])
	}
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tc, err := d.tls.config(pki.RoleClient, pki.RoleOperator) // an operator may fetch a job's map too
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	addr := ctlAddr(*d.controller)
	chunk, _ := d.chunkSize() // checked with the flags
	s, err := pocket.Dial(ctx, addr, pocket.Config{TLS: tc, Insecure: d.tls.insecure, ControllerWait: ctlRetryFor(addr), ChunkSize: chunk})
	if err != nil {
		stop()
		return nil, nil, nil, nil, ctlError(err, *d.controller, d.tls.insecure)
	}
	j, err := s.OpenJob(ctx, pos[0], tok)
	if err != nil {
		s.Close()
		stop()
		return nil, nil, nil, nil, jobIDHint(pos[0], ctlError(err, *d.controller, d.tls.insecure))
	}
	return j, pos, ctx, func() { s.Close(); stop() }, nil
}

// jobIDHint adds to a bad-token refusal of job, when job has no number
// after its name, that JOBID is the id registration printed: a new
// user's trial gave the job's name and was told only that the token does
// not grant it. For an id, that a mistyped one is refused the same way
// (the controller answers alike whether or not the id is registered): a
// new user's trial dropped a digit and looked for a token fault; or that
// the token itself was altered (another trial flipped one of its hex
// digits and was pointed at the id alone).
func jobIDHint(job string, err error) error {
	if !errors.Is(err, wire.ErrBadToken) {
		return err
	}
	if i := strings.LastIndexByte(job, '-'); i >= 0 && i < len(job)-1 && strings.Trim(job[i+1:], "0123456789") == "" {
		return fmt.Errorf("%w (the token is another job's, or was changed or cut short in copying, or JOBID is mistyped: check both against what pocket job register printed)", err)
	}
	return fmt.Errorf("%w (JOBID is the job's id, which pocket job register printed: its name and a number, such as %s-442118936)", err, job)
}

// noTokenFor is errNoToken for a data command on job, saying what of
// $POCKET_CREDENTIAL would have done: a new user's trial, with an ended
// job's credential of another job set, was told only to set POCKET_TOKEN.
func noTokenFor(job string) error {
	if cred := os.Getenv("POCKET_CREDENTIAL"); cred != "" {
		if id, err := pocket.CredentialJob(cred); err == nil && id != job {
			return fmt.Errorf("%w; $POCKET_CREDENTIAL is job %s's, not %s's", errNoToken, id, job)
		}
	}
	return fmt.Errorf("%w; for a job that has ended, set $POCKET_CREDENTIAL (pocket job deregister and pocket job credential print it)", errNoToken)
}

// credentialNames reports whether POCKET_CREDENTIAL is job's: then it is
// used, whatever token is also set (the job is deregistered, its token
// alone no longer finds its map). A credential of another job is left
// alone; one that is not a credential at all is an error, not silently
// ignored (say the whole "export POCKET_CREDENTIAL=..." line was
// captured).
func credentialNames(job string) (bool, error) {
	cred := os.Getenv("POCKET_CREDENTIAL")
	if cred == "" {
		return false, nil
	}
	id, err := pocket.CredentialJob(cred)
	if inner := errors.Unwrap(err); inner != nil {
		err = inner // the decoder's cause, without the SDK's "is not a job credential"
	}
	if err != nil {
		return false, fmt.Errorf("$POCKET_CREDENTIAL is not a job credential (%v): set it to what follows "+
			"POCKET_CREDENTIAL= in pocket job credential's output (eval \"$(pocket job credential JOB)\" does), or unset it", err)
	}
	return id == job, nil
}

// openCredential opens the job of POCKET_CREDENTIAL (printed by pocket
// job deregister, or Job.Credential), as pocket.Store.OpenCredential
// does: the controller (--controller, $POCKET_CONTROLLER or the default)
// is asked whether the job is live, and a live job is opened with its
// current map (the credential's may be older: a node restarted, the job
// grew); a job the controller does not know is a deregistered one's,
// whose persisted values are read with the credential's map. When the
// controller cannot answer within credentialCtlWait (none running, a
// restart), a note says so and the credential's own map is used, as a
// deregistered job's.
func (d *dataCmd) openCredential(pos []string) (*pocket.Job, []string, context.Context, func(), error) {
	cred := os.Getenv("POCKET_CREDENTIAL")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	s, j, err := d.openCredentialLive(ctx, cred)
	if err != nil && ctx.Err() == nil {
		id, _ := pocket.CredentialJob(cred)
		warn(d.fs.Name(), "note: the controller did not say whether job %s is live (%v): reading with POCKET_CREDENTIAL's own map, "+
			"as a deregistered job's", id, err)
		s = pocket.NewStore(nil, pocket.Config{})
		j, err = s.OpenCredential(cred)
	}
	if err == nil && j.ID() != pos[0] {
		err = fmt.Errorf("POCKET_CREDENTIAL is job %s's, not %s's", j.ID(), pos[0])
	}
	if err != nil {
		if s != nil {
			s.Close()
		}
		stop()
		return nil, nil, nil, nil, err
	}
	return j, pos, ctx, func() { s.Close(); stop() }, nil
}

// credentialCtlWait bounds how long a data command opening
// POCKET_CREDENTIAL waits for the controller's answer before it falls
// back to the credential's own map. It is past the controller's own wait
// before it answers a just-ended job's final map (until the job's end has
// reached its nodes, at most 3 s by default: controller.GetMapOrEnded):
// at 2 s a new user's `pocket ls` right after a deregistration gave up on
// a healthy controller with "context deadline exceeded".
const credentialCtlWait = 4 * time.Second

// openCredentialLive opens cred through a Store of the controller, which
// says (within credentialCtlWait) whether the job is live.
func (d *dataCmd) openCredentialLive(ctx context.Context, cred string) (*pocket.Store, *pocket.Job, error) {
	tc, err := d.tls.config(pki.RoleClient, pki.RoleOperator) // an operator may fetch a job's map too
	if err != nil {
		return nil, nil, err
	}
	s, err := pocket.Dial(ctx, ctlAddr(*d.controller), pocket.Config{TLS: tc, Insecure: d.tls.insecure, ControllerWait: credentialCtlWait})
	if err != nil {
		return nil, nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, credentialCtlWait)
	defer cancel()
	j, err := s.OpenCredentialContext(qctx, cred)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, j, nil
}

func runPut(args []string) int {
	d := newDataCmd("put")
	pos, code, ok := d.parse(args, 3, 3)
	if !ok {
		return code
	}
	if pos[1] == "" { // a usage error, as rm's (before: exit 1 from the SDK)
		return usageError("put", errors.New("KEY is empty: name a key"))
	}
	j, pos, ctx, done, err := d.open(pos)
	if err != nil {
		return fail("put: %v", err)
	}
	defer done()
	chunk, _ := d.chunkSize() // checked with the flags
	var opts []pocket.PutOption
	if *d.persist {
		opts = append(opts, pocket.Persist())
	}
	if pos[2] == "-" {
		w, err := j.NewWriter(ctx, pos[1], opts...)
		var n int64 // the value's size once all of stdin is read
		if err == nil {
			n, err = putStdin(ctx, w)
		}
		if err != nil {
			return fail("put: %v", interruptNote(ctx, putInterrupted, noSpaceHint(err, j, n, chunk)))
		}
		return 0
	}
	if err := j.PutFile(ctx, pos[2], pos[1], opts...); err != nil {
		var size int64
		if fi, serr := os.Stat(pos[2]); serr == nil {
			size = fi.Size()
		}
		return fail("put: %v", interruptNote(ctx, putInterrupted, noSpaceHint(err, j, size, chunk)))
	}
	return 0
}

// noSpaceHint adds to a put refused for lack of space the value's size
// (0: unknown), where it went, and what may free space. Before, it said
// every node of the job had no room and told the user to delete the job's
// keys or add nodes, where one node (the key's, or a chunk's) was full,
// mostly of other jobs' values, on a cluster at its autoscaler's maximum
// (a new user's trial). A later trial's 300 MiB value on a job of one
// 256 MiB node was told only to delete values: it now hears that no
// deletion makes room for a value larger than the job's nodes.
//
// A value's chunks each go whole to one node: with a large --chunk-size
// (chunk) a value lands on few nodes, and one of them may fill while the
// others have room. A new user's job allotted 400 MiB on two nodes had a
// 150 MiB value of 64 MiB chunks all on one, and a 90 MiB put was told to
// register the job with a --capacity hint it had: the hint now says so
// when the chunks are larger than the default, and asks for a hint only
// of a job that has no size allotted.
func noSpaceHint(err error, j *pocket.Job, size, chunk int64) error {
	if !errors.Is(err, wire.ErrNoSpace) {
		return err
	}
	return noSpaceText(err, j.Map(), j.Allotment().Bytes, size, chunk)
}

// noSpaceText is noSpaceHint's text for a job of map m allotted alloc
// bytes (0: no size).
func noSpaceText(err error, m pocket.Map, alloc, size, chunk int64) error {
	value := ""
	if size > 0 {
		value = "the value is " + units.FormatSize(size) + "; "
	}
	fix := "split it, or register the job with a --capacity hint of its size, which places it on more nodes"
	if alloc > 0 {
		fix = fmt.Sprintf("split it (the job's allotment of %s is room over its nodes together, not on each)", units.FormatSize(alloc))
	}
	if chunk > pocket.DefaultChunkSize && size > chunk {
		fix += fmt.Sprintf("; chunks of %s (--chunk-size) each go whole to one node, so a value lands on few of them: "+
			"a smaller --chunk-size spreads it over more", units.FormatSize(chunk))
	}
	return fmt.Errorf("%w (%sthe node of the job's %d %s node(s) that the value, or a chunk of it, goes to is full: "+
		"every job's values there count; deleting this job's keys (pocket rm %s KEY) frees what they hold, but no deletion "+
		"makes room for a value larger than the job's nodes hold together: %s; pocket status shows each node's use and capacity, and the "+
		"controller's autoscaling maximum)", err, value, len(m.Nodes), m.Tier, m.Job, fix)
}

func runGet(args []string) int {
	d := newDataCmd("get")
	pos, code, ok := d.parse(args, 2, 3)
	if !ok {
		return code
	}
	if pos[1] == "" { // a usage error, as rm's (before: exit 1 from the SDK)
		return usageError("get", errors.New("KEY is empty: name a key"))
	}
	j, pos, ctx, done, err := d.open(pos)
	if err != nil {
		return fail("get: %v", err)
	}
	defer done()
	var opts []pocket.GetOption
	if *d.once {
		opts = append(opts, pocket.DeleteAfterRead())
	}
	if len(pos) == 3 && pos[2] != "-" {
		if err := j.GetFile(ctx, pos[1], pos[2], opts...); err != nil {
			defer endedNote(j, pos[1], err)
			return fail("get: %v", interruptNote(ctx, "nothing was written to "+pos[2], err))
		}
		return 0
	}
	out := &heldOutput{w: os.Stdout, limit: stdoutHold}
	var n int64
	for try := 0; ; try++ {
		out.held = out.held[:0]
		n, err = j.GetTo(ctx, pos[1], out, opts...)
		// A value replaced while it was read, or taken or replaced before
		// its delete-after-read, is read again while nothing went to
		// stdout, as Get reads it again (before, a new user's 57 of 136
		// gets to stdout of a key being overwritten failed "replaced
		// while being read").
		if err == nil || out.passed > 0 || !errors.Is(err, pocket.ErrConflict) || try == getRetries {
			break
		}
	}
	err = interruptNote(ctx, "the value was not read whole", err)
	if err != nil {
		defer endedNote(j, pos[1], err)
		if *d.once && out.passed == n && n > 0 && (errors.Is(err, pocket.ErrNotFound) || errors.Is(err, pocket.ErrConflict)) {
			// Written out before the delete, so that a value whose output
			// fails stays stored (GetTo flushes before it deletes).
			return fail("get: %v (the whole value went to stdout, but another reader took it, or a writer replaced it, first: it was not this reader's to take; discard it)", err)
		}
		if out.passed > 0 {
			return fail("get: %v (the first %d bytes went to stdout before the error: they are not the whole value; discard them)", err, out.passed)
		}
		return fail("get: %v", err)
	}
	return 0
}

// endedNote follows a get of an ended job's key that was not found with
// why: the job's temporary values went with its end. A node that keeps
// none of the job's values says so itself (the SDK's keyAnswer); before,
// one that kept others answered a bare "key not found" (a new user's
// trial).
func endedNote(j *pocket.Job, key string, err error) {
	if j.Ended() && errors.Is(err, pocket.ErrNotFound) && !strings.Contains(err.Error(), "has ended") {
		warn("get", "note: job %s has ended: only its persist-after-job values remain, and %q is not one of them", j.ID(), key)
	}
}

// getRetries is how often `get` to stdout reads a value again that was
// replaced while it was read (the SDK's Get and GetFile read it again as
// often).
const getRetries = 16

// stdoutHold is how much of a value `get` to stdout holds back until the
// whole value has been read: a get that fails within it prints nothing on
// stdout (the README's rule for a failed command). Before, a 5 MiB value
// with a chunk on a lost node printed its first MiB, then failed (a new
// user's trial). A larger value streams once past it; a failure then says
// how many bytes went out.
const stdoutHold = 64 << 20

// heldOutput holds what is written to it, up to limit bytes, and passes
// it to w once flushed or once past the limit; from then on it passes
// every write. passed counts the bytes w took.
type heldOutput struct {
	w      io.Writer
	limit  int
	held   []byte
	passed int64
	open   bool // past the limit: writes go straight to w
}

func (h *heldOutput) Write(p []byte) (int, error) {
	if !h.open && len(h.held)+len(p) <= h.limit {
		h.held = append(h.held, p...)
		return len(p), nil
	}
	if err := h.Flush(); err != nil {
		return 0, err
	}
	h.open = true
	n, err := h.w.Write(p)
	h.passed += int64(n)
	return n, err
}

// Flush passes what is held to w. GetTo calls it before a
// delete-after-read deletes the value, so a value whose output fails
// stays stored.
func (h *heldOutput) Flush() error {
	n, err := h.w.Write(h.held)
	h.passed += int64(n)
	h.held = h.held[n:]
	return err
}

func runLs(args []string) int {
	d := newDataCmd("ls")
	pos, code, ok := d.parse(args, 1, 2)
	if !ok {
		return code
	}
	j, pos, ctx, done, err := d.open(pos)
	if err != nil {
		return fail("ls: %v", err)
	}
	defer done()
	prefix := ""
	if len(pos) == 2 {
		prefix = pos[1]
	}
	l, err := j.ListReport(ctx, prefix)
	if err != nil {
		return fail("ls: %v", interruptNote(ctx, "the listing was not finished", err))
	}
	for _, e := range l.Entries {
		fmt.Println(lsName(e.Name))
	}
	if !j.Ended() {
		notePartial("ls", "listed", j.Map(), l.Dead, l.Lost)
	} else {
		// An ended job's final map names lost the nodes whose process
		// went away since it ended (restarted or retired).
		notePartial("ls", "listed", j.Map(), nil, l.Lost)
		if len(l.Entries) == 0 {
			// A new user's trial read the empty listing of an ended job
			// as a job that never had values.
			warn("ls", "note: job %s has ended: only its persist-after-job values remain, and none is listed", j.ID())
		}
	}
	noteGone("ls", j)
	if l.Partial() {
		return exitPartial
	}
	return 0
}

// lsName is how ls prints a key: as it is, unless it holds a control
// character (a newline would print as two keys), is not valid UTF-8, or
// begins with a double quote; then Go-quoted (strconv.Quote), which the
// unquoted names cannot be mistaken for.
func lsName(name string) string {
	if !utf8.ValidString(name) || strings.HasPrefix(name, `"`) || strings.ContainsFunc(name, unicode.IsControl) {
		return strconv.Quote(name)
	}
	return name
}

// deadNodes are the nodes m marks dead, in its order.
func deadNodes(m pocket.Map) []string {
	var dead []string
	for _, n := range m.Nodes {
		if m.Dead[n.Addr] {
			dead = append(dead, n.Addr)
		}
	}
	return dead
}

// exitPartial is the exit code of an ls that listed what the job's
// reachable nodes hold while some node of its map is dead, lost or gone
// (the names there are missing), and of an rm that could not reach a dead
// node (what it holds was not deleted): the output is printed, a note on
// stderr says what is missing, and the code tells a script the result is
// not the whole job's (1 would say the command failed, 0 that it is
// whole).
const exitPartial = 3

// notePartial says on stderr which nodes of a job's map (m) a
// listing or delete (done: "listed", "deleted") could not cover: dead ones
// (not asked: their values unavailable, lost if they stay dead past the
// controller's grace) and lost ones (left the map dead: their values are
// gone). It says nothing when there are none.
func notePartial(cmd, done string, m pocket.Map, dead []string, lost []pocket.LostNode) {
	if len(dead) == len(m.Nodes) && len(dead) > 0 {
		warn(cmd, "note: every node of job %s's map is dead (%s): nothing could be %s; its values are unavailable, "+
			"and lost unless a node comes back within the controller's dead-node grace", m.Job, strings.Join(dead, ", "), done)
	} else if len(dead) > 0 {
		warn(cmd, "note: %d of the %d node(s) of job %s's map are dead (%s): the values they hold are not %s "+
			"(unavailable; lost if the node stays dead past the controller's dead-node grace); a value stored in chunks "+
			"(one larger than the chunk size, 1 MiB by default) %s here may have a chunk there, and then answers unavailable too",
			len(dead), len(m.Nodes), m.Job, strings.Join(dead, ", "), done, done)
	}
	if len(lost) > 0 {
		names := make([]string, len(lost))
		for i, l := range lost {
			names[i] = fmt.Sprintf("%s at epoch %d", l.Addr, l.Epoch)
		}
		warn(cmd, "note: %d node(s) left job %s's map without handing their values over (%s: they died or restarted, their drain ran out of time, or, for an ended job, a drain discarded them: --discard-persisted): "+
			"the values they held are lost, not %s (pocket get answers lost: recompute them); a value stored in chunks "+
			"(one larger than the chunk size, 1 MiB by default, as pocket put stores a large file) %s here may have had a chunk there, "+
			"and then answers lost too",
			len(lost), m.Job, strings.Join(names, ", "), done, done)
	}
}

// noteGone says on stderr which nodes of an ended job's map were found
// gone (pocket.Job.GoneNodes) or are marked dead in it (the nodes its
// deregistration named dead): a listing or delete that succeeded left out
// what they held, which is lost. When that is every node of the map, it
// says the job's values are all lost.
func noteGone(cmd string, j *pocket.Job) {
	gone := j.GoneNodes()
	m := j.Map()
	live := 0
	for _, n := range m.Nodes {
		switch {
		case slices.Contains(gone, n.Addr):
		case m.Dead[n.Addr]:
			if j.Ended() || len(gone) > 0 {
				gone = append(gone, n.Addr)
			}
		default:
			live++
		}
	}
	switch {
	case len(gone) == 0:
	case live == 0:
		warn(cmd, "note: every node of the job's map is gone (%s: retired or dead, nothing listens there since the job ended): "+
			"the job's values are lost, none is left to list or delete", strings.Join(gone, ", "))
	default:
		warn(cmd, "note: the values on node(s) %s are gone (retired or dead: nothing listens there since the job ended); "+
			"this covers the job's other nodes only", strings.Join(gone, ", "))
	}
}

func runRm(args []string) int {
	d := newDataCmd("rm")
	pos, code, ok := d.parse(args, 1, 2)
	if !ok {
		return code
	}
	// Always recursive, as Pocket's delete: KEY, and everything under KEY/,
	// with or without a trailing slash. A name that is empty or only
	// slashes, or none, is the whole job: only with --all. Without it
	// that is a usage error (exit 2), said before anything is asked.
	if len(pos) == 1 {
		if !*d.all {
			return usageError("rm", fmt.Errorf("no KEY: name one, or pass --all to delete every key of %s", pos[0]))
		}
		pos = append(pos, "")
	}
	if strings.TrimRight(pos[1], "/") == "" && !*d.all {
		return usageError("rm", fmt.Errorf("%q names the whole job: pass --all to delete every key of %s", pos[1], pos[0]))
	}
	if strings.TrimRight(pos[1], "/") != "" && *d.all {
		return usageError("rm", fmt.Errorf("--all deletes every key of %s, and %q names one: give one of them", pos[0], pos[1]))
	}
	j, pos, ctx, done, err := d.open(pos)
	if err != nil {
		return fail("rm: %v", err)
	}
	defer done()
	var res pocket.Removed
	if *d.all {
		res, err = j.DeleteAll(ctx)
	} else {
		res, err = j.RemoveAllCount(ctx, pos[1])
	}
	if err != nil {
		if n := res.Count(); n > 0 {
			warn("rm", "deleted %s before the error", removedText(pos[1], res))
		} else {
			warn("rm", "deleted nothing before the error")
		}
		code := fail("rm: %v", interruptNote(ctx, "what was deleted before stays deleted", err))
		if errors.Is(err, pocket.ErrUnavailable) && len(deadNodes(j.Map())) > 0 {
			// A node of the job is dead and its keys stay: exit 3, as
			// --help says (before, 1 when the named key's owner was it).
			code = exitPartial
		}
		return code
	}
	noteGone("rm", j)
	m := j.Map()
	var dead []string
	if !j.Ended() {
		dead = deadNodes(m)
		notePartial("rm", "deleted", m, dead, nil) // a lost node's values are gone already
	}
	if code := reportRemoved(pos[0], pos[1], res, j.LostOwners(strings.TrimRight(pos[1], "/")), m.Lost); code != 0 || len(dead) == 0 {
		return code
	}
	return exitPartial
}

// putStdin copies stdin to w and closes it, or aborts it (nothing of a
// failed upload becomes visible) when the copy fails or ctx ends; it
// returns the value's size (0 on failure). A read of stdin blocks until
// data or EOF comes, whatever the signal, so the copy runs on its own
// goroutine and a signal ends the put at once: before, an interrupted
// put whose stdin sent nothing more (a terminal, a stalled pipe) waited
// for it for good.
func putStdin(ctx context.Context, w *pocket.Writer) (int64, error) {
	lw := &lockedWriter{w: w}
	type result struct {
		n   int64
		err error
	}
	copied := make(chan result, 1)
	go func() {
		n, err := io.Copy(lw, os.Stdin)
		copied <- result{n, err}
	}()
	var r result
	select {
	case r = <-copied:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	if r.err == nil {
		return r.n, lw.close()
	}
	lw.abort()
	return 0, r.err
}

// lockedWriter lets a put's Writer be aborted while a copy to it may
// still write: a write after the abort fails.
type lockedWriter struct {
	mu   sync.Mutex
	w    *pocket.Writer
	done bool
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return 0, errors.New("pocket: put ended")
	}
	return l.w.Write(p)
}

func (l *lockedWriter) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	return l.w.Close()
}

func (l *lockedWriter) abort() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	l.w.Abort()
}

// putInterrupted is what an interrupted put left.
const putInterrupted = "the put did not complete; the key keeps its older value, unless the put had already been sent whole " +
	"(a value of one chunk, 1 MiB, is one request)"

// interruptNote replaces err, the failure of a data command whose context
// a signal (SIGINT, SIGTERM) ended, with what the command left (left).
// Before, an interrupted put said only "context canceled" (a new user's
// trial). Other errors are returned as they are.
func interruptNote(ctx context.Context, left string, err error) error {
	if err == nil || ctx.Err() == nil || !errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("interrupted by a signal: %s", left)
}

// reportRemoved prints what rm deleted on stdout ("deleted 3 key(s): a and
// 2 under a/"; with no key, the bytes of an ended job's chunks no key
// named that went, res.ChunkBytes), and returns its exit code: 0, or 1
// when a named key held nothing, as rm of a missing file (and the SDK's
// Delete, not found; said lost, naming the nodes, when lost nodes owned
// it: lost; and naming the job's lost nodes, jobLost, whose keys under it
// are gone uncounted, also said on stderr beside a count of keys under
// it). The whole job (--all) emptied already exits 0, and so does a
// delete that found only chunks no key named. Beside keys
// deleted, ChunkBytes counts only some of their chunks (those the prefix
// delete met; a named object's go by version, uncounted), so it is not
// shown.
func reportRemoved(job, name string, res pocket.Removed, lost, jobLost []pocket.LostNode) int {
	if res.Count() == 0 {
		if res.ChunkBytes > 0 {
			fmt.Printf("deleted 0 keys; %s of large-object chunks no key named went too (a writer stopped between putting "+
				"an object's chunks and publishing it)\n", units.FormatSize(res.ChunkBytes))
			return 0
		}
		if strings.TrimRight(name, "/") == "" {
			if len(jobLost) > 0 {
				fmt.Printf("deleted 0 keys: job %s's nodes held none\n", job)
				warn("rm", "keys of the job that were on the node(s) the job lost, %s, are lost, and not counted", lostList(jobLost))
				return 0
			}
			fmt.Printf("deleted 0 keys: job %s held none\n", job)
			return 0
		}
		if len(lost) > 0 {
			return fail("rm: nothing deleted: job %s has no key %q on its nodes and none under %q; if %q was written, it was on %s, "+
				"which left the job's map without handing its values over (it died or restarted, its drain ran out of time, or, for an ended job, a drain discarded them: --discard-persisted): it is lost",
				job, strings.TrimRight(name, "/"), strings.TrimRight(name, "/")+"/", strings.TrimRight(name, "/"), lostNames(lost))
		}
		under := ""
		if len(jobLost) > 0 {
			// Keys under the name on a lost node cannot be listed, and
			// are gone (a hostile trial: a directory whose one key was on
			// one read as never written).
			under = fmt.Sprintf("; keys under it that were on the node(s) the job lost, %s, are lost, and not counted", lostList(jobLost))
		}
		return fail("rm: nothing deleted: job %s has no key %q and none under %q "+
			"(rm works by path: it does not delete other keys that start with %q, which pocket ls %s %s lists)%s",
			job, strings.TrimRight(name, "/"), strings.TrimRight(name, "/")+"/", name, job, name, under)
	}
	fmt.Printf("deleted %s\n", removedText(name, res))
	if len(jobLost) > 0 && (res.Under > 0 || strings.TrimRight(name, "/") == "") {
		// The count is of the keys found: those a lost node held are
		// gone already (a hostile trial: rm of a directory whose keys
		// were partly on a lost node said nothing of them).
		what := "keys of the job"
		if strings.TrimRight(name, "/") != "" {
			what = fmt.Sprintf("keys under %q", strings.TrimRight(name, "/")+"/")
		}
		warn("rm", "%s that were on the node(s) the job lost, %s, are lost, and not counted", what, lostList(jobLost))
	}
	return 0
}

// lostNames is "node A (lost at epoch 3)" or "one of the nodes A (lost at
// epoch 3), B (lost at epoch 5)".
func lostNames(ls []pocket.LostNode) string {
	if len(ls) == 1 {
		return "node " + lostList(ls)
	}
	return "one of the nodes " + lostList(ls)
}

// lostList is "A (lost at epoch 3), B (lost at epoch 5)".
func lostList(ls []pocket.LostNode) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = fmt.Sprintf("%s (lost at epoch %d)", l.Addr, l.Epoch)
	}
	return strings.Join(names, ", ")
}

// removedText says what res counts: "3 key(s): a and 2 under a/", "2
// key(s) under a/", "1 key(s): a", each name as ls prints it (lsName: a
// key with a newline printed raw split the line, where ls quoted it).
func removedText(name string, res pocket.Removed) string {
	key := strings.TrimRight(name, "/")
	switch {
	case key == "":
		return fmt.Sprintf("%d key(s): every key of the job", res.Count())
	case res.Name && res.Under > 0:
		return fmt.Sprintf("%d key(s): %s and %d under %s", res.Count(), lsName(key), res.Under, lsName(key+"/"))
	case res.Name:
		return fmt.Sprintf("1 key(s): %s", lsName(key))
	}
	return fmt.Sprintf("%d key(s) under %s", res.Under, lsName(key+"/"))
}

// maxKeyLen is the longest key the SDK takes: the wire's key limit less
// the room its chunk names add (pocket/object.go, checkName).
const maxKeyLen = wire.DefaultMaxKeyLen - 40

// keyShown is how much of a key too long an error quotes.
const keyShown = 64

// checkKey refuses a key longer than the limit, naming the limit and
// quoting only the key's start.
func checkKey(key string) error {
	if len(key) <= maxKeyLen {
		return nil
	}
	return fmt.Errorf("key %q... is %d bytes, longer than the %d-byte limit: use a shorter key", key[:keyShown], len(key), maxKeyLen)
}

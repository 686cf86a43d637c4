package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// envToken names the environment variable holding a job's token.
const envToken = "POCKET_TOKEN"

func init() {
	register("job", "SUBCOMMAND", "register or deregister a job, show its map and use, print its credential, show what earlier jobs of a name used", runJob)
	registerSub("job register", "NAME", "register a job, with hints of what it needs; prints its id and token")
	registerSub("job deregister", "JOBID", "deregister a job: its nodes drop its data (but values put with --persist); a job whose token was lost: pocket job end")
	registerSub("job credential", "JOBID", "print a job's credential (POCKET_CREDENTIAL), live or ended (deregistered, or its token expired), from its token")
	registerSub("job profile", "[TENANT/]NAME", "show what the controller learned from earlier jobs of a name (peak Mb/s, peak bytes, duration) and the next job's size; over TLS each tenant (client certificate) has its own")
}

func runJob(args []string) int {
	if code, ok := parentCommand("job", args); ok {
		return code
	}
	switch args[0] {
	case "register":
		return runJobRegister(args[1:])
	case "profile":
		return runJobProfile(args[1:])
	case "credential":
		return runJobCredential(args[1:])
	case "end":
		return runJobEnd(args[1:])
	case "show":
		return runJobShow(args[1:])
	}
	return runJobDeregister(args[1:])
}

// jobMapJSON is the --json form of a registered job: its id, its token (hex,
// the form POCKET_TOKEN and --token-file take) and its placement map.
type jobMapJSON struct {
	JobID string        `json:"job_id"`
	Token string        `json:"token"`
	Tier  string        `json:"tier"`
	Epoch uint64        `json:"epoch"`
	Nodes []mapNodeJSON `json:"nodes"`
	// Expires is when the token expires and the controller ends the job
	// (RFC 3339, UTC), as granted: --ttl, or the controller's --token-ttl,
	// capped by its --max-token-ttl; "" when it never does.
	Expires string `json:"expires"`
	// AllocMbps and AllocBytes are the job's allotment (Mb/s, bytes; 0:
	// no capacity), SizedFrom where its size came from: "hints",
	// "profile" (its name's, its tenant's over TLS) or "default"; ""
	// from a controller that does not say.
	AllocMbps  float64 `json:"alloc_mbps"`
	AllocBytes int64   `json:"alloc_bytes"`
	SizedFrom  string  `json:"sized_from"`
	// Quota is the registering client's allotment quotas and what is
	// left of them with this job allotted; all 0 when it has none.
	Quota quotaJSON `json:"quota"`
	// Note is what the controller says the client should know of the
	// registration ("": nothing), e.g. that nodes started for the job
	// did not come; the text form prints it on stderr.
	Note string `json:"note"`
}

// quotaJSON is wire.QuotaLeft; a limit of 0 is none (its left is then 0).
type quotaJSON struct {
	Bytes     int64   `json:"bytes"`
	LeftBytes int64   `json:"left_bytes"`
	Mbps      float64 `json:"mbps"`
	LeftMbps  float64 `json:"left_mbps"`
}

type mapNodeJSON struct {
	Addr   string  `json:"addr"`
	Weight float64 `json:"weight"`
	State  string  `json:"state"`
}

func mapNodesJSON(ns []wire.MapNode) []mapNodeJSON {
	out := make([]mapNodeJSON, len(ns))
	for i, n := range ns {
		out[i] = mapNodeJSON{Addr: n.Addr, Weight: n.Weight, State: n.State.String()}
	}
	return out
}

func runJobRegister(args []string) int {
	fs := newFlagSet("job register")
	addr := fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $POCKET_CONTROLLER or "+ctlDefaultAddr+")")
	lambdas := fs.Int64("lambdas", 0, "hint: number of concurrent lambdas (0: not given)")
	capacity := fs.String("capacity", "0", "hint: capacity the job needs, like 10GiB (0: not given)")
	peak := fs.Float64("peak-mbps", 0, "hint: peak bandwidth in Mb/s (0: not given)")
	latency := fs.Bool("latency-sensitive", false, "hint: keep the job's data in DRAM")
	asJSON := fs.Bool("json", false, "print a JSON object with job_id, token and the map")
	strict := fs.Bool("strict", false, "refuse the job (exit 1) instead of warning when a bandwidth hint exceeds what the active nodes\n"+
		"of the job's tier have (checking needs the operator's certificate); a capacity no tier holds is refused by the controller either way")
	ttl := fs.Duration("ttl", 0, "the job's token expires after this long and the controller deregisters the job; capped by the controller's --max-token-ttl\n(0: the controller's --token-ttl)")
	var tf tlsFlags
	tf.bind(fs)
	var pf priceFlags
	pf.bind(fs, "only for the check of the hints before registering (a warning, or --strict's refusal), against the tier the controller\n"+
		"would pick, for a controller that does not send its prices in its status (older than this pocket): give them as the controller's.\n"+
		"They do not change where the job goes: the controller places it at its own prices")
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return code
	}
	prices, err := pf.prices()
	var capBytes int64
	if err == nil {
		capBytes, err = sizeFlag("capacity", *capacity, *capacity, "means not given")
	}
	if err == nil {
		err = checkRegisterFlags(*ttl, *peak, *lambdas)
	}
	if err == nil {
		// A usage error (exit 2), as the README says, not the
		// controller's refusal (exit 1).
		err = controller.CheckJobName(pos[0])
	}
	if err != nil {
		return usageError("job register", err)
	}
	hints := wire.JobHints{Lambdas: uint32(*lambdas), CapacityBytes: capBytes, PeakMbps: *peak, LatencySensitive: *latency}
	tc, err := tf.config(pki.RoleClient, pki.RoleOperator)
	if err != nil {
		return fail("job register: %v", err)
	}
	mc, ctx, done := ctlClient(*addr, tc)
	defer done()
	excess, leader, ctlPrices, err := checkHints(ctx, *addr, &tf, hints, prices)
	if unreachable(err) {
		return fail("job register: %v", err)
	}
	code, ok, later := reportHints(excess, err, *strict)
	if !ok {
		return code
	}
	if note := unusedPrices(&pf, hinted(hints), ctlPrices); note != "" {
		later = append(later, note)
	}
	if list := ctlAddr(*addr); leaderFirst(list, leader) != list {
		mc = metaclient.New(leaderFirst(list, leader), metaclient.Options{TLS: tc, RetryFor: ctlRetryFor(list)})
		defer mc.Close()
	}
	m, err := registerJob(ctx, mc, &wire.JobRegister{Name: pos[0], TTL: *ttl, Hints: hints})
	if we := (*wire.Error)(nil); errors.As(err, &we) && we.Code == wire.CodeMalformed && we.Msg != "" {
		// The controller's bounds on hints (a --lambdas hint's bandwidth
		// at its Mb/s per lambda) are the flags' limits: a usage error,
		// not "malformed frame" with exit 1.
		return usageError("job register", fmt.Errorf("the controller refused the hints: %s", we.Msg))
	}
	if err != nil {
		return fail("job register: %v", ctlError(err, *addr, tf.insecure))
	}
	out := jobMapJSON{JobID: m.Job, Token: token.Format(m.Token), Tier: tierName(m.Tier), Epoch: m.Epoch, Nodes: mapNodesJSON(m.Nodes),
		AllocMbps: m.AllocMbps, AllocBytes: m.AllocBytes, SizedFrom: m.Sized.String()}
	out.Quota = quotaJSON{Bytes: m.Quota.Bytes, LeftBytes: m.Quota.LeftBytes, Mbps: m.Quota.Mbps, LeftMbps: m.Quota.LeftMbps}
	out.Note = m.Note
	if m.Note != "" {
		later = append(later, "note: "+m.Note)
	}
	if !m.Expires.IsZero() {
		out.Expires = m.Expires.UTC().Format(time.RFC3339)
	}
	for _, line := range later {
		warn("job register", "%s", line)
	}
	if *asJSON {
		return printJSON(out)
	}
	fmt.Printf("job %s registered: %d %s node(s), map epoch %d\n", out.JobID, len(out.Nodes), out.Tier, out.Epoch)
	for _, n := range out.Nodes {
		fmt.Printf("  %-22s weight %.3f  %s\n", n.Addr, n.Weight, n.State)
	}
	if line := allotmentLine(m); line != "" {
		fmt.Println(line)
	}
	if line := quotaLine(m.Quota); line != "" {
		fmt.Println(line)
	}
	fmt.Println(expiryLine(m.Expires, *ttl, time.Now()))
	fmt.Printf("export %s=%s\n", envToken, out.Token)
	return 0
}

// expiryLine says when a job registered at now with --ttl asked (0: the
// controller's default) expires, as granted: "token expires at T (in D)",
// with "(capped by the controller's --max-token-ttl: --ttl asked X)" when
// the grant is shorter than asked, or "token never expires".
func expiryLine(expires time.Time, asked time.Duration, now time.Time) string {
	if expires.IsZero() {
		return "token never expires"
	}
	granted := expires.Sub(now).Round(time.Second)
	line := fmt.Sprintf("token expires at %s (in %v); the controller then ends the job", expires.UTC().Format(time.RFC3339), granted)
	if asked > 0 && granted < asked-time.Second {
		line += fmt.Sprintf(" (capped by the controller's --max-token-ttl: --ttl asked %v)", asked)
	}
	return line
}

// unusedPrices is job register's warning when price flags were given and
// not used: no hint was checked (hinted false), or the controller sent
// its own prices (ctlPrices). "" when none was given or they were used.
// Before, they were passed over silently (a new user's trial).
func unusedPrices(pf *priceFlags, hinted, ctlPrices bool) string {
	switch {
	case !pf.given():
		return ""
	case !hinted:
		return pf.givenText() + " not used: they price only the check of capacity and bandwidth hints, and none was given; " +
			"the controller places the job at its own prices"
	case ctlPrices:
		return pf.givenText() + " not used: the controller sends its own prices, and the hints were checked at those; " +
			"it places the job at them too (pocket controller --prices FILE or --price-* sets them)"
	}
	return ""
}

// maxLambdas is the largest --lambdas hint taken.
const maxLambdas = 1 << 31

// checkRegisterFlags checks the flags of job register that have limits.
func checkRegisterFlags(ttl time.Duration, peakMbps float64, lambdas int64) error {
	switch {
	case ttl < 0:
		return fmt.Errorf("--ttl %v must not be negative (0: the controller's --token-ttl)", ttl)
	case peakMbps < 0 || math.IsNaN(peakMbps) || math.IsInf(peakMbps, 0):
		return fmt.Errorf("--peak-mbps %v: want a bandwidth in Mb/s, 0 or more (0: not given)", peakMbps)
	case lambdas < 0:
		return fmt.Errorf("--lambdas %d: want a number of lambdas, 0 or more (0: not given)", lambdas)
	case lambdas > maxLambdas:
		return fmt.Errorf("--lambdas %d is more than the limit of %d", lambdas, int64(maxLambdas))
	}
	return nil
}

// jobCmdArgs are what a command on one job by its token takes: the
// controller, the job's id and token, the TLS configuration and --json.
type jobCmdArgs struct {
	addr     string
	job      string
	token    []byte
	tc       *tls.Config
	json     bool
	insecure bool
	// given is the flags given that name the controller, the token and
	// TLS, as they were given (" --token-file F ..."), for a command this
	// one prints to run next.
	given string
}

// parseJobCmd parses the flags and JOBID of the job command name (jsonUsage
// describes its --json); when it should exit, ok is false and code its
// exit code.
func parseJobCmd(name, jsonUsage string, args []string) (a jobCmdArgs, code int, ok bool) {
	fs := newFlagSet(name)
	addr := fs.String("controller", "", "controller address, or a comma-separated list of controllers of which one is active (default $POCKET_CONTROLLER or "+ctlDefaultAddr+")")
	tokFile := fs.String("token-file", "", "file holding the job's token, mode 0600 (default $"+envToken+")")
	asJSON := fs.Bool("json", false, jsonUsage)
	var tf tlsFlags
	tf.bind(fs)
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return a, code, false
	}
	t, err := jobToken(*tokFile)
	if err != nil {
		return a, fail("%s: %v%s", name, err, lostTokenHint(name, pos[0])), false
	}
	tc, err := tf.config(pki.RoleClient, pki.RoleOperator)
	if err != nil {
		return a, fail("%s: %v", name, err), false
	}
	given := givenFlags(fs, "controller", "token-file", "tls-dir", "insecure")
	return jobCmdArgs{addr: *addr, job: pos[0], token: t, tc: tc, json: *asJSON, insecure: tf.insecure, given: given}, 0, true
}

// givenFlags is the flags of names that were set on fs, as " --NAME
// VALUE" (a bool as " --NAME", or " --NAME=false"), each value
// shell-quoted when it needs it.
func givenFlags(fs *flag.FlagSet, names ...string) string {
	var b strings.Builder
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(names, f.Name) {
			return
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			// --insecure=false means something now ($POCKET_INSECURE):
			// a false flag is repeated as given, not as --NAME.
			if v := f.Value.String(); v != "true" {
				b.WriteString(" --" + f.Name + "=" + v)
				return
			}
			b.WriteString(" --" + f.Name)
			return
		}
		b.WriteString(" --" + f.Name + " " + shellQuoted(f.Value.String()))
	})
	return b.String()
}

// shellQuoted is s as one shell word: itself when it holds only letters,
// digits and -_./:,@=+, else single-quoted as the completion scripts
// quote (zshQuote).
func shellQuoted(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:,@=+") == "" {
		return s
	}
	return zshQuote(s)
}

func runJobDeregister(args []string) int {
	a, code, ok := parseJobCmd("job deregister", "print the result as JSON", args)
	if !ok {
		return code
	}
	mc, ctx, done := ctlClient(a.addr, a.tc)
	defer done()
	// The allotment the job holds, read before the controller forgets it,
	// to say what the deregistration gives back.
	held, heldErr := mc.GetMap(ctx, a.job, a.token)
	if unreachable(heldErr) {
		return fail("job deregister: %v", ctlError(heldErr, a.addr, a.insecure))
	}
	if heldErr != nil {
		held = nil
	}
	res, unreported, cred, ended, err := deregister(ctx, a.addr, a.tc, a.job, a.token)
	if err != nil {
		hint := ""
		if errors.Is(err, wire.ErrBadToken) {
			hint = lostTokenHint("job deregister", a.job)
		}
		return fail("job deregister: %v%s", jobIDHint(a.job, ctlError(err, a.addr, a.insecure)), hint)
	}
	if ended {
		return failEnded(ctx, a, cred)
	}
	dead, others := res.Split()
	kept, keptErr := persistedBytes(ctx, cred)
	count := persistedCount{bytes: kept, counted: keptErr == nil, failed: usageFailures(keptErr, dead)}
	allDead := res.Nodes == 0 && len(others) == 0 && len(dead) > 0
	if a.json {
		v := deregisterView(a.job, res, cred, count, allDead)
		v.Returned, v.Unreported = returnedView(held), unreported

		if code := printJSON(v); code != 0 {
			return code
		}
	} else if unreported {
		fmt.Printf("job %s deregistered: the controller's reply was lost after the request was sent; asked again, it found the job "+
			"ended. What its nodes dropped is not known (they drop its data when they hear of its end)\n", a.job)
		printPersisted(cred, count, allDead)
	} else {
		fmt.Printf("job %s deregistered: %d node(s) dropped %d stored record(s) (values and the chunks of large ones), %s\n", a.job, res.Nodes, res.Values, units.FormatSize(res.Bytes))
		if line := returnedLine(held); line != "" {
			fmt.Println(line)
		}
		for _, a := range dead {
			fmt.Printf("node %s is dead: its copy of the job's values went with it, those put with --persist too\n", a)
		}
		printPersisted(cred, count, allDead)
	}
	if len(others) > 0 {
		return fail("job deregister: %d node(s) did not drop the job's data: %s", len(others), strings.Join(others, "; "))
	}
	return 0
}

// deregisterJSON is the --json form of `pocket job deregister`. Every
// field is always there, whatever happened: lists are [] when empty, text
// is "" when there is nothing to say, and no field is ever null.
type deregisterJSON struct {
	dropJSON
	// Credential reads and deletes the values put with --persist that the
	// job's nodes keep (POCKET_CREDENTIAL).
	Credential string `json:"credential"`
	// Unreported: the reply of the request that ended the job was lost
	// and the request sent again found it ended (pocket.DropResult's
	// Unreported): the drop figures are zero and mean nothing.
	Unreported bool `json:"unreported"`
	// PersistedCounted: the job's live nodes were asked what they keep of
	// it; PersistedBytes is then their bytes (0 when every node of the map
	// is dead). When not counted, PersistedBytes is 0 and means nothing,
	// and PersistedCountFailures names the live nodes that could not be
	// asked, one entry a node ([] when only dead nodes failed the count).
	PersistedCounted       bool     `json:"persisted_counted"`
	PersistedBytes         int64    `json:"persisted_bytes"`
	PersistedCountFailures []string `json:"persisted_count_failures"`
	// Returned is the allotment the job held, which the deregistration
	// gave back to the cluster and to its client's quota.
	Returned returnedJSON `json:"returned"`
}

// lostTokenHint is what job deregister adds to a missing or wrong token's
// error: the operator's way to end a job whose token was lost (a new
// user's trial found pocket job end only in pocket job --help). Other
// commands add nothing.
func lostTokenHint(cmd, job string) string {
	if cmd != "job deregister" {
		return ""
	}
	return fmt.Sprintf("; if %s is the job's id and its token is lost, the operator ends the job with pocket job end %s --secret-file FILE", job, job)
}

// dropJSON is what a job's end dropped, in the --json forms of `pocket
// job deregister` and `pocket job end`.
type dropJSON struct {
	JobID string `json:"job_id"`
	// Nodes dropped the job's data: Values stored records (values and the
	// chunks of large ones), Bytes bytes. Failed nodes did not (dead ones
	// included).
	Nodes  uint32 `json:"nodes"`
	Failed uint32 `json:"failed"`
	Values uint64 `json:"values"`
	Bytes  int64  `json:"bytes"`
	// DeadNodes are the addresses of the dead nodes of the job's map: their
	// copy of its values went with them. Failures are the other failures,
	// one entry a node ("drop job J at ADDR: ..."); any makes the command
	// exit 1. Message is the controller's text of them all, entries joined
	// by "; ", "" when no node failed (DeadNodes and Failures split it).
	DeadNodes []string `json:"dead_nodes"`
	Failures  []string `json:"failures"`
	Message   string   `json:"message"`
}

// dropView is the --json form of job's drop result res.
func dropView(job string, res *wire.DropResult) dropJSON {
	dead, others := res.Split()
	return dropJSON{JobID: job, Nodes: res.Nodes, Failed: res.Failed, Values: res.Values, Bytes: res.Bytes,
		DeadNodes: nonNil(dead), Failures: nonNil(others), Message: res.Message}
}

// returnedJSON is the allotment a deregistered job gave back to the
// cluster and to its client's quota: Known is false when its map could not
// be read first (the figures are 0 then).
type returnedJSON struct {
	Known bool    `json:"known"`
	Bytes int64   `json:"alloc_bytes"`
	Mbps  float64 `json:"alloc_mbps"`
}

// returnedView is the allotment of held, the job's map read before its
// deregistration (nil: not read).
func returnedView(held *wire.PlacementMap) returnedJSON {
	if held == nil {
		return returnedJSON{}
	}
	return returnedJSON{Known: true, Bytes: held.AllocBytes, Mbps: held.AllocMbps}
}

// returnedLine says what allotment a deregistration gave back ("" when
// the job's map could not be read first): "gave back its allotment of
// 600 Mb/s and 100MiB (to the cluster, and to its client's quota if it
// has one)".
func returnedLine(held *wire.PlacementMap) string {
	if held == nil {
		return ""
	}
	size := "no capacity"
	if held.AllocBytes > 0 {
		size = units.FormatSize(held.AllocBytes)
	}
	return fmt.Sprintf("gave back its allotment of %s Mb/s and %s (to the cluster, and to its client's quota if it has one)",
		mbpsText(held.AllocMbps), size)
}

// deregisterView is the --json form of job's deregistration res; c is the
// count of its persisted values, allDead says every node of its map is
// dead (none is left).
func deregisterView(job string, res *wire.DropResult, cred string, c persistedCount, allDead bool) deregisterJSON {
	v := deregisterJSON{dropJSON: dropView(job, res), Credential: cred,
		PersistedCounted: c.counted || allDead, PersistedCountFailures: nonNil(c.failed)}
	if c.counted && !allDead {
		v.PersistedBytes = c.bytes
	}
	if allDead {
		v.PersistedCountFailures = []string{}
	}
	return v
}

// nonNil is s, or an empty list for nil: a list in --json output is []
// when empty, never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// credential is the job's map and token as pocket.Job.Credential gives it,
// fetched before the job is deregistered (the controller forgets it then),
// and whether the job has ended already (deregistered, or its token
// expired: the credential then carries the map it ended with).
func credential(ctx context.Context, addr string, tc *tls.Config, job string, tok []byte) (string, bool, error) {
	s, j, err := openJob(ctx, addr, tc, job, tok)
	if err != nil {
		return "", false, err
	}
	defer s.Close()
	return j.Credential(), j.Ended(), nil
}

// openJob opens the job by its token through the SDK (an ended job's
// handle when it has ended); the caller closes the Store.
func openJob(ctx context.Context, addr string, tc *tls.Config, job string, tok []byte) (*pocket.Store, *pocket.Job, error) {
	// tc is nil when the TLS flags resolved to none (--insecure, or no
	// directory): plain TCP then, whatever POCKET_TLS_DIR says.
	s, err := pocket.Dial(ctx, ctlAddr(addr), pocket.Config{TLS: tc, Insecure: tc == nil, ControllerWait: ctlRetryFor(ctlAddr(addr))})
	if err != nil {
		return nil, nil, err
	}
	j, err := s.OpenJob(ctx, job, tok)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, j, nil
}

// deregister deregisters the job through the SDK (pocket.Job.Deregister)
// and returns the controller's answer and the ended job's credential: its
// map as the deregistration took it, the dead nodes the controller named
// marked dead (so a count or a reader of the credential skips them at
// once). A *pocket.DropError (nodes that did not drop the job's data) is
// no error here: the job is deregistered, and res says which nodes. A job
// that has ended already is not deregistered again: ended is true and
// cred its credential. unreported: the deregistration's reply was lost and
// asking again found the job ended (pocket.DropResult.Unreported): res's
// figures are zero and mean nothing.
func deregister(ctx context.Context, addr string, tc *tls.Config, job string, tok []byte) (res *wire.DropResult, unreported bool, cred string, ended bool, err error) {
	s, j, err := openJob(ctx, addr, tc, job, tok)
	if err != nil {
		return nil, false, "", false, err
	}
	defer s.Close()
	if j.Ended() {
		return nil, false, j.Credential(), true, nil
	}
	var de *pocket.DropError
	if err := j.Deregister(ctx); err != nil && !errors.As(err, &de) {
		return nil, false, "", false, err
	}
	r, _ := j.Deregistration()
	return &wire.DropResult{Nodes: uint32(r.Nodes), Failed: uint32(r.Failed), Values: r.Values, Bytes: r.Bytes, Message: r.Message},
		r.Unreported, j.Credential(), false, nil
}

// failEnded is job deregister's answer for a job that has ended already:
// its data is gone but for the values put with --persist, which cred
// reads. When its nodes are counted and keep none, the credential, a
// secret, is not printed: it reads nothing (a new user's trial found it
// printed on a second deregister of a job that never persisted a value).
func failEnded(ctx context.Context, a jobCmdArgs, cred string) int {
	job := a.job
	if kept, err := persistedBytes(ctx, cred); err == nil && kept == 0 {
		warn("job deregister", "job %s is not registered: it has ended already (deregistered, or its token expired), and its "+
			"nodes keep none of its values", job)
		return 1
	}
	// The credential, a secret, is not printed on stderr, where logs keep
	// it (a new user's trial): job credential prints it on stdout.
	warn("job deregister", "job %s is not registered: it has ended already (deregistered, or its token expired), and its "+
		"nodes dropped its data except values put with --persist, which stay read-only. To read or delete them: "+
		"eval \"$(pocket job credential%s %s)\"", job, a.given, job)
	return 1
}

// jobCredentialJSON is the --json form of `pocket job credential`.
type jobCredentialJSON struct {
	JobID string `json:"job_id"`
	// Ended: the job was deregistered or its token expired; the
	// credential then reads and deletes its values put with --persist.
	Ended      bool   `json:"ended"`
	Credential string `json:"credential"`
}

func runJobCredential(args []string) int {
	a, code, ok := parseJobCmd("job credential", "print a JSON object with job_id, ended and credential", args)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cred, ended, err := credential(ctx, a.addr, a.tc, a.job, a.token)
	if err != nil {
		return fail("job credential: %v", ctlError(err, a.addr, a.insecure))
	}
	if a.json {
		return printJSON(jobCredentialJSON{JobID: a.job, Ended: ended, Credential: cred})
	}
	// The explanation goes to stderr, so eval "$(pocket job credential
	// JOB)" runs the export line alone.
	if ended {
		fmt.Fprintf(os.Stderr, "job %s has ended (deregistered, or its token expired); its values put with --persist stay read-only. To read or delete them:\n", a.job)
	} else {
		fmt.Fprintf(os.Stderr, "job %s is live; its credential reads and deletes its values (a secret, as its token):\n", a.job)
	}
	fmt.Printf("export POCKET_CREDENTIAL=%s\n", cred)
	return 0
}

// persistedBytes is what a deregistered job's nodes still hold of it: its
// values put with --persist (pocket.Job.Usage over its credential, which
// needs no controller), bounded by persistedWait.
func persistedBytes(ctx context.Context, cred string) (int64, error) {
	s := pocket.NewStore(nil, pocket.Config{})
	defer s.Close()
	j, err := s.OpenCredential(cred)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, persistedWait)
	defer cancel()
	return j.Usage(ctx)
}

// persistedWait bounds persistedBytes. It is shorter than the SDK's wait
// before a node of an ended job that refuses connections counts as gone
// (5 s, pocket/gone.go): at deregistration the controller has just said
// which nodes are dead, and a node it lists alive that cannot be reached
// is reported as not counted, not taken for gone (which would count its
// values as none).
const persistedWait = 3 * time.Second

// persistedCount is what persistedBytes found of a deregistered job's
// values put with --persist: their bytes when counted, else the failures
// of the nodes that could not be asked, besides the dead ones
// (usageFailures; none when only dead nodes failed the count).
type persistedCount struct {
	bytes   int64
	counted bool
	failed  []string
}

// printPersisted says what became of the job's values put with --persist
// and, when some may be left, the credential that reads and deletes them.
// allDead: every node of the job's map is dead, so none is left.
func printPersisted(cred string, c persistedCount, allDead bool) {
	switch {
	case allDead:
		fmt.Println("no values put with --persist are left: the job's node(s) are dead")
		return
	case !c.counted && len(c.failed) > 0:
		fmt.Printf("any values put with --persist on the job's live nodes stay read-only (not counted: %s); to read or delete them:\n",
			strings.Join(c.failed, "; "))
	case !c.counted:
		fmt.Println("any values put with --persist on the job's live nodes stay read-only (not counted, as the dead nodes failed the count); to read or delete them:")
	case c.bytes == 0:
		// Not "none was put": values put with --persist go with a node
		// that restarts or dies (a new user's trial read that none was put).
		fmt.Println("the job's nodes keep none of its values (none put with --persist is left)")
		return
	default:
		fmt.Printf("values put with --persist stay read-only (%s on the job's nodes); to read or delete them:\n", units.FormatSize(c.bytes))
	}
	fmt.Printf("export POCKET_CREDENTIAL=%s\n", cred)
}

// usageFailures are the failures of persistedBytes's count (err, the
// fan-out's errors joined), one entry per node, without those of the
// dead nodes (whose values are gone) and without the "wire: " prefix of
// the error registry, and on one line; none when err is nil or names
// dead nodes only.
func usageFailures(err error, dead []string) []string {
	if err == nil {
		return nil
	}
	parts := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	}
	var out []string
	for _, p := range parts {
		msg := strings.ReplaceAll(strings.TrimPrefix(p.Error(), "wire: "), "\n", "; ")
		if !slices.ContainsFunc(dead, func(a string) bool { return strings.Contains(msg, "node "+a+":") }) {
			out = append(out, msg)
		}
	}
	return out
}

// registerJob registers req: name, hints and the token's TTL.
func registerJob(ctx context.Context, mc *metaclient.Client, req *wire.JobRegister) (*wire.PlacementMap, error) {
	return mc.Register(ctx, req)
}

// tierName names a PlacementMap.Tier or TierStat.Kind number (wire.Tier).
func tierName(kind uint8) string { return wire.Tier(kind).String() }

// printJSON writes v to stdout as writeJSON does: every --json output of
// the CLI but probe's goes through it.
func printJSON(v any) int {
	if err := writeJSON(os.Stdout, v); err != nil {
		return fail("json: %v", err)
	}
	return 0
}

// allotmentLine says what a registration's reply allotted and whence its
// size came ("" when the controller does not say).
func allotmentLine(m *wire.PlacementMap) string {
	var from string
	switch m.Sized {
	case wire.SizedHints:
		from = "sized from its hints"
	case wire.SizedProfile:
		from = "sized from its name's profile (pocket job profile " + jobNameOf(m.Job) + ")"
	case wire.SizedDefault:
		from = "Pocket's default size (no hints, no profile of its name)"
	default:
		return ""
	}
	size := "no capacity reserved"
	if m.AllocBytes > 0 {
		size = units.FormatSize(m.AllocBytes)
	}
	return fmt.Sprintf("allotted %.0f Mb/s, %s: %s", m.AllocMbps, size, from)
}

// quotaLine says what is left of the client's allotment quotas ("" with
// none): "left of this client's quota: 100MiB of 300MiB, 1400 of 2000
// Mb/s".
func quotaLine(q wire.QuotaLeft) string {
	var parts []string
	if q.Bytes > 0 {
		parts = append(parts, fmt.Sprintf("%s of %s", units.FormatSize(q.LeftBytes), units.FormatSize(q.Bytes)))
	}
	if q.Mbps > 0 {
		parts = append(parts, fmt.Sprintf("%s of %s Mb/s", mbpsText(q.LeftMbps), mbpsText(q.Mbps)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "left of this client's quota: " + strings.Join(parts, ", ")
}

// jobNameOf is the name a job id was registered under (NAME-SEQ).
func jobNameOf(id string) string {
	if i := strings.LastIndexByte(id, '-'); i > 0 {
		return id[:i]
	}
	return id
}

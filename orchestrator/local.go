package orchestrator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Local runs each node as a child process of this one: the `pocket` binary
// (Binary, default this executable) with `node --listen 127.0.0.1:0`. The
// node prints the address it bound on its first line, which is how Start
// learns it. Children get SIGTERM on Stop and Close, and are
// killed if they do not exit within StopTimeout. Every child's exit is
// logged on Logger with its node's id, address, pid and exit status: at
// info level after Stop or Close, and when it exited 0 by itself (a node
// exits 0 once its controller has drained and retired it, as after
// `pocket node drain`; a node stopped by SIGTERM from outside exits 0
// too); at warning level when it exited otherwise unasked (it crashed, or
// was killed from outside).
type Local struct {
	Binary      string
	Env         []string // extra environment, e.g. POCKET_SECRET=...
	Host        string   // interface to listen on; default 127.0.0.1
	StopTimeout time.Duration
	Log         io.Writer    // the nodes' output after their first line; nil discards
	Logger      *slog.Logger // where the nodes' exits are logged; nil: not logged
	// NVMeDir holds the NVMe tier files of nodes whose NodeSpec.NVMe is a
	// size alone ("4GiB", no PATH:): each such node gets a file of its
	// own there, named by its id (local-N.nvme), which this orchestrator
	// creates (exclusively: Start fails when anything is at the path) and
	// removes once the node's process has exited (a node's values do not
	// outlive it). The directory must exist, on a file system that allows
	// O_DIRECT (tmpfs does not), and be this orchestrator's alone; ""
	// refuses such specs.
	NVMeDir string
	// Ports, when not zero, are the ports the nodes listen on: each node
	// takes the lowest port of the range that no running node of this
	// orchestrator holds and that can be bound when it starts (a port
	// another program holds is passed over). Start fails with ErrNoPort
	// when none is left. Zero: ports the kernel picks.
	Ports PortRange
	// MetricsFor, when set, is the --metrics address of the node that
	// listens on port (a port of Ports; "": none), added to its
	// arguments. A node started at a port serves its /metrics where any
	// earlier node of that port did: a new user's trial of pocket up
	// --metrics-base had the autoscaler drain two of the first nodes and
	// start nodes again at their addresses, which served no /metrics,
	// while up's banner still listed the endpoints of the nodes gone.
	MetricsFor func(port int) string

	mu    sync.Mutex
	procs map[string]*localProc
	held  map[int]bool // ports of Ports taken by nodes starting or running
	seq   int

	beforeRun func(port int) // tests: runs between takePort and the node's start
}

// PortRange is the ports First to Last, both included (1 to 65535).
type PortRange struct{ First, Last int }

// ErrNoPort: every port of Local.Ports is held.
var ErrNoPort = errors.New("orchestrator: no free port left in the nodes' port range")

type localProc struct {
	node     Node
	cmd      *exec.Cmd
	done     chan struct{}
	stopping atomic.Bool // Stop or Close sent it SIGTERM
}

var _ Orchestrator = (*Local)(nil)

var servingLine = regexp.MustCompile(`serving on (\S+)`)

// Start implements Orchestrator.
func (l *Local) Start(ctx context.Context, spec NodeSpec) (Node, error) {
	bin := l.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return Node{}, fmt.Errorf("orchestrator: find own binary: %w", err)
		}
		bin = exe
	}
	host := l.Host
	if host == "" {
		host = "127.0.0.1"
	}
	id := l.nextID()
	lost := map[int]bool{} // ports another program bound before the node did
	for {
		port, err := l.takePort(host, lost)
		if err != nil {
			return Node{}, err
		}
		nvme, file, err := l.nvmeOf(spec, id)
		if err != nil {
			l.releasePort(port)
			return Node{}, err
		}
		if l.beforeRun != nil {
			l.beforeRun(port)
		}
		cmd, addr, err := l.run(ctx, bin, l.nodeArgs(net.JoinHostPort(host, strconv.Itoa(port)), nvme, spec, port))
		if err == nil {
			return l.track(cmd, Node{ID: id, Addr: addr}, file, port), nil
		}
		removeFile(file)
		l.releasePort(port)
		if port == 0 || bindable(host, port) || ctx.Err() != nil {
			return Node{}, err
		}
		// Taken between takePort's look and the node's bind (another
		// orchestrator's node, say): the next port of the range.
		lost[port] = true
	}
}

// bindable reports whether host:port can be bound now.
func bindable(host string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// takePort holds the lowest port of l.Ports that no node holds, that is
// not in skip, and that host:port can be bound on now (0 without a range:
// the kernel picks).
func (l *Local) takePort(host string, skip map[int]bool) (int, error) {
	if l.Ports == (PortRange{}) {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := l.Ports.First; p <= l.Ports.Last; p++ {
		if l.held[p] || skip[p] {
			continue
		}
		if !bindable(host, p) {
			continue // another program's
		}
		if l.held == nil {
			l.held = map[int]bool{}
		}
		l.held[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("%w (%d-%d)", ErrNoPort, l.Ports.First, l.Ports.Last)
}

// releasePort gives back a port takePort held (0: none).
func (l *Local) releasePort(p int) {
	if p == 0 {
		return
	}
	l.mu.Lock()
	delete(l.held, p)
	l.mu.Unlock()
}

// nodeArgs is the command line of a node of spec listening on listen
// (HOST:PORT), with the NVMe tier nvme (PATH:SIZE, or "").
func (l *Local) nodeArgs(listen, nvme string, spec NodeSpec, port int) []string {
	args := []string{"node", "--listen", listen, "--dram", spec.DRAM}
	if l.MetricsFor != nil && port != 0 {
		if m := l.MetricsFor(port); m != "" {
			args = append(args, "--metrics", m)
		}
	}
	if nvme != "" {
		args = append(args, "--nvme", nvme)
	}
	if spec.Controller != "" {
		args = append(args, "--controller", spec.Controller)
	}
	return append(args, spec.Args...)
}

// run starts bin with args and waits for the address it serves on; on
// failure nothing of it is left running.
func (l *Local) run(ctx context.Context, bin string, args []string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), l.Env...)
	cmd.Stderr = l.logOut()
	// A node must not outlive the process that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("orchestrator: start node: %w", err)
	}
	addr, err := l.awaitAddr(ctx, out)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, "", err
	}
	return cmd, addr, nil
}

func (l *Local) nextID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return fmt.Sprintf("local-%d", l.seq)
}

// nvmeOf is the --nvme value of node id started with spec, and the file
// this orchestrator made it for ("" when spec gives a PATH:SIZE or no
// NVMe tier).
func (l *Local) nvmeOf(spec NodeSpec, id string) (arg, file string, err error) {
	if spec.NVMe == "" || strings.Contains(spec.NVMe, ":") {
		return spec.NVMe, "", nil
	}
	if l.NVMeDir == "" {
		return "", "", fmt.Errorf("orchestrator: NVMe tier of %s for each node, but no directory for their files (Local.NVMeDir)", spec.NVMe)
	}
	file = filepath.Join(l.NVMeDir, id+".nvme")
	// Made here, exclusively, for the node to fill: a file or link
	// already at the path (another orchestrator's node, one left by a
	// killed run, or a link planted to have a node write elsewhere) fails
	// the start instead of being shared or followed.
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("orchestrator: the node's NVMe file: %w", err)
	}
	_ = f.Close()
	return file + ":" + spec.NVMe, file, nil
}

// removeFile removes a node's NVMe tier file, if it made one.
func removeFile(file string) {
	if file != "" {
		_ = os.Remove(file)
	}
}

func (l *Local) logOut() io.Writer {
	if l.Log == nil {
		return io.Discard
	}
	return l.Log
}

// awaitAddr reads the node's first line for its bound address, then keeps
// copying its output to the log.
func (l *Local) awaitAddr(ctx context.Context, out io.Reader) (string, error) {
	type res struct {
		addr string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		r := bufio.NewReader(out)
		line, err := r.ReadString('\n')
		m := servingLine.FindStringSubmatch(line)
		if m == nil {
			ch <- res{err: fmt.Errorf("orchestrator: node did not start: %q %v", line, err)}
			return
		}
		ch <- res{addr: m[1]}
		_, _ = io.Copy(l.logOut(), r)
	}()
	select {
	case r := <-ch:
		return r.addr, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (l *Local) track(cmd *exec.Cmd, node Node, file string, port int) Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.procs == nil {
		l.procs = map[string]*localProc{}
	}
	p := &localProc{node: node, cmd: cmd, done: make(chan struct{})}
	l.procs[p.node.ID] = p
	go func() {
		_ = cmd.Wait()
		removeFile(file)
		l.releasePort(port)
		l.logExit(p)
		close(p.done)
	}()
	return p.node
}

// logExit logs the exit of p's process (Local's doc says how).
func (l *Local) logExit(p *localProc) {
	if l.Logger == nil {
		return
	}
	attrs := []any{"id", p.node.ID, "addr", p.node.Addr, "pid", p.cmd.Process.Pid, "status", p.cmd.ProcessState.String()}
	if p.stopping.Load() {
		l.Logger.Info("orchestrator: node stopped", attrs...)
		return
	}
	if p.cmd.ProcessState.Success() {
		l.Logger.Info("orchestrator: node left after its drain (it exits 0 once its controller retires it, or when stopped by a signal from outside)", attrs...)
		return
	}
	l.Logger.Warn("orchestrator: node exited unasked (crashed or killed): its values are unavailable (a node restarted at its address comes back empty; the controller marks it dead, then its jobs lose it)", attrs...)
}

// Stop implements Orchestrator: SIGTERM, then SIGKILL after StopTimeout.
func (l *Local) Stop(ctx context.Context, id string) error {
	l.mu.Lock()
	p := l.procs[id]
	delete(l.procs, id)
	l.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	return l.stop(ctx, p)
}

func (l *Local) stop(ctx context.Context, p *localProc) error {
	p.stopping.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timeout := l.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return nil
}

// Nodes implements Orchestrator: the nodes started and still running (a
// node that exited, crashed or drained and retired by its controller, is
// not listed; Stop still accepts its id).
func (l *Local) Nodes() []Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	ns := make([]Node, 0, len(l.procs))
	for _, p := range l.procs {
		select {
		case <-p.done:
			continue
		default:
		}
		ns = append(ns, p.node)
	}
	return ns
}

// Close stops every node this orchestrator started.
func (l *Local) Close() error {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.stop(context.Background(), p)
		}()
	}
	wg.Wait()
	return nil
}

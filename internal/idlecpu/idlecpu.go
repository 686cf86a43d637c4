// Package idlecpu tells busy pollers whether the machine has CPU to spare.
//
// Busy polling (an event loop spinning on epoll_wait, a disk waiter
// spinning on the io_uring completion queue) shortens wake-ups only while a
// core would otherwise sit idle: on a machine whose cores are all busy, a
// spinning thread takes CPU from the threads that produce its work (on this
// project's 2-core machine it cost the pipelined benchmarks up to a tenth).
// A Gate samples the machine's CPU times in /proc/stat and is open while at
// least MinIdleCores stayed idle over the last interval, spinning included:
// one loop spinning for a single client leaves that much idle on two cores
// and keeps spinning; spinners that would take the last cores close the
// gate on themselves.
package idlecpu

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Start.
const (
	// Interval is how often a Gate rereads the CPU times: often enough to
	// stop spinning soon after load arrives, rarely enough that an idle
	// node's sampler costs nothing measurable.
	Interval = 100 * time.Millisecond
	// MinIdleCores is the idle CPU, in cores, below which the gate closes.
	MinIdleCores = 0.5
)

// Gate is open while the machine has idle CPU; see the package doc. A nil
// *Gate is always open.
type Gate struct {
	open atomic.Bool
	// asked is set by Open and cleared by each sample: /proc/stat is read
	// only while somebody asks, so an idle node costs nothing. The delta
	// after a pause spans the pause, which was idle, so the gate opens.
	asked atomic.Bool
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// cpuTimes reads the machine's idle and total CPU time, summed over CPUs,
// in any one unit.
type cpuTimes func() (idle, total float64, err error)

// procStat reads the first line of /proc/stat into a reused buffer, not
// the whole file through prometheus/procfs (the project's choice for
// telemetry): parsing every per-CPU and interrupt line twenty times a
// second cost an idle node about 1 % of a core.
func procStat() cpuTimes {
	var buf [512]byte
	return func() (float64, float64, error) {
		f, err := os.Open("/proc/stat")
		if err != nil {
			return 0, 0, err
		}
		n, err := f.ReadAt(buf[:], 0)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		return parseCPULine(buf[:n])
	}
}

var errStatFormat = errors.New("idlecpu: no cpu line at the start of /proc/stat")

// parseCPULine reads "cpu  user nice system idle iowait irq softirq
// steal ..." (clock ticks) and returns idle+iowait and the sum of the
// eight fields (guest time is already inside user and nice).
func parseCPULine(b []byte) (idle, total float64, err error) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	f := bytes.Fields(b)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, 0, errStatFormat
	}
	var v [8]float64
	for i := range v {
		u, err := strconv.ParseUint(string(f[i+1]), 10, 64)
		if err != nil {
			return 0, 0, errStatFormat
		}
		v[i] = float64(u)
		total += v[i]
	}
	return v[3] + v[4], total, nil
}

// Start samples /proc/stat every Interval until Close. The gate starts
// closed and stays closed if the CPU times cannot be read.
func Start() *Gate { return start(procStat(), Interval) }

func start(read cpuTimes, interval time.Duration) *Gate {
	g := &Gate{stop: make(chan struct{}), done: make(chan struct{})}
	go g.run(read, interval)
	return g
}

// Open reports whether spinning is allowed now. It writes to the gate
// only when the sampler has consumed the last ask, so the loops calling it
// share its cache line read-only almost always.
func (g *Gate) Open() bool {
	if g == nil {
		return true
	}
	if !g.asked.Load() {
		g.asked.Store(true)
	}
	return g.open.Load()
}

func (g *Gate) run(read cpuTimes, interval time.Duration) {
	defer close(g.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	idle0, total0, err := read()
	ncpu := float64(runtime.NumCPU())
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		if !g.asked.Swap(false) {
			continue
		}
		idle, total, rerr := read()
		if err == nil && rerr == nil && total > total0 {
			g.open.Store((idle-idle0)/(total-total0)*ncpu >= MinIdleCores)
		}
		idle0, total0, err = idle, total, rerr
	}
}

// Close stops the sampler; the gate keeps its last state. Close of a nil
// gate, or a second Close, does nothing.
func (g *Gate) Close() {
	if g == nil {
		return
	}
	g.once.Do(func() { close(g.stop) })
	<-g.done
}

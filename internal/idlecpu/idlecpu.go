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
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
)

// Defaults for Start.
const (
	// Interval is how often a Gate rereads the CPU times.
	Interval = 50 * time.Millisecond
	// MinIdleCores is the idle CPU, in cores, below which the gate closes.
	MinIdleCores = 0.5
)

// Gate is open while the machine has idle CPU; see the package doc. A nil
// *Gate is always open.
type Gate struct {
	open atomic.Bool
	stop chan struct{}
	done chan struct{}
}

// cpuTimes reads the machine's idle and total CPU seconds, summed over
// CPUs.
type cpuTimes func() (idle, total float64, err error)

func procStat() (idle, total float64, err error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, 0, err
	}
	st, err := fs.Stat()
	if err != nil {
		return 0, 0, err
	}
	c := st.CPUTotal
	idle = c.Idle + c.Iowait
	total = idle + c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	return idle, total, nil
}

// Start samples /proc/stat every Interval until Close. The gate starts
// closed and stays closed if the CPU times cannot be read.
func Start() *Gate { return start(procStat, Interval) }

func start(read cpuTimes, interval time.Duration) *Gate {
	g := &Gate{stop: make(chan struct{}), done: make(chan struct{})}
	go g.run(read, interval)
	return g
}

// Open reports whether spinning is allowed now.
func (g *Gate) Open() bool { return g == nil || g.open.Load() }

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
		idle, total, rerr := read()
		if err == nil && rerr == nil && total > total0 {
			g.open.Store((idle-idle0)/(total-total0)*ncpu >= MinIdleCores)
		}
		idle0, total0, err = idle, total, rerr
	}
}

// Close stops the sampler; the gate keeps its last state. Close of a nil
// gate does nothing.
func (g *Gate) Close() {
	if g == nil {
		return
	}
	close(g.stop)
	<-g.done
}

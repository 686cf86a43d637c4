package netio

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
)

// SpinSampleInterval is how often a server with Config.BusyPollIdleOnly
// rereads the machine's idle time to decide whether its loops may spin.
const SpinSampleInterval = 50 * time.Millisecond

// spinGate decides, for Config.BusyPollIdleOnly, whether loops may spin.
// Busy polling only helps while a core would otherwise sit idle: on a
// machine whose cores are all busy, a spinning loop takes CPU from the
// threads that produce its work (on this project's 2-core machine it cost
// the pipelined benchmarks up to a tenth). So the gate is open while at
// least spinIdleCores of the machine stayed idle over the last sample,
// spinning included: one loop spinning for a single client leaves that
// much idle on two cores and keeps spinning; loops that would take the
// last cores close the gate on themselves.
type spinGate struct {
	open atomic.Bool
	stop chan struct{}
	done chan struct{}
}

// spinIdleCores is the idle CPU, in cores, below which loops stop spinning.
const spinIdleCores = 0.5

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

// startSpinGate samples read every interval until stop. The gate starts
// closed and stays closed if the CPU times cannot be read.
func startSpinGate(read cpuTimes, interval time.Duration) *spinGate {
	g := &spinGate{stop: make(chan struct{}), done: make(chan struct{})}
	go g.run(read, interval)
	return g
}

func (g *spinGate) run(read cpuTimes, interval time.Duration) {
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
			g.open.Store((idle-idle0)/(total-total0)*ncpu >= spinIdleCores)
		}
		idle0, total0, err = idle, total, rerr
	}
}

func (g *spinGate) close() {
	close(g.stop)
	<-g.done
}

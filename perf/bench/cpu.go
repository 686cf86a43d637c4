package bench

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// CPU per operation. A shared machine's speed moves from run to run by more
// than many changes are worth, and the operations a run completes move with
// it. The CPU time the server spent per operation over the measured window,
// beside the generator's own over the same window, is a second view: on
// this project's 2-core VM, three rounds of one node build on 1 KiB PUTs
// pipelined 16 deep gave 884K-987K ops/s and a node-over-generator CPU
// ratio of 0.97-1.01. It is not free of the run's dynamics either: both
// figures fall when batches grow with throughput (a 50-connection GET run
// 19 % faster than its neighbours cost the node 8 % and the generator 20 %
// less per operation). Config.ServerPID asks Run for it.

// ProcessCPU returns the CPU time, user and system, all threads, that
// process pid has used so far: /proc/PID/stat's utime and stime, read
// through github.com/prometheus/procfs (the project's reader of /proc),
// at the 10 ms resolution of USER_HZ.
func ProcessCPU(pid int) (time.Duration, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, fmt.Errorf("bench: CPU time of process %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("bench: CPU time of process %d: %w", pid, err)
	}
	return time.Duration(st.UTime+st.STime) * time.Second / userHZ, nil
}

// userHZ is the unit of utime and stime: USER_HZ, which Linux fixes at 100
// for its user-space interfaces (proc(5), times(2)).
const userHZ = 100

// selfCPU is this process's CPU time, user and system, all threads
// (getrusage RUSAGE_SELF, microsecond resolution).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuWindow samples a server's and this process's CPU time when the
// measured window opens and when it closes.
type cpuWindow struct {
	pid    int
	end    time.Time     // when the window closes
	closed chan struct{} // closed once the close sample has run
	mu     sync.Mutex
	at     [2]time.Duration // server's CPU at open, close
	self   [2]time.Duration // ours
	taken  int              // samples taken: 0, 1 or 2
	err    error
	timers [2]*time.Timer
}

// startCPUWindow schedules the samples of process pid's CPU time at open
// and end.
func startCPUWindow(pid int, open, end time.Time) *cpuWindow {
	w := &cpuWindow{pid: pid, end: end, closed: make(chan struct{})}
	w.timers[0] = time.AfterFunc(time.Until(open), func() { w.sample(0) })
	w.timers[1] = time.AfterFunc(time.Until(end), func() {
		defer close(w.closed)
		w.sample(1)
	})
	return w
}

func (w *cpuWindow) sample(i int) {
	cpu, err := ProcessCPU(w.pid)
	self := selfCPU()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return
	}
	if w.taken != i { // the close fired before the open (a window of ~0)
		w.err = errors.New("bench: CPU samples out of order")
		return
	}
	w.at[i], w.self[i], w.taken = cpu, self, i+1
}

// result returns the server's and this process's CPU time over the
// window, or an error when either sample is missing (a run that ended
// early, a server that exited). Called once the run is over: when the
// window's close is due, it waits for that sample (its timer may fire a
// little after the workers stop); before it, the samples are called off.
func (w *cpuWindow) result() (server, self time.Duration, err error) {
	if time.Now().Before(w.end) {
		for _, t := range w.timers {
			t.Stop()
		}
	} else {
		select {
		case <-w.closed:
		case <-time.After(time.Second):
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.err != nil:
		return 0, 0, w.err
	case w.taken < 2:
		return 0, 0, errors.New("bench: the run ended before its measured window closed: no CPU figures")
	}
	return w.at[1] - w.at[0], w.self[1] - w.self[0], nil
}

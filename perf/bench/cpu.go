package bench

import (
	"errors"
	"fmt"
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
// measured window opens and when it closes, on a goroutine of its own.
type cpuWindow struct {
	end          time.Time     // when the window closes
	stop         chan struct{} // closed by result when the run ended early
	done         chan struct{} // closed when the goroutine has finished
	server, self time.Duration // over the window, once done
	err          error         // instead, once done
}

// errEndedEarly is a window's result when the run ended before it closed.
var errEndedEarly = errors.New("bench: the run ended before its measured window closed: no CPU figures")

// startCPUWindow samples process pid's CPU time, and ours, at open and
// end.
func startCPUWindow(pid int, open, end time.Time) *cpuWindow {
	w := &cpuWindow{end: end, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var at [2]time.Duration
		var self [2]time.Duration
		for i, t := range [2]time.Time{open, end} {
			select {
			case <-w.stop:
				w.err = errEndedEarly
				return
			case <-time.After(time.Until(t)):
			}
			var err error
			if at[i], err = ProcessCPU(pid); err != nil {
				w.err = err
				return
			}
			self[i] = selfCPU()
		}
		w.server, w.self = at[1]-at[0], self[1]-self[0]
	}()
	return w
}

// result returns the server's and this process's CPU time over the
// window, or an error when either sample is missing (a run that ended
// early, a server that exited). Called once the run is over: when the
// window's close is due it waits for that sample (taken a little after
// the workers stop, at most); before it, the sampling is called off.
func (w *cpuWindow) result() (server, self time.Duration, err error) {
	if time.Now().Before(w.end) {
		close(w.stop)
	}
	<-w.done
	return w.server, w.self, w.err
}

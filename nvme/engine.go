package nvme

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Engine selects how a Device issues its transfers.
type Engine uint8

// Engines. EngineAuto picks io_uring when ProbeUring succeeds, else the
// synchronous fallback (pread and pwrite).
const (
	EngineAuto Engine = iota
	EngineUring
	EngineSync
)

func (e Engine) String() string {
	switch e {
	case EngineUring:
		return "io_uring"
	case EngineSync:
		return "sync"
	}
	return "auto"
}

// IO is one transfer of a batch given to Device.Do. Buf, Off and Write are
// the request; Do sets N and Err. Buf must stay untouched until Do returns.
type IO struct {
	Write bool
	Buf   []byte
	Off   int64

	N   int
	Err error
}

// engine performs single attempts of transfers; the Device validates them
// before and retries partial transfers after. run returns when every IO in
// the batch has completed; it sets N (bytes moved) or Err on each.
type engine interface {
	run(fd int, ios []IO)
	kind() Engine
	close()
}

// errno turns a negative io_uring result into a named error.
func errnoErr(op string, res int32) error {
	return os.NewSyscallError(op, syscall.Errno(-res))
}

// syncEngine is the fallback where io_uring is missing: pread and pwrite,
// each holding one of a bounded number of tokens, because every blocking
// O_DIRECT call ties up an OS thread.
type syncEngine struct {
	sem    chan struct{}
	closed atomic.Bool
}

func newSyncEngine(depth int) *syncEngine {
	return &syncEngine{sem: make(chan struct{}, depth)}
}

func (e *syncEngine) kind() Engine { return EngineSync }

func (e *syncEngine) run(fd int, ios []IO) {
	if len(ios) == 1 {
		e.one(fd, &ios[0])
		return
	}
	var wg sync.WaitGroup
	for i := range ios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.one(fd, &ios[i])
		}()
	}
	wg.Wait()
}

func (e *syncEngine) one(fd int, io *IO) {
	if e.closed.Load() {
		io.Err = ErrClosed
		return
	}
	e.sem <- struct{}{}
	defer func() { <-e.sem }()
	var err error
	if io.Write {
		io.N, err = unix.Pwrite(fd, io.Buf, io.Off)
		err = syscallErr("pwrite", err)
	} else {
		io.N, err = unix.Pread(fd, io.Buf, io.Off)
		err = syscallErr("pread", err)
	}
	if err != nil {
		io.N, io.Err = 0, err
	}
}

func syscallErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return os.NewSyscallError(name, err)
}

// close makes later calls fail; the Device waits for calls in flight
// before it closes the engine.
func (e *syncEngine) close() { e.closed.Store(true) }

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// LoopbackStats is a single-stream TCP transfer over 127.0.0.1: the ceiling
// one connection can reach on this machine, measured in the same run as the
// stores so a large-value GET can be judged against it.
type LoopbackStats struct {
	Addr     string // the listening end
	Bytes    int64
	Duration time.Duration // the time the bytes took, which the rate is over
	// Requested is the window asked for when the transfer was
	// interrupted before its end (Interrupted; Duration is then the part
	// measured), else 0.
	Requested   time.Duration
	Interrupted bool
}

// MBPerSec is the measured rate in MB (10^6 bytes) per second: the bytes
// over the time they took, not the time asked for.
func (s LoopbackStats) MBPerSec() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Bytes) / 1e6 / s.Duration.Seconds()
}

// Result reports the transfer in the common result format (Target
// tcp://ADDR, Op "stream").
func (s LoopbackStats) Result(label string) Result {
	return Result{Label: label, Target: "tcp://" + s.Addr, Op: "stream", Conns: 1, Pipeline: 1,
		DurationS: s.Duration.Seconds(), MBPerSec: s.MBPerSec(),
		RequestedS: s.Requested.Seconds(), Interrupted: s.Interrupted}
}

// Loopback sends chunk-sized writes over one TCP connection on 127.0.0.1
// for warmup plus d and counts the bytes the other end reads after the
// warm-up. Both ends copy through user-space buffers, like a client reading
// a value and a server writing one.
//
// On a machine too busy to complete a read inside the window, the sender
// goes on until the receiver has counted one (at most lateLimit past the
// window), and the rate is that read's bytes over the time since the
// warm-up ended, instead of a rate of zero.
//
// A transfer whose ctx ends before its window closes is interrupted: its
// stats cover the part of the window before then (Interrupted,
// Requested), and the error wraps ErrInterrupted and ctx's error.
func Loopback(ctx context.Context, d, warmup time.Duration, chunk int) (LoopbackStats, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return LoopbackStats{}, fmt.Errorf("bench: loopback: %w", err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	start := time.Now()
	w := &window{measure: start.Add(warmup), end: start.Add(warmup + d)}
	done := make(chan error, 1)
	go func() { done <- w.receive(ln, chunk) }()
	sendErr := w.send(ctx, addr, chunk)
	recvErr := <-done
	if !w.cut.IsZero() && w.cut.Before(w.end) {
		span := max(w.cut.Sub(w.measure), 0)
		ierr := &interruptError{msg: "bench: loopback: interrupted " + whenEnded(span, d),
			causes: []error{ErrInterrupted, context.Cause(ctx)}}
		if span == 0 {
			return LoopbackStats{}, ierr
		}
		return LoopbackStats{Addr: addr, Bytes: w.bytes, Duration: span, Requested: d, Interrupted: true}, ierr
	}
	if err := errors.Join(sendErr, recvErr); err != nil {
		return LoopbackStats{}, fmt.Errorf("bench: loopback: %w", err)
	}
	if w.bytes == 0 {
		return LoopbackStats{}, fmt.Errorf("bench: loopback: nothing received within %v after the window", lateLimit)
	}
	return LoopbackStats{Addr: addr, Bytes: w.bytes, Duration: w.span}, nil
}

// lateLimit bounds how long the sender goes on past the window waiting for
// the receiver to count a read.
const lateLimit = 10 * time.Second

// window is one loopback measurement: the sender writes from the start
// until end (or until the receiver counted a read), the receiver counts
// the bytes of reads completing in [measure, end).
type window struct {
	measure, end time.Time
	counted      atomic.Bool   // the receiver counted a read
	bytes        int64         // counted bytes; read after receive returns
	span         time.Duration // time they took; read after receive returns
	cut          time.Time     // when ctx ended the sending (zero: it did not); read after send returns
}

// send writes chunks until the window ends and a read was counted, then
// closes the connection.
func (w *window) send(ctx context.Context, addr string, chunk int) error {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := NewValue(chunk)
	giveUp := w.end.Add(lateLimit)
	stop := context.AfterFunc(ctx, func() { c.Close() }) // unblock a write the receiver does not take
	defer stop()
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(w.end) && (w.counted.Load() || !now.Before(giveUp)) {
			return nil
		}
		if _, err := c.Write(buf); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
	}
	w.cut = time.Now()
	return nil
}

// receive accepts one connection and reads it to the end, counting the
// bytes of reads that complete in the window, or, when none did, of the
// first read after it (its span then runs from measure to that read).
func (w *window) receive(ln net.Listener, chunk int) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, chunk)
	w.span = w.end.Sub(w.measure)
	for {
		n, err := c.Read(buf)
		now := time.Now()
		switch {
		case now.Before(w.measure):
		case now.Before(w.end):
			w.bytes += int64(n)
			w.counted.Store(n > 0 || w.counted.Load())
		case !w.counted.Load() && n > 0:
			w.bytes, w.span = int64(n), now.Sub(w.measure)
			w.counted.Store(true)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

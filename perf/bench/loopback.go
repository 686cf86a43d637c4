package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// LoopbackStats is a single-stream TCP transfer over 127.0.0.1: the ceiling
// one connection can reach on this machine, measured in the same run as the
// stores so a large-value GET can be judged against it.
type LoopbackStats struct {
	Addr     string // the listening end
	Bytes    int64
	Duration time.Duration
}

// MBPerSec is the measured rate in MB (10^6 bytes) per second.
func (s LoopbackStats) MBPerSec() float64 {
	return float64(s.Bytes) / 1e6 / s.Duration.Seconds()
}

// Result reports the transfer in the common result format (Target
// tcp://ADDR, Op "stream").
func (s LoopbackStats) Result(label string) Result {
	return Result{Label: label, Target: "tcp://" + s.Addr, Op: "stream", Conns: 1, Pipeline: 1,
		DurationS: s.Duration.Seconds(), MBPerSec: s.MBPerSec()}
}

// Loopback sends chunk-sized writes over one TCP connection on 127.0.0.1
// for warmup plus d and counts the bytes the other end reads after the
// warm-up. Both ends copy through user-space buffers, like a client reading
// a value and a server writing one.
func Loopback(ctx context.Context, d, warmup time.Duration, chunk int) (LoopbackStats, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return LoopbackStats{}, fmt.Errorf("bench: loopback: %w", err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	type recvd struct {
		n   int64
		err error
	}
	start := time.Now()
	measure, end := start.Add(warmup), start.Add(warmup+d)
	done := make(chan recvd, 1)
	go func() {
		n, err := receive(ln, measure, end, chunk)
		done <- recvd{n, err}
	}()
	sendErr := send(ctx, addr, end, chunk)
	r := <-done
	if err := errors.Join(sendErr, r.err); err != nil {
		return LoopbackStats{}, fmt.Errorf("bench: loopback: %w", err)
	}
	return LoopbackStats{Addr: addr, Bytes: r.n, Duration: d}, nil
}

// send writes chunks until end, then closes the connection.
func send(ctx context.Context, addr string, end time.Time, chunk int) error {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := NewValue(chunk)
	for time.Now().Before(end) && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// receive accepts one connection and reads it to the end, counting the
// bytes read between measure and end.
func receive(ln net.Listener, measure, end time.Time, chunk int) (int64, error) {
	c, err := ln.Accept()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, chunk)
	var counted int64
	for {
		n, err := c.Read(buf)
		if now := time.Now(); !now.Before(measure) && now.Before(end) {
			counted += int64(n)
		}
		if err == io.EOF {
			return counted, nil
		}
		if err != nil {
			return counted, err
		}
	}
}

package workload

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Versioned values: tasks that wait for each other (paramserver,
// statechain) store values behind an 8-byte little-endian version, so a
// reader can tell which round a hot key is at:
//
//	offset size field
//	0      8    version
//	8      n    body
const versionLen = 8

func versioned(v uint64, body []byte) []byte {
	b := make([]byte, versionLen+len(body))
	binary.LittleEndian.PutUint64(b, v)
	copy(b[versionLen:], body)
	return b
}

// errAhead: a key is at a later version than the one waited for, which the
// workload's protocol rules out.
var errAhead = errors.New("workload: key ahead of the awaited version")

// awaitVersion polls key until it holds version want and returns its
// body (in dst when it fits). Waiting backs off from 50 us to 2 ms, a
// lambda's way of waiting on a store it cannot be notified by.
func awaitVersion(ctx context.Context, be Backend, k string, want uint64, dst []byte) ([]byte, error) {
	wait := 50 * time.Microsecond
	for {
		v, err := be.Get(ctx, k, dst)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		case len(v) < versionLen:
			return nil, fmt.Errorf("%s: %d bytes, too short for a version", k, len(v))
		default:
			got := binary.LittleEndian.Uint64(v)
			if got == want {
				return v[versionLen:], nil
			}
			if got > want {
				return nil, fmt.Errorf("%w: %s at %d, want %d", errAhead, k, got, want)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s version %d: %w", k, want, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Millisecond)
	}
}

// readVersion reads a versioned key once and checks its version; check
// tasks use it, as a finished run has nothing left to wait for.
func readVersion(ctx context.Context, be Backend, k string, want uint64) ([]byte, error) {
	v, err := be.Get(ctx, k, nil)
	if err != nil {
		return nil, err
	}
	if len(v) < versionLen {
		return nil, fmt.Errorf("%s: %d bytes, too short for a version", k, len(v))
	}
	if got := binary.LittleEndian.Uint64(v); got != want {
		return nil, fmt.Errorf("%s: version %d, want %d", k, got, want)
	}
	return v[versionLen:], nil
}

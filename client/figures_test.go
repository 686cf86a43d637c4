package client_test

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// TestImplausibleFiguresAreMalformed: a reply whose sizes are negative or
// past wire.MaxJobBytes, or whose count is past int64, fails the call,
// malformed, naming the node and the field. A hostile trial's node
// answered a usage request and a stat with size -5, and the SDK returned
// them with no error.
func TestImplausibleFiguresAreMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp wire.Response
		want string
	}{
		{"negative size", wire.Response{Size: -5}, "size -5 out of range"},
		{"huge size", wire.Response{Size: math.MaxInt64}, "size 9223372036854775807 out of range"},
		{"negative capacity", wire.Response{Capacity: -1}, "capacity -1 out of range"},
		{"huge count", wire.Response{Count: math.MaxUint64}, "count 18446744073709551615 over the int64 range"},
		{"negative entry size", wire.Response{Entries: []wire.Entry{{Key: []byte("a"), Size: -2}}}, `size -2 of entry "a" out of range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := oneRequestNode(t, func(nc net.Conn, h wire.Header) {
				meta := wire.NewEncoder().Response(&tc.resp)
				rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, MetaLen: uint32(len(meta))}
				nc.Write(append(wire.AppendHeader(nil, &rh), meta...))
				time.Sleep(time.Second)
			})
			c := client.New(client.Options{})
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.Do(ctx, addr, wire.OpStat, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil)
			if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), addr) {
				t.Fatalf("err %v; want malformed, naming %s and saying %q", err, addr, tc.want)
			}
		})
	}
}

package client

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// versionsNode serves version orders on every connection, each page
// versions page() with more, proved with key.
func versionsNode(t *testing.T, key []byte, page func() []uint64) string {
	return fakeNode(t, func(nc net.Conn, br *bufio.Reader) {
		lim := wire.DefaultLimits()
		enc := wire.NewEncoder()
		for {
			h, meta, err := readRequestMeta(br)
			if err != nil {
				return
			}
			var req wire.Request
			if wire.DecodeRequest(meta, &lim, &req) != nil {
				return
			}
			vs := page()
			rm := enc.Response(&wire.Response{Versions: vs, More: true, Proof: token.VersionsReplyProof(key, req.Key, vs, true)})
			rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, MetaLen: uint32(len(rm))}
			if _, err := nc.Write(append(wire.AppendHeader(nil, &rh), rm...)); err != nil {
				return
			}
		}
	})
}

// TestVersionsPagesMustMoveOn: a node (with the cluster secret) whose
// version pages all say more, naming the same version or none, fails
// VersionsAt as malformed, naming the node. Before, the same version
// every page asked for ever (until the context ended), and a page of
// none ended the listing as complete.
func TestVersionsPagesMustMoveOn(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	for _, tc := range []struct {
		name string
		page func() []uint64
		want string
	}{
		{"same version", func() []uint64 { return []uint64{7} }, "is not past"},
		{"none", func() []uint64 { return nil }, "says more and names no version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := versionsNode(t, key, tc.page)
			c := New(Options{})
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			vs, err := c.VersionsAt(ctx, addr, "j", key, 1, true)
			if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), addr) {
				t.Fatalf("VersionsAt: %d versions, err %v; want malformed naming %s, saying %q", len(vs), err, addr, tc.want)
			}
		})
	}
}

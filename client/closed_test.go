package client

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// TestClosedByNodeOnlyForACloseOrReset: ClosedByNode is true for a
// connection its node closed after reading the request, and false for
// one failed on silence, for a reply that is not a frame, and for a dial
// the host refused: the SDKs send a read again only for the first
// (pocket's resendLost). Before ClosedByNode they told them apart by
// wire.ErrUnavailable alone, and a frozen node's get was sent twice more,
// waiting out the silence each time.
func TestClosedByNodeOnlyForACloseOrReset(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := New(Options{DialTimeout: time.Second, Silence: 200 * time.Millisecond})
	defer c.Close()

	closed := fakeNode(t, func(nc net.Conn, br *bufio.Reader) {
		_, _ = readRequest(br) // then closed unanswered
	})
	silent := fakeNode(t, func(nc net.Conn, br *bufio.Reader) {
		_, _ = readRequest(br)
		<-ctx.Done()
	})
	garbage := fakeNode(t, func(nc net.Conn, br *bufio.Reader) {
		_, _ = readRequest(br)
		_, _ = nc.Write(make([]byte, wire.HeaderLen)) // no frame's header
		<-ctx.Done()
	})
	refused := nettest.RefusedAddr(t)

	for _, tc := range []struct {
		what, addr string
		want       bool
	}{
		{"closed after the request", closed, true},
		{"silent", silent, false},
		{"not a frame", garbage, false},
		{"refused", refused, false},
	} {
		_, err := c.Do(ctx, tc.addr, wire.OpGet, 0, &wire.Request{Key: []byte("k")}, nil, nil)
		if !errors.Is(err, wire.ErrUnavailable) && tc.what != "not a frame" {
			t.Errorf("%s: %v, want unavailable", tc.what, err)
		}
		if err == nil || ClosedByNode(err) != tc.want {
			t.Errorf("%s: ClosedByNode(%v) = %v, want %v", tc.what, err, !tc.want, tc.want)
		}
	}
}

package client

import (
	"context"
	"sync"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// GetDuringIdlePeek arranges that the next time the pool looks at an idle
// connection (closedByPeer, between its look at the calls in flight and
// its peek), a get of req goes out on that connection, as from a caller
// the pool handed it to just before, and the look waits d for the get's
// reply to arrive. The channel gets the get's error; undo removes the
// arrangement.
func GetDuringIdlePeek(req *wire.Request, d time.Duration) (res <-chan error, undo func()) {
	ch := make(chan error, 1)
	var once sync.Once
	peekHook = func(mc *muxConn) {
		once.Do(func() {
			go func() {
				mc.hand() // as the pool does; it waits for the look's lock
				_, err := mc.do(context.Background(), wire.OpGet, 0, req, nil, nil)
				ch <- err
			}()
			time.Sleep(d)
		})
	}
	return ch, func() { peekHook = nil }
}

// IdleCheck is how long a connection sits unused before the pool looks at
// it.
const IdleCheck = idleCheck

// HoldConn takes a connection to addr from c's pool now and returns a
// function that makes a call on it later, as Client.Do does with the
// connection it was handed (another one if the pool retired it
// meanwhile).
// The second function reports whether the pool has retired the held
// connection.
func HoldConn(ctx context.Context, c *Client, addr string) (func(op wire.Op, req *wire.Request, payload []byte) (Reply, error), func() bool, error) {
	p, err := c.pool(addr)
	if err != nil {
		return nil, nil, err
	}
	mc, err := p.conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	retired := func() bool {
		mc.mu.Lock()
		defer mc.mu.Unlock()
		return mc.retired
	}
	return func(op wire.Op, req *wire.Request, payload []byte) (Reply, error) {
		return p.doFrom(ctx, mc, op, 0, req, payload, nil)
	}, retired, nil
}

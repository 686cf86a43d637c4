package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/perf/echo"
)

func startEcho(t *testing.T) string {
	t.Helper()
	s, err := echo.Listen("127.0.0.1:0", netio.Config{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

func TestRunAgainstEcho(t *testing.T) {
	addr := startEcho(t)
	for _, cfg := range []Config{
		{Op: Get, Size: 1 << 10, Conns: 4, Pipeline: 16, Duration: 200 * time.Millisecond, Keys: 100},
		{Op: Put, Size: 1 << 10, Conns: 4, Pipeline: 1, Duration: 200 * time.Millisecond, Keys: 100},
		{Op: Get, Size: 1 << 20, Conns: 2, Pipeline: 1, Duration: 200 * time.Millisecond, Keys: 4},
	} {
		st, err := Run(context.Background(), cfg, EchoDialer(addr, cfg.Size))
		checkRun(t, st, err, nil)
	}
}

// A reply of the wrong size is a broken stream, not a wrong response the
// generator would count and go on from.
func TestEchoWrongReplySize(t *testing.T) {
	c, err := EchoDialer(startEcho(t), 100)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ec := c.(*echoConn)
	ec.valueSize = 99 // the request asks for a 99-byte value...
	ec.SendGet([]byte("k"))
	ec.Flush()
	ec.valueSize = 100 // ...and the reply is checked against 100
	if err := ec.Recv(); !errors.Is(err, ErrFrameSize) || errors.Is(err, ErrResponse) {
		t.Fatalf("reply of 99 bytes to a driver wanting 100: %v", err)
	}
}

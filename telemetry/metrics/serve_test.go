package metrics

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func serveTest(t *testing.T, b endpointBounds) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up 1\n") })
	srv := serve(ln, h, nil, "test", b)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// get sends one request on c and returns the reply's status code.
func get(t *testing.T, c net.Conn) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return r.StatusCode
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF || err != nil && !strings.Contains(err.Error(), "timeout")
}

// TestEndpointBoundsConnections: connections beyond the bound wait unserved
// (holding no descriptor of the server's) while the bound's are held; a
// connection that sends nothing, and one kept alive without a request, is
// closed after its timeout, and the waiting one is then served. Before
// these bounds (a plain http.Server with a header timeout only) a
// hostile trial held 19,990 connections to a metrics port, and the
// server's descriptors ran out.
func TestEndpointBoundsConnections(t *testing.T) {
	addr := serveTest(t, endpointBounds{conns: 2, read: 300 * time.Millisecond, write: time.Second, idle: 300 * time.Millisecond, perSecond: 1000, hold: time.Millisecond})
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	kept, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if code := get(t, kept); code != http.StatusOK {
		t.Fatalf("first scrape: %d", code)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	start := time.Now()
	if code := get(t, third); code != http.StatusOK {
		t.Fatalf("third connection: %d", code)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("a third connection was served in %v while the bound's two were held", took)
	}
	if !closedWithin(silent, 2*time.Second) || !closedWithin(kept, 2*time.Second) {
		t.Fatal("a silent or idle kept-alive connection was not closed after its timeout")
	}
}

// TestEndpointBoundsRate: scrapes past the rate are answered 429 with
// Retry-After, without calling the handler, after the hold, and their
// connections closed (requests pipelined behind a refused one are not
// answered); the next second's are served. Before the hold and the close,
// a hostile re-check's pipelined requests had 42,000 refusals a second
// answered, a node's core 84-100 % busy.
func TestEndpointBoundsRate(t *testing.T) {
	const hold = 200 * time.Millisecond
	addr := serveTest(t, endpointBounds{conns: 4, read: 5 * time.Second, write: 5 * time.Second, idle: 10 * time.Second, perSecond: 5, hold: hold})
	ok, refused := 0, 0
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		switch code := get(t, c); code {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			refused++
			if took := time.Since(start); took < hold {
				t.Fatalf("a refusal answered after %v, before the hold of %v", took, hold)
			}
			if !closedWithin(c, 2*time.Second) {
				t.Fatal("a refused scrape's connection stayed open")
			}
		default:
			t.Fatalf("status %d", code)
		}
		c.Close()
	}
	if ok < 5 || ok > 6 || refused != 8-ok {
		t.Fatalf("8 scrapes at once at 5 a second: %d served, %d refused", ok, refused)
	}
	time.Sleep(time.Second)
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if code := get(t, c2); code != http.StatusOK {
		t.Fatalf("a scrape a second later: %d", code)
	}
	// Three requests pipelined on one connection at one scrape a second:
	// the first served, the second refused, then the close.
	one := serveTest(t, endpointBounds{conns: 4, read: 5 * time.Second, write: 5 * time.Second, idle: 10 * time.Second, perSecond: 1, hold: 50 * time.Millisecond})
	c, err := net.Dial("tcp", one)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, strings.Repeat("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 3)); err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(c)
	if n := strings.Count(string(all), "HTTP/1.1 "); n != 2 || strings.Count(string(all), "HTTP/1.1 429") != 1 {
		t.Fatalf("3 pipelined requests at 1 a second: %d replies:\n%s", n, all)
	}
}

package metrics

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"
)

// Bounds of a metrics endpoint (Serve). Whoever can reach the port can
// scrape it, and before these bounds a hostile trial's 19,990 connections
// that sent one request and then never read took the controller to its
// descriptor limit (its control port's accept failed, and nodes could not
// reconnect) and a node to its own (its data port stopped accepting; 840 MB
// of memory for the connections), and 32 scrapers kept one node's core
// 62 % busy while another job's gets fell from 39,980 to 5,526 a second.
const (
	// MaxConns is the most connections served at once; more wait in the
	// kernel's accept queue, holding no descriptor of the server's
	// (golang.org/x/net/netutil.LimitListener).
	MaxConns = 16
	// ReadTimeout bounds reading a request, headers and body.
	ReadTimeout = 5 * time.Second
	// WriteTimeout bounds writing a reply, from the end of its request:
	// a scraper that does not read its reply loses the connection.
	WriteTimeout = 10 * time.Second
	// IdleTimeout closes a kept-alive connection that sends no request
	// for this long (Prometheus scrapes every 15 s by default, 1 m at
	// most, and opens a new connection when one was closed).
	IdleTimeout = 30 * time.Second
	// ScrapesPerSecond is the rate of scrapes served, with a burst of as
	// many (golang.org/x/time/rate); a scrape beyond it is answered 429
	// Too Many Requests with Retry-After: 1, without gathering anything,
	// after RefusalHold, and its connection is closed. A scrape of a node
	// gathers its figures in about a millisecond of CPU (the trial above),
	// so gathering takes at most about 2 % of a core; a flood of refused
	// and queued connections took 4-7 % more in a hostile re-check.
	ScrapesPerSecond = 20
	// RefusalHold is how long a refused scrape holds its connection
	// before the 429 and the close, so that refusals cost nothing much
	// either: at most MaxConns of them a hold. Before, a hostile re-check
	// pipelined requests on four kept-alive connections and had 42,000
	// refusals a second parsed and answered, a node's core 84-100 % busy
	// and another job's gets at 4,693 a second against 25,766.
	RefusalHold = time.Second
)

// Serve serves h on ln within the bounds above until the returned server
// is closed, logging to log (nil: slog.Default()) an error that ends the
// serving, with what naming the endpoint. Every /metrics endpoint of the
// project's servers is served this way.
func Serve(ln net.Listener, h http.Handler, log *slog.Logger, what string) *http.Server {
	return serve(ln, h, log, what, endpointBounds{MaxConns, ReadTimeout, WriteTimeout, IdleTimeout, ScrapesPerSecond, RefusalHold})
}

// endpointBounds are Serve's bounds (tests shorten them).
type endpointBounds struct {
	conns             int
	read, write, idle time.Duration
	perSecond         int
	hold              time.Duration
}

func serve(ln net.Listener, h http.Handler, log *slog.Logger, what string, b endpointBounds) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           rateLimited(h, b.perSecond, b.hold),
		ReadHeaderTimeout: b.read,
		ReadTimeout:       b.read,
		WriteTimeout:      b.write,
		IdleTimeout:       b.idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(netutil.LimitListener(ln, b.conns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+": metrics endpoint", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return srv
}

// rateLimited answers requests past perSecond a second (with a burst of
// as many) 429 without calling h, after holding them for hold, and closes
// their connections.
func rateLimited(h http.Handler, perSecond int, hold time.Duration) http.Handler {
	lim := rate.NewLimiter(rate.Limit(perSecond), perSecond)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lim.Allow() {
			h.ServeHTTP(w, r)
			return
		}
		t := time.NewTimer(hold)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "metrics: more than "+strconv.Itoa(perSecond)+" scrapes a second; try again in a second",
			http.StatusTooManyRequests)
	})
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
)

// logFlags are --log-format and --log-level of the commands that run a
// server (node, controller, up).
type logFlags struct {
	format string
	level  string
}

func (f *logFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.format, "log-format", "text", "log line format on stderr: text or json")
	fs.StringVar(&f.level, "log-level", "info", "least severe level logged: debug, info, warn or error")
}

// args passes the flags on to a child process (pocket up's nodes).
func (f *logFlags) args() []string {
	format, level := f.values()
	return []string{"--log-format", format, "--log-level", level}
}

// values are the format and level, the defaults when unset.
func (f *logFlags) values() (format, level string) {
	format, level = f.format, f.level
	if format == "" {
		format = "text"
	}
	if level == "" {
		level = "info"
	}
	return format, level
}

// handler builds the process's one log handler, writing to w.
func (f *logFlags) handler(w io.Writer) (slog.Handler, error) {
	format, level := f.values()
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opt := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opt), nil
	case "json":
		return slog.NewJSONHandler(w, opt), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// identity is a process's logger whose identity attribute (node=ADDR,
// controller=ADDR) is set once the address is known: a server's address
// is known only after it has bound its port (pocket up starts nodes on
// port 0), but its logger is needed to start it. Set it before the server
// can log; until then lines go out without it.
type identity struct {
	log  *slog.Logger
	addr *atomic.Pointer[string]
}

// newIdentity returns a logger on h that carries key=ADDR once set is
// called.
func newIdentity(h slog.Handler, key string) identity {
	addr := new(atomic.Pointer[string])
	return identity{log: slog.New(&lateAttr{base: h, key: key, addr: addr, built: new(atomic.Pointer[slog.Handler])}), addr: addr}
}

// boundAs is the address a listener on listen will have when that is
// known before it binds (a host that is not a wildcard and a port that is
// not 0), else "": a server can then name itself in the lines it logs
// while it starts (a node reading its tiers back), before its port is
// bound.
func boundAs(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return "" // a name resolves to an address; a wildcard binds as [::]
	}
	return listen
}

// set names the process; the first call wins.
func (id identity) set(addr string) { id.addr.CompareAndSwap(nil, &addr) }

// lateAttr is a slog.Handler that puts key=*addr first on every record
// once addr is set.
type lateAttr struct {
	base  slog.Handler
	key   string
	addr  *atomic.Pointer[string]
	ops   []func(slog.Handler) slog.Handler // WithAttrs and WithGroup, in order
	built *atomic.Pointer[slog.Handler]     // base, the attribute and ops, once addr is set
}

func (h *lateAttr) Enabled(ctx context.Context, l slog.Level) bool { return h.base.Enabled(ctx, l) }

func (h *lateAttr) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

// current is the handler to log through now.
func (h *lateAttr) current() slog.Handler {
	if b := h.built.Load(); b != nil {
		return *b
	}
	a := h.addr.Load()
	b := h.base
	if a != nil {
		b = b.WithAttrs([]slog.Attr{slog.String(h.key, *a)})
	}
	for _, op := range h.ops {
		b = op(b)
	}
	if a != nil {
		h.built.Store(&b)
	}
	return b
}

func (h *lateAttr) with(op func(slog.Handler) slog.Handler) *lateAttr {
	ops := append(append([]func(slog.Handler) slog.Handler(nil), h.ops...), op)
	return &lateAttr{base: h.base, key: h.key, addr: h.addr, ops: ops, built: new(atomic.Pointer[slog.Handler])}
}

func (h *lateAttr) WithAttrs(as []slog.Attr) slog.Handler {
	return h.with(func(b slog.Handler) slog.Handler { return b.WithAttrs(as) })
}

func (h *lateAttr) WithGroup(name string) slog.Handler {
	return h.with(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}

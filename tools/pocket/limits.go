package main

// Flags for the limits of the controller (controller.Config) and of a
// node's connections (netio.Config). A flag left unset leaves its field
// zero, so the library's default applies; the defaults in the help text are
// those defaults. For a limit that can be turned off, 0 turns it off (the
// libraries' negative value).

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/netio"
)

// ctlLimits are the controller's limit flags.
type ctlLimits struct {
	fs                *flag.FlagSet
	maxConns          int
	maxConnsPerPeer   int
	idleTimeout       time.Duration
	handshakeTimeout  time.Duration
	maxJobs           int
	maxJobsPerClient  int
	registerRate      float64
	registerBurst     int
	maxBytesPerClient string // bytes, with units
	maxMbpsPerClient  float64
	tokenTTL          time.Duration
	maxTokenTTL       time.Duration
}

// bindCtlLimits adds the controller's limit flags to fs.
func bindCtlLimits(fs *flag.FlagSet) *ctlLimits {
	l := &ctlLimits{fs: fs}
	fs.IntVar(&l.maxConns, "max-conns", 1024, "most control connections at once; when full, a new one replaces the one idle longest, else it is refused (CodeLimit)")
	fs.IntVar(&l.maxConnsPerPeer, "max-conns-per-peer", 256, "most control connections from one IPv4 address or IPv6 /64 (0: no limit)")
	fs.DurationVar(&l.idleTimeout, "idle-timeout", 2*time.Minute, "close a control connection that sends nothing for this long (0: never)")
	fs.DurationVar(&l.handshakeTimeout, "handshake-timeout", 10*time.Second, "close a new control connection whose TLS handshake and first request take longer (0: never)")
	fs.IntVar(&l.maxJobs, "max-jobs", 100_000, "most jobs registered in the cluster")
	fs.IntVar(&l.maxJobsPerClient, "max-jobs-per-client", 1000, "most jobs registered by one client: a tenant over TLS, else an address (IPv4, or IPv6 /64) (0: no limit)")
	fs.Float64Var(&l.registerRate, "register-rate", 100, "job registrations a second one client may sustain (0: no limit)")
	fs.IntVar(&l.registerBurst, "register-burst", 100, "job registrations one client may make at once, refilled at --register-rate")
	fs.StringVar(&l.maxBytesPerClient, "max-bytes-per-client", "0", "most bytes one client (a tenant over TLS, else an address) may have allotted to its live jobs together (1TiB, 512MiB); a registration hinting more than is left is refused, one sized from its name's profile is cut to what is left; while the client stores more (its live jobs' values and its ended jobs' persisted ones), the nodes refuse its jobs' puts; the operator's have none (0: no limit)")
	fs.Float64Var(&l.maxMbpsPerClient, "max-mbps-per-client", 0, "most Mb/s one client (a tenant over TLS, else an address) may have allotted to its live jobs together; a registration hinting more than is left is refused; one without a bandwidth hint, or hinting less, counts one lambda's 600 Mb/s (a profile's need: what it asks, cut to what is left); the operator's have none (0: no limit)")
	fs.DurationVar(&l.tokenTTL, "token-ttl", 0, "lifetime of the token of a job registered without --ttl; an expired job is deregistered (0: no expiry)")
	fs.DurationVar(&l.maxTokenTTL, "max-token-ttl", 0, "cap on a job token's lifetime, also given to jobs registered without --ttl when --token-ttl is 0 (0: no cap)")
	return l
}

// apply sets the fields of cfg for the flags given on the command line.
func (l *ctlLimits) apply(cfg *controller.Config) error {
	var err error
	l.fs.Visit(func(f *flag.Flag) {
		if err == nil {
			err = l.set(cfg, f.Name)
		}
	})
	return err
}

func (l *ctlLimits) set(cfg *controller.Config, name string) error {
	switch name {
	case "max-conns":
		return positive(name, l.maxConns, &cfg.MaxConns)
	case "max-conns-per-peer":
		return orOff(name, l.maxConnsPerPeer, &cfg.MaxConnsPerPeer)
	case "idle-timeout":
		return orOff(name, l.idleTimeout, &cfg.IdleTimeout)
	case "handshake-timeout":
		return orOff(name, l.handshakeTimeout, &cfg.HandshakeTimeout)
	case "max-jobs":
		return positive(name, l.maxJobs, &cfg.MaxJobs)
	case "max-jobs-per-client":
		return orOff(name, l.maxJobsPerClient, &cfg.MaxJobsPerClient)
	case "register-rate":
		return orOff(name, l.registerRate, &cfg.RegisterRate)
	case "register-burst":
		return positive(name, l.registerBurst, &cfg.RegisterBurst)
	case "max-bytes-per-client":
		n, err := sizeFlag(name, l.maxBytesPerClient, l.maxBytesPerClient, offZero)
		if err != nil {
			return err
		}
		cfg.MaxBytesPerClient = n
	case "max-mbps-per-client":
		if l.maxMbpsPerClient < 0 || math.IsNaN(l.maxMbpsPerClient) || math.IsInf(l.maxMbpsPerClient, 0) {
			return fmt.Errorf("--%s %v: want Mb/s, 0 or more (0: no limit)", name, l.maxMbpsPerClient)
		}
		cfg.MaxMbpsPerClient = l.maxMbpsPerClient
	case "token-ttl":
		return notNegative(name, l.tokenTTL, &cfg.TokenTTL)
	case "max-token-ttl":
		return notNegative(name, l.maxTokenTTL, &cfg.MaxTokenTTL)
	}
	return nil
}

// nodeLimits are a node's connection limit flags (netio.Config).
type nodeLimits struct {
	idleTimeout     time.Duration
	writeTimeout    time.Duration
	maxConnsPerPeer int
	minPutRate      string          // bytes a second, with units (units.ParseSize), "/s" allowed
	minGetRate      string          // the same, for replies taken (netio.Config.MinDrainRate)
	maxUnread       string          // bytes, with units
	set             map[string]bool // the flags given
	prefix          string          // the flags' names after it (bind)
}

// nodeLimitFlags names each node limit flag; `pocket up` adds prefix to
// them and hands them to its nodes under these names.
var nodeLimitFlags = []string{"idle-timeout", "write-timeout", "max-conns-per-peer", "min-put-rate", "min-get-rate", "max-unread"}

// bind adds the node's limit flags to fs, their names after prefix.
func (l *nodeLimits) bind(fs *flag.FlagSet, prefix, who string) {
	l.prefix = prefix
	fs.DurationVar(&l.idleTimeout, prefix+"idle-timeout", netio.DefaultIdleTimeout, who+"close a data connection with no request and nothing to send for this long (0: never)")
	fs.DurationVar(&l.writeTimeout, prefix+"write-timeout", netio.DefaultWriteTimeout, who+"reset a data connection whose peer takes none of its replies for this long (0: never)")
	fs.IntVar(&l.maxConnsPerPeer, prefix+"max-conns-per-peer", netio.DefaultMaxConnsPerPeer, who+"most data connections from one IPv4 address or IPv6 /64; more are closed at accept (0: no limit)")
	fs.StringVar(&l.minPutRate, prefix+"min-put-rate", "256KiB/s", who+"slowest a put's payload may arrive, in bytes a second (256KiB or 256KiB/s), once its first 5 s have passed; a slower connection is closed and its put's reserved space freed (0: no minimum)")
	fs.StringVar(&l.minGetRate, prefix+"min-get-rate", "256KiB/s", who+"slowest a client may take replies while 1MiB or more of them wait, in bytes a second (256KiB or 256KiB/s), once they have waited 10 s; a slower connection is closed and the values its replies held (deleted ones too) freed (0: no minimum)")
	fs.StringVar(&l.maxUnread, prefix+"max-unread", "64MiB", who+"most reply bytes all data connections together may leave queued unread, at most 2GiB; past it a connection holding over 64KiB of them is not read until it takes its replies (down to 64KiB) or the total falls to half; its requests wait, with no error (0: no bound; each connection is still bounded at 4MiB)")
}

// visited records which of the node limit flags (after prefix) were given.
func (l *nodeLimits) visited(fs *flag.FlagSet, prefix string) {
	l.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		for _, n := range nodeLimitFlags {
			if f.Name == prefix+n {
				l.set[n] = true
			}
		}
	})
}

// apply sets the fields of cfg for the flags given.
func (l *nodeLimits) apply(cfg *netio.Config) error {
	for _, n := range nodeLimitFlags {
		if !l.set[n] {
			continue
		}
		var err error
		name := l.prefix + n // as the user gave it
		switch n {
		case "idle-timeout":
			err = orOff(name, l.idleTimeout, &cfg.IdleTimeout)
		case "write-timeout":
			err = orOff(name, l.writeTimeout, &cfg.WriteTimeout)
		case "max-conns-per-peer":
			err = orOff(name, l.maxConnsPerPeer, &cfg.MaxConnsPerPeer)
		case "min-put-rate":
			var rate int64
			if rate, err = sizeFlag(name, l.minPutRate, strings.TrimSuffix(l.minPutRate, "/s"), offZero); err != nil {
				break
			}
			err = orOff(name, rate, &cfg.MinSinkRate)
		case "min-get-rate":
			var rate int64
			if rate, err = sizeFlag(name, l.minGetRate, strings.TrimSuffix(l.minGetRate, "/s"), offZero); err != nil {
				break
			}
			err = orOff(name, rate, &cfg.MinDrainRate)
		case "max-unread":
			var size int64
			if size, err = sizeFlag(name, l.maxUnread, l.maxUnread, offZero); err != nil {
				break
			}
			if size > math.MaxInt32 {
				err = fmt.Errorf("--%s %q: at most 2GiB", name, l.maxUnread)
				break
			}
			err = orOff(name, int(size), &cfg.MaxOutboundTotal)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// args are the `pocket node` flags for the limits given, for up's nodes.
func (l *nodeLimits) args() []string {
	var out []string
	for _, n := range nodeLimitFlags {
		if !l.set[n] {
			continue
		}
		v := ""
		switch n {
		case "idle-timeout":
			v = l.idleTimeout.String()
		case "write-timeout":
			v = l.writeTimeout.String()
		case "max-conns-per-peer":
			v = strconv.Itoa(l.maxConnsPerPeer)
		case "min-put-rate":
			v = l.minPutRate
		case "min-get-rate":
			v = l.minGetRate
		case "max-unread":
			v = l.maxUnread
		}
		out = append(out, "--"+n, v)
	}
	return out
}

type limitValue interface {
	~int | ~int64 | ~float64
}

// orOff stores v, or -1 (the libraries' "off") for 0.
// sizeFlag parses the size s of the flag --name, given as v: a negative
// one is refused as orOff refuses a negative number, where the size
// parser only said "out of range"; zero says what 0 means.
func sizeFlag(name, v, s, zero string) (int64, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "-") {
		return 0, fmt.Errorf("--%s %q: must not be negative (0 %s)", name, v, zero)
	}
	size, err := units.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", name, v, err)
	}
	return size, nil
}

// offZero is what 0 means for a limit.
const offZero = "turns the limit off"

func orOff[T limitValue](name string, v T, dst *T) error {
	if v < 0 {
		return fmt.Errorf("--%s %v: must not be negative (0 turns the limit off)", name, v)
	}
	if v == 0 {
		v = -1
	}
	*dst = v
	return nil
}

func positive[T limitValue](name string, v T, dst *T) error {
	if v <= 0 {
		return fmt.Errorf("--%s %v: must be positive", name, v)
	}
	*dst = v
	return nil
}

func notNegative[T limitValue](name string, v T, dst *T) error {
	if v < 0 {
		return fmt.Errorf("--%s %v: must not be negative", name, v)
	}
	*dst = v
	return nil
}

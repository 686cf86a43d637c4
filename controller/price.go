package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/pocketstore/pocket/internal/limited"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// Prices is what the resources a job is allotted cost, in US dollars an
// hour: per GiB (2^30 bytes) of each tier's capacity and per Gb/s (1000
// Mb/s) of network bandwidth. The controller picks each job's tier by it
// (TierFor) and estimates each job's cost (Prices.Cost).
//
// The cost model is additive over what the job reserves: a job allotted B
// bytes on tier t and M Mb/s costs
//
//	B/2^30 x GiBHour(t) + M/1000 x GbpsHour
//
// an hour. A node's network serves both of its tiers, so bandwidth costs
// the same on either; what differs is the capacity, and which tier can
// serve the bandwidth at all.
//
// A table is either exact (ExactPrices, LoadPrices, OrDefault: each price
// is as given, 0 included: a resource already paid for) or, as a literal
// Prices{...} is, partial: a zero price there stands for DefaultPrices'
// (OrDefault fills it), so the zero Prices is the default table.
type Prices struct {
	DRAMGiBHour float64 `json:"dram_gib_hour"` // USD per GiB-hour of DRAM
	NVMeGiBHour float64 `json:"nvme_gib_hour"` // USD per GiB-hour of NVMe flash
	GbpsHour    float64 `json:"gbps_hour"`     // USD per Gb/s-hour of network bandwidth

	exact bool // every price is as given, 0 included (see above)
}

// set sets the prices fields names, refusing any other name (case
// counts) and null.
func (p *Prices) set(fields map[string]*float64) error {
	dst := map[string]*float64{"dram_gib_hour": &p.DRAMGiBHour, "nvme_gib_hour": &p.NVMeGiBHour, "gbps_hour": &p.GbpsHour}
	for name, v := range fields {
		d, ok := dst[name]
		switch {
		case !ok:
			return fmt.Errorf("unknown field %q", name)
		case v == nil:
			return fmt.Errorf("%s: null, want a number", name)
		}
		*d = *v
	}
	return nil
}

// ExactPrices is the table of the three prices as given, a price of 0
// included (OrDefault keeps it).
func ExactPrices(dramGiBHour, nvmeGiBHour, gbpsHour float64) Prices {
	return Prices{DRAMGiBHour: dramGiBHour, NVMeGiBHour: nvmeGiBHour, GbpsHour: gbpsHour, exact: true}
}

// Exact reports whether every price of p is as given, 0 included (see
// Prices).
func (p Prices) Exact() bool { return p.exact }

// The public prices DefaultPrices derives from: AWS EC2 On-Demand, Linux,
// us-east-1, as listed on https://aws.amazon.com/ec2/pricing/on-demand/
// (figures of 2024; the page changes, check it before relying on them),
// with each instance's memory, disk and baseline network bandwidth from
// https://aws.amazon.com/ec2/instance-types/ and the EC2 user guide's
// "Amazon EC2 instance network bandwidth" tables.
const (
	// r5.large: 2 vCPU, 16 GiB, no local disk, $0.126/h. All of its price
	// is counted as memory: DRAM per GiB-hour = 0.126 / 16.
	r5LargeHour, r5LargeGiB = 0.126, 16.0
	// i3.large: 2 vCPU, 15.25 GiB, one 475 GB NVMe SSD, $0.156/h. Its
	// memory is counted at r5's rate and the rest of its price is the
	// NVMe's: (0.156 - 15.25 x 0.126/16) / (475e9 / 2^30).
	i3LargeHour, i3LargeGiB, i3LargeNVMeBytes = 0.156, 15.25, 475e9
	// c5.large ($0.085/h, 0.75 Gb/s baseline) and c5n.large ($0.108/h,
	// 3.0 Gb/s baseline) differ mainly in network: a Gb/s-hour is their
	// price difference over their bandwidth difference.
	c5LargeHour, c5LargeGbps   = 0.085, 0.75
	c5nLargeHour, c5nLargeGbps = 0.108, 3.0
)

// DefaultPrices returns the prices derived from the AWS figures above:
// about $0.0079 per GiB-hour of DRAM, $0.000081 per GiB-hour of NVMe and
// $0.010 per Gb/s-hour.
func DefaultPrices() Prices {
	dram := r5LargeHour / r5LargeGiB
	nvme := (i3LargeHour - i3LargeGiB*dram) / (i3LargeNVMeBytes / (1 << 30))
	net := (c5nLargeHour - c5LargeHour) / (c5nLargeGbps - c5LargeGbps)
	return ExactPrices(dram, nvme, net)
}

// OrDefault returns the exact table p stands for: p itself when it is
// exact (a price of 0 stays 0), else p with each zero price replaced by
// DefaultPrices'.
func (p Prices) OrDefault() Prices {
	if p.exact {
		return p
	}
	p.exact = true
	d := DefaultPrices()
	if p.DRAMGiBHour == 0 {
		p.DRAMGiBHour = d.DRAMGiBHour
	}
	if p.NVMeGiBHour == 0 {
		p.NVMeGiBHour = d.NVMeGiBHour
	}
	if p.GbpsHour == 0 {
		p.GbpsHour = d.GbpsHour
	}
	return p
}

// MaxPrice bounds every price, in US dollars per GiB-hour or per
// Gb/s-hour: a million times DefaultPrices' DRAM GiB-hour and more. It
// keeps costs finite: a job within the job bounds (wire.MaxJobBytes, 2^32
// GiB; wire.MaxJobMbps, 4.1e8 Gb/s) costs at most about 4.7e18 $/h, and a
// sum of such costs over any number of jobs a status lists stays far below
// float64's limit (a price of 1e308 made a 2 GiB job cost +Inf $/h, which
// JSON cannot carry).
const MaxPrice = 1e9

// ErrBadPrice means a price is negative, over MaxPrice, infinite or not a
// number.
var ErrBadPrice = errors.New("a price must be a finite number of dollars, 0 to 1e9")

// Check refuses a negative, non-finite or over-MaxPrice price, naming
// it.
func (p Prices) Check() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"dram_gib_hour", p.DRAMGiBHour}, {"nvme_gib_hour", p.NVMeGiBHour}, {"gbps_hour", p.GbpsHour}} {
		if !(f.v >= 0 && f.v <= MaxPrice) { // NaN and ±Inf fail too
			return fmt.Errorf("price %s = %v: %w", f.name, f.v, ErrBadPrice)
		}
	}
	return nil
}

// maxPricesFile bounds a prices file: it holds three numbers.
const maxPricesFile = 64 << 10

// LoadPrices reads a JSON prices file: an object with any of
// dram_gib_hour, nvme_gib_hour and gbps_hour (USD, see Prices). The table
// it returns is exact: a price the file gives is kept as given, 0
// included, and one it does not give is DefaultPrices'. Unknown fields,
// a field given twice, anything after the object, a file over 64 KiB (read no further) and bad
// prices (Check) are errors naming the file.
func LoadPrices(path string) (Prices, error) {
	p := DefaultPrices()
	b, err := limited.ReadFile(path, maxPricesFile)
	if err != nil {
		return p, fmt.Errorf("price file: %w", err)
	}
	var fields map[string]*float64 // keys as written: a struct's would match any case
	dec := json.NewDecoder(bytes.NewReader(b))
	err = dec.Decode(&fields)
	if err == nil && fields == nil {
		err = errors.New("null, not an object") // before, read as an empty object
	}
	if err == nil {
		if _, after := dec.Token(); after != io.EOF {
			err = errors.New("more after the object")
		}
	}
	if err == nil {
		err = onceEach(b)
	}
	if err == nil {
		err = p.set(fields)
	}
	if err != nil {
		return p, fmt.Errorf("price file %s: %w (want one JSON object with dram_gib_hour, nvme_gib_hour, gbps_hour)", path, err)
	}
	if err := p.Check(); err != nil {
		return p, fmt.Errorf("price file %s: %w", path, err)
	}
	p.exact = true
	return p, nil
}

// onceEach refuses a JSON object (b, which has decoded as one) that gives
// a field twice: the decoder keeps the last, so a file's first price
// would be silently dropped (a new user's trial: {"dram_gib_hour":1,
// "dram_gib_hour":2} read as 2).
func onceEach(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		if seen[key] {
			return fmt.Errorf("%q given twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
	}
	return nil
}

// GiBHour is the price of a GiB-hour of tier t (0 for an unknown tier).
func (p Prices) GiBHour(t wire.Tier) float64 {
	switch t {
	case wire.TierDRAM:
		return p.DRAMGiBHour
	case wire.TierNVMe:
		return p.NVMeGiBHour
	}
	return 0
}

// Cost is the price in USD an hour of mbps Mb/s and bytes of tier t (the
// model in the Prices doc). The figures are taken within the job bounds
// (wire.MaxJobMbps, wire.MaxJobBytes; NaN and negative ones as 0), so the
// cost at prices that pass Check is finite, at most about 4.7e18 $/h.
func (p Prices) Cost(t wire.Tier, mbps float64, bytes int64) float64 {
	mbps, bytes = wire.ClampMbps(mbps, wire.MaxJobMbps), wire.ClampBytes(bytes, wire.MaxJobBytes)
	return float64(bytes)/(1<<30)*p.GiBHour(t) + mbps/1000*p.GbpsHour
}

// Need is what a job asks of a tier: bandwidth in Mb/s, capacity in bytes,
// and whether it is latency-sensitive (a requirement only DRAM meets).
// Source is where the size came from (SizeHints, SizeProfile,
// SizeDefault; "": not said), which only the advice of a refusal reads.
type Need struct {
	Mbps             float64
	Bytes            int64
	LatencySensitive bool
	Source           string
}

// eligible reports whether a job of need may be placed on offer o: o has
// nodes, and it is DRAM when the job is latency-sensitive.
func (need Need) eligible(o TierOffer) bool {
	return o.Nodes > 0 && (!need.LatencySensitive || o.Tier == wire.TierDRAM)
}

// capacityHint names the capacity hint as each client spells it.
const capacityHint = "the capacity hint (--capacity, capacity_bytes)"

// capacityAdvice is what to do about a capacity need that does not fit:
// a hint is lowered. A need from a profile is never refused
// (sizeJobLocked cuts it to the spare), so only hints, and needs whose
// source is not said (the CLI's check of hints), come here.
func capacityAdvice(need Need) string {
	if need.Source == SizeHints {
		return "lower " + capacityHint
	}
	return "lower the capacity need (" + capacityHint + ")"
}

// TierOffer is what one tier of the active nodes offers a new job: how
// many nodes have it, and their spare bandwidth (Mb/s) and capacity
// (bytes) summed.
type TierOffer struct {
	Tier       wire.Tier
	Nodes      int
	SpareMbps  float64
	SpareBytes int64
}

// TierFor picks the tier of a job with need among offers, at prices (step
// 1 of the sizing policy). It is the one definition of the rule; the
// controller calls it with its candidates' spare figures, and `pocket job
// register` with those of a status reply, to check hints before
// registering.
//
//  1. Eligible: the offers with at least one node; latency-sensitive jobs
//     only DRAM (its latency is the requirement only DRAM meets).
//     None: a CodeUnavailable error (errors.Is(err, wire.ErrUnavailable)).
//  2. Fit: the eligible offers whose spare capacity covers need.Bytes.
//     None: a CodeNoSpace error (errors.Is(err, wire.ErrNoSpace)) naming
//     the need and the largest eligible tier's spare capacity (capacity is
//     a hard limit: puts beyond it fail). A need of 0 bytes (no capacity
//     hint, or none learned) still stores values: a tier with no spare
//     byte fits it only when no eligible tier has one.
//  3. Among the fitting tiers whose spare bandwidth covers need.Mbps, the
//     cheapest (Prices.Cost of the need); on equal cost the lower
//     GiBHour, then the lower tier number. When none covers the bandwidth,
//     the cheapest fitting tier all the same: the job gets less than it
//     asked for, as in Pocket (bandwidth is not a hard limit, and a job
//     without hints asks for Pocket's 16 Gb/s guess).
func TierFor(need Need, offers []TierOffer, prices Prices) (wire.Tier, error) {
	var elig []TierOffer
	for _, o := range offers {
		if need.eligible(o) {
			elig = append(elig, o)
		}
	}
	if len(elig) == 0 {
		return 0, noTier(need)
	}
	var fit []TierOffer
	for _, o := range elig {
		if o.SpareBytes >= need.Bytes {
			fit = append(fit, o)
		}
	}
	if len(fit) == 0 {
		return 0, noSpace(need, elig)
	}
	if need.Bytes <= 0 {
		fit = withSpare(fit, func(o TierOffer) int64 { return o.SpareBytes })
	}
	best := -1
	for i, o := range fit {
		if o.SpareMbps >= need.Mbps && (best < 0 || cheaper(prices, need, o, fit[best])) {
			best = i
		}
	}
	if best >= 0 {
		return fit[best].Tier, nil
	}
	for i, o := range fit {
		if best < 0 || cheaper(prices, need, o, fit[best]) {
			best = i
		}
	}
	return fit[best].Tier, nil
}

// withSpare is the items with a spare byte (spare > 0), or all of them
// when none has one. A job without a capacity need still stores values,
// so a tier or node with no spare byte (0 >= 0 fits it) is taken only
// when every one is full: there its every put fails for lack of space.
// TierFor filters tier offers with it, the sizing the tier's nodes.
func withSpare[T any](items []T, spare func(T) int64) []T {
	var out []T
	for _, it := range items {
		if spare(it) > 0 {
			out = append(out, it)
		}
	}
	if len(out) == 0 {
		return items
	}
	return out
}

// cheaper orders offers by the cost of need, then GiB price, then tier.
func cheaper(p Prices, need Need, a, b TierOffer) bool {
	ca, cb := p.Cost(a.Tier, need.Mbps, need.Bytes), p.Cost(b.Tier, need.Mbps, need.Bytes)
	if ca != cb {
		return ca < cb
	}
	if ga, gb := p.GiBHour(a.Tier), p.GiBHour(b.Tier); ga != gb {
		return ga < gb
	}
	return a.Tier < b.Tier
}

func noTier(need Need) error {
	if need.LatencySensitive {
		// The hint is named with each client's way to leave it off:
		// Pocket's register_job sets it by default, and a new user's
		// trial could not tell why an NVMe-only cluster refused its job.
		return wire.Errorf(wire.CodeUnavailable, "no tier for the job: it is latency-sensitive (its DRAM-only hint, set by default by Pocket's "+
			"register_job(jobname, ...) in Python; latency_sensitive=0 there, LatencySensitive false in Go, no --latency-sensitive in the CLI "+
			"leave it off) and no active node has a DRAM tier")
	}
	return wire.Errorf(wire.CodeUnavailable, "no tier for the job: no active node, or none whose tier's device is sound (a node reporting device_failing:TIER takes no new job there)")
}

// noSpaceTenant is noSpace for a client held to a quota (a tenant over
// TLS): it names the need and no figure of the cluster's. noSpace's spare
// bytes, exact, let a tenant follow between its registrations what other
// tenants store and are allotted (a hostile trial); the operator reads
// them in the status.
func noSpaceTenant(need Need) error {
	what := "any tier"
	if need.LatencySensitive {
		what = "DRAM (the job is latency-sensitive)"
	}
	return wire.Errorf(wire.CodeNoSpace, "no tier fits the job: it needs %d bytes (%s) in %s, more than the cluster has spare "+
		"(what it has spare is shown to its operator: pocket status): %s, or ask the operator for room",
		need.Bytes, units.FormatSize(need.Bytes), what, capacityAdvice(need))
}

// noSpace names the need and the eligible tier with the most spare
// capacity: its nodes' capacity less, on each, the larger of the bytes
// the jobs there are allotted and the bytes used (the sizing's spare,
// candidatesLocked), so the message says it counts allotments.
func noSpace(need Need, elig []TierOffer) error {
	big := elig[0]
	for _, o := range elig[1:] {
		if o.SpareBytes > big.SpareBytes {
			big = o
		}
	}
	what := "any tier"
	if need.LatencySensitive {
		what = "DRAM (the job is latency-sensitive)"
	}
	return wire.Errorf(wire.CodeNoSpace, "no tier fits the job: it needs %d bytes (%s) in %s; the largest, %s, has %d bytes (%s) spare, %s short "+
		"(its capacity less what it holds and what its jobs were allotted and have not used) on %d active node(s): add nodes or %s",
		need.Bytes, units.FormatSize(need.Bytes), what, big.Tier, big.SpareBytes, units.FormatSize(big.SpareBytes),
		units.FormatSize(need.Bytes-big.SpareBytes), big.Nodes, capacityAdvice(need))
}

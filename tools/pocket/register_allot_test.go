package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestRegisterSaysTheAllotment: job register says what the job was
// allotted and whence its size came (a known limit: it printed neither,
// and a job sized from its name's profile looked like any other).
func TestRegisterSaysTheAllotment(t *testing.T) {
	for _, c := range []struct {
		m    wire.PlacementMap
		want string
	}{
		{wire.PlacementMap{Job: "etl-12", AllocMbps: 600, AllocBytes: 66 << 20, Sized: wire.SizedProfile},
			"allotted 600 Mb/s, 66MiB: sized from its name's profile (pocket job profile etl)"},
		{wire.PlacementMap{Job: "a-b-3", AllocMbps: 16000, Sized: wire.SizedDefault},
			"allotted 16000 Mb/s, no capacity reserved: Pocket's default size"},
		{wire.PlacementMap{Job: "x-1", AllocMbps: 100, AllocBytes: 1 << 30, Sized: wire.SizedHints}, "allotted 100 Mb/s, 1GiB: sized from its hints"},
		{wire.PlacementMap{Job: "x-1", AllocMbps: 100}, ""},
	} {
		if got := allotmentLine(&c.m); !strings.HasPrefix(got, c.want) || (c.want == "") != (got == "") {
			t.Errorf("%+v: %q; want %q", c.m, got, c.want)
		}
	}
}

// TestRegisterSaysTheQuotaLeft: job register prints what is left of the
// client's allotment quotas (a new user's trial: a tenant, who may not
// read status, learned it only from a refusal), and nothing without one.
func TestRegisterSaysTheQuotaLeft(t *testing.T) {
	for _, c := range []struct {
		q    wire.QuotaLeft
		want string
	}{
		{wire.QuotaLeft{Bytes: 300 << 20, LeftBytes: 100 << 20, Mbps: 2000, LeftMbps: 599.9999999},
			"left of this client's quota: 100MiB of 300MiB, 599.9999999 of 2000 Mb/s"},
		{wire.QuotaLeft{Mbps: 2000, LeftMbps: 0}, "left of this client's quota: 0 of 2000 Mb/s"},
		{wire.QuotaLeft{}, ""},
	} {
		if got := quotaLine(c.q); got != c.want {
			t.Errorf("%+v: %q; want %q", c.q, got, c.want)
		}
	}
}

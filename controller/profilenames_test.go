package controller

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/controller/state"
)

// TestProfileNamesScanIsBounded: the names a "no profile" answer lists
// come from at most profileNamesScan profiles, and the count from the
// tenant's tally: a hostile trial's lookups each walked 10,000 profiles
// under the controller's lock. A tenant whose profiles lie beyond the
// scan is told their number, with no list (and no stray ", ...").
func TestProfileNamesScanIsBounded(t *testing.T) {
	b := newProfileBook(1, 5000, false)
	for i := range 3 {
		b.add(&state.Profile{Name: fmt.Sprintf("alice%sold%d", tenantSep, i)})
	}
	for i := range profileNamesScan + 10 {
		b.add(&state.Profile{Name: fmt.Sprintf("bob%sjob%d", tenantSep, i)})
	}
	if names, n := b.names(profileNamesShown, "alice"); n != 3 || len(names) != 0 {
		t.Errorf("alice's names beyond the scan: %v, %d; want none listed, 3 counted", names, n)
	}
	if names, n := b.names(profileNamesShown, "bob"); n != profileNamesScan+10 || len(names) != profileNamesShown ||
		!strings.HasPrefix(names[0], "bob"+tenantSep) {
		t.Errorf("bob's names: %v, %d", names, n)
	}
	if _, n := b.names(profileNamesShown, ""); n != profileNamesScan+13 {
		t.Errorf("every tenant's count %d; want %d", n, profileNamesScan+13)
	}
}

// BenchmarkProfileNamesOfAnotherTenant: a lookup by a tenant holding no
// profile among 10,000 of another's (the hostile trial's flood), and by
// one holding one, older than the 10,000 (the longest walk left).
func BenchmarkProfileNamesOfAnotherTenant(b *testing.B) {
	book := newProfileBook(1, 20000, false)
	book.add(&state.Profile{Name: "alice" + tenantSep + "old"})
	for i := range 10000 {
		book.add(&state.Profile{Name: fmt.Sprintf("bob%sjob%d", tenantSep, i)})
	}
	for _, tenant := range []string{"mallory", "alice"} {
		b.Run(tenant, func(b *testing.B) {
			for b.Loop() {
				book.names(profileNamesShown, tenant)
			}
		})
	}
}

package pocket_test

// Paging loops facing a hostile node (a hostile trial): listing and
// prefix-delete pages that say more without moving on, and numeric
// figures no node sends.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// wantMalformed fails t unless err is malformed, names addr and says want.
func wantMalformed(t *testing.T, what string, err error, addr, want string) {
	t.Helper()
	if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %v; want malformed, naming %s and saying %q", what, err, addr, want)
	}
}

// TestListPagesMustMoveOn: a node whose listing pages say more with the
// same key, with a key before the cursor, or with no key, fails List as
// malformed, naming the node, at once. A hostile trial's node answering
// every page with more and the same key had List send 402,319 requests in
// 10 s, ended only by the caller's context.
func TestListPagesMustMoveOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		page func(n int64) []wire.Entry
		want string
	}{
		{"same key", func(int64) []wire.Entry { return []wire.Entry{{Key: []byte("a"), Size: 1}} }, `listing key "a" is not after "a"`},
		{"going back", func(n int64) []wire.Entry { return []wire.Entry{{Key: []byte{byte('z' - n)}, Size: 1}} }, `listing key "y" is not after "z"`},
		{"unsorted", func(int64) []wire.Entry { return []wire.Entry{{Key: []byte("b")}, {Key: []byte("a")}} }, `listing key "a" is not after "b"`},
		{"no key", func(int64) []wire.Entry { return nil }, "says more and lists no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
				return nodeAnswer{resp: wire.Response{More: true, Entries: tc.page(n.Add(1) - 1)}}
			})
			_, j := hostileJob(t, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			es, err := j.List(ctx, "")
			wantMalformed(t, "list", err, addr, tc.want)
			if len(es) != 0 || n.Load() > 10 {
				t.Fatalf("list: %d entries after %d requests; want none, after a few", len(es), n.Load())
			}
		})
	}
}

// TestListKeysUnderThePrefix: a node answering a listing of "a/" with
// "zzz/secret" fails it as malformed (a re-check: it was listed, and
// counted by CountFiles).
func TestListKeysUnderThePrefix(t *testing.T) {
	addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		return nodeAnswer{resp: wire.Response{Entries: []wire.Entry{{Key: []byte("zzz/secret"), Size: 1}}}}
	})
	_, j := hostileJob(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	es, err := j.List(ctx, "a/")
	wantMalformed(t, "list a/", err, addr, `listing key "zzz/secret" is not under the prefix "a/"`)
	if len(es) != 0 {
		t.Fatalf("list a/: %v", es)
	}
	if n, err := j.CountFiles(ctx, "a"); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("count files a: %d, %v; want malformed", n, err)
	}
}

// TestListOfEverNewKeysIsBounded: a node answering every page with new
// keys in order passes the progress checks; the listing stops at
// MaxListBytes (lowered here), too large, naming the node. A re-check's
// node had a List without a deadline hold 12.6 million keys (1.3 GiB)
// after 20 s.
func TestListOfEverNewKeysIsBounded(t *testing.T) {
	defer pocket.SetListBound(64 << 10)()
	var n atomic.Int64
	addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		var ents []wire.Entry
		for range 100 {
			ents = append(ents, wire.Entry{Key: fmt.Appendf(nil, "k%012d", n.Add(1)), Size: 1})
		}
		return nodeAnswer{resp: wire.Response{More: true, Entries: ents}}
	})
	_, j := hostileJob(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := j.List(ctx, "")
	if !errors.Is(err, wire.ErrTooLarge) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "pocket.MaxListBytes") {
		t.Fatalf("list of ever new keys: %v; want too large, naming %s", err, addr)
	}
	if got := n.Load(); got > 400 {
		t.Fatalf("list of ever new keys took %d keys; want it to stop near the bound (about 280)", got)
	}
}

// pagingNode answers listings of keys as a node does (dataplane/list.go),
// a page of one entry at a time: keys after the cursor, those past the
// delimiter collapsed into directories.
func pagingNode(t *testing.T, keys []string) string {
	sort.Strings(keys)
	return hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		var resp wire.Response
		for _, k := range keys {
			e := wire.Entry{Key: []byte(k), Size: 1}
			if i := bytes.IndexByte(e.Key[len(req.Key):], req.Delimiter); req.Delimiter != 0 && i >= 0 {
				e = wire.Entry{Key: e.Key[:len(req.Key)+i+1], Dir: true}
			}
			if !bytes.HasPrefix(e.Key, req.Key) || bytes.Compare(e.Key, req.After) <= 0 && len(req.After) > 0 {
				continue
			}
			if n := len(resp.Entries); n > 0 {
				if !bytes.Equal(resp.Entries[n-1].Key, e.Key) {
					resp.More = true
				}
				continue
			}
			resp.Entries = append(resp.Entries, e)
		}
		return nodeAnswer{resp: resp}
	})
}

// TestLongListingStillPages: a listing of many one-entry pages, with and
// without directories, passes the progress checks whole.
func TestLongListingStillPages(t *testing.T) {
	keys := []string{"a/1", "a/2", "b/1", "c", "d", "e/x/y", "f"}
	addr := pagingNode(t, keys)
	_, j := hostileJob(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	es, err := j.List(ctx, "")
	if err != nil || len(es) != len(keys) {
		t.Fatalf("list: %v, %v; want the %d keys", es, err, len(keys))
	}
	n, err := j.CountFiles(ctx, "")
	if err != nil || n != 6 {
		t.Fatalf("count files: %d, %v; want 6 (a/ b/ c d e/ f)", n, err)
	}
}

// TestDeleteAllPagesMustMoveOn: a node whose prefix-delete pages say more
// and deleted nothing fails DeleteAll as malformed, naming the node. A
// hostile trial's node had DeleteAll send 223,687 requests in 10 s, ended
// only by the caller's context.
func TestDeleteAllPagesMustMoveOn(t *testing.T) {
	var n atomic.Int64
	addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		n.Add(1)
		return nodeAnswer{resp: wire.Response{More: true}}
	})
	_, j := hostileJob(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := j.DeleteAll(ctx)
	wantMalformed(t, "delete all", err, addr, "says more and deleted nothing")
	if n.Load() > 10 {
		t.Fatalf("delete all sent %d requests; want a few", n.Load())
	}
}

// TestNegativeFiguresAreMalformed: a node answering a usage request and a
// stat with size -5 fails them as malformed, naming the node and the
// field. Before, Usage returned -5 and Stat Size -5, with no error (a
// hostile trial).
func TestNegativeFiguresAreMalformed(t *testing.T) {
	addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		return nodeAnswer{resp: wire.Response{Size: -5}}
	})
	_, j := hostileJob(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := j.Usage(ctx)
	wantMalformed(t, "usage", err, addr, "size -5 out of range")
	if u != 0 {
		t.Fatalf("usage %d with an error; want 0", u)
	}
	inf, err := j.Stat(ctx, "k")
	wantMalformed(t, "stat", err, addr, "size -5 out of range")
	if inf != (pocket.Info{}) {
		t.Fatalf("stat %+v with an error; want none", inf)
	}
}

// TestUsageOverANodesBoundIsMalformed: a node's usage of the job past one
// node's bytes (wire.MaxNodeBytes) fails Usage as malformed: summed over
// the job's nodes it could overflow to a negative usage.
func TestUsageOverANodesBoundIsMalformed(t *testing.T) {
	addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		return nodeAnswer{resp: wire.Response{Size: wire.MaxNodeBytes + 1}}
	})
	_, j := hostileJob(t, addr)
	u, err := j.Usage(context.Background())
	if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), "over one node's bound") || u != 0 {
		t.Fatalf("usage %d, %v; want 0, malformed, over one node's bound", u, err)
	}
}

// TestDeleteAllCountsWhatIsPlausible: a node claiming MaxInt64 names
// deleted on a page fails DeleteAll as malformed, and the count keeps
// nothing of it. Before, two such pages made DeleteAll's count -2, with
// no error (a re-check).
func TestDeleteAllCountsWhatIsPlausible(t *testing.T) {
	addr := hostileNode(t, func(h wire.Header, req *wire.Request) nodeAnswer {
		return nodeAnswer{resp: wire.Response{More: true, Count: math.MaxInt64}}
	})
	_, j := hostileJob(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := j.DeleteAll(ctx)
	wantMalformed(t, "delete all", err, addr, "claims 9223372036854775807 names deleted")
	if n.Count() != 0 {
		t.Fatalf("delete all counted %d names", n.Count())
	}
}

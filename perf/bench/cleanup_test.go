package bench

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/perf/resp"
)

// serveFullRESP answers like serveRESP, except that every SET is refused
// as a Redis at its maxmemory refuses it: nothing is stored.
func serveFullRESP(s *fakeServer, c net.Conn) {
	r := resp.NewReader(c, 64<<10, 64<<20)
	w := bufio.NewWriterSize(c, 64<<10)
	var args [][]byte
	var out []byte
	for {
		var err error
		if args, err = r.ReadCommand(args); err != nil {
			return
		}
		s.requests.Add(1)
		out = out[:0]
		switch {
		case string(args[0]) == "SET":
			out = resp.AppendReply(out, resp.Reply{Kind: resp.Error, Data: []byte("OOM command not allowed when used memory > 'maxmemory'.")})
		case string(args[0]) == "DEL" && len(args) == 2:
			n := int64(0)
			if s.del(args[1]) {
				n = 1
			}
			out = resp.AppendReply(out, resp.Reply{Kind: resp.Integer, Int: n})
		case string(args[0]) == "GET" && len(args) == 2:
			if v, ok := s.get(args[1]); ok {
				out = resp.AppendReply(out, resp.Reply{Kind: resp.Bulk, Data: v})
			} else {
				out = resp.AppendReply(out, resp.Reply{Kind: resp.Null})
			}
		default:
			out = resp.AppendReply(out, resp.Reply{Kind: resp.Error, Data: []byte("ERR unknown command")})
		}
		w.Write(out)
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

// fullStoreWithUsersKeys is a store that refuses every put and already
// holds the user's own values under the names of a run's n keys (a
// user's b64-000000 ..., or an earlier run's kept with --keep).
func fullStoreWithUsersKeys(t *testing.T, n int) *fakeServer {
	t.Helper()
	srv := startFake(t, serveFullRESP)
	keys := NewKeyspace("b64-", n)
	for i := range n {
		srv.put(keys.Key(i), []byte("the user's own"))
	}
	return srv
}

// TestPutRunDeletesOnlyWhatItStored: a put run against a store that
// refuses its puts (full: Redis's OOM, a Pocket job's allotment) stores
// nothing, so its cleanup must delete nothing: the keys of its names
// there are the user's. On the code under test a put run marks a key
// written when it sends the put, not when the store takes it, and its
// cleanup deletes every key it drew: the user's values are gone, and the
// report says it "deleted the N key(s) it wrote" though it wrote none.
func TestPutRunDeletesOnlyWhatItStored(t *testing.T) {
	srv := fullStoreWithUsersKeys(t, 100)
	cfg := Config{Op: Put, Size: 64, Conns: 2, Pipeline: 4, Duration: 200 * time.Millisecond, Keys: 100,
		StallLimit: 10 * time.Second}
	st, _ := Run(context.Background(), cfg, RESPDialer(srv.addr(), cfg.Size))
	if left := srv.stored(); left != 100 {
		t.Errorf("%d of the user's 100 values left after a put run whose every put was refused "+
			"(the run wrote %d, deleted %d: %q)", left, st.Written, st.Deleted, st.CleanupNote())
	}
}

// TestFailedPreloadDeletesOnlyWhatItStored: a get run whose preload the
// store refuses from its first put stored nothing, so its cleanup must
// delete nothing. On the code under test a failed preload cleans up
// every key of the keyspace (allKeys): the user's values under those
// names are deleted, and the error says the run "wrote" them.
func TestFailedPreloadDeletesOnlyWhatItStored(t *testing.T) {
	srv := fullStoreWithUsersKeys(t, 100)
	cfg := Config{Op: Get, Size: 64, Conns: 2, Pipeline: 4, Duration: 200 * time.Millisecond, Keys: 100,
		StallLimit: 10 * time.Second}
	_, err := Run(context.Background(), cfg, RESPDialer(srv.addr(), cfg.Size))
	if err == nil {
		t.Fatal("a get run whose preload was refused succeeded")
	}
	if left := srv.stored(); left != 100 {
		t.Errorf("%d of the user's 100 values left after a preload refused from its first put: %v", left, err)
	}
}

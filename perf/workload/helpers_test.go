package workload

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/perf/resp"
)

// workerEnv makes the test binary act as a worker process (see
// TestSubprocessWorkers): the same ServeWorker the pocket binary runs.
const workerEnv = "WORKLOAD_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// nodes starts n DRAM storage nodes on loopback and returns a static
// pocket target over them.
func nodes(t testing.TB, n int, capacity int64) Target {
	t.Helper()
	var addrs []string
	for range n {
		d, err := dataplane.NewDRAM(capacity, dataplane.DRAMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
		if err != nil {
			d.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() {
			nd.Close()
			d.Close()
		})
		addrs = append(addrs, nd.Addr().String())
	}
	return Target{Kind: KindPocket, Addrs: addrs}
}

// fakeRedis is an in-memory server speaking the RESP subset the Redis
// backend uses (GET, SET, DEL, EXISTS), decoded with perf/resp.
type fakeRedis struct {
	mu   sync.Mutex
	data map[string][]byte
	ln   net.Listener
}

func startFakeRedis(t testing.TB) (*fakeRedis, Target) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{data: map[string][]byte{}, ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.serve(c)
			}()
		}
	}()
	return f, Target{Kind: KindRedis, Addrs: []string{ln.Addr().String()}}
}

func (f *fakeRedis) serve(c net.Conn) {
	defer c.Close()
	r := resp.NewReader(c, 64<<10, resp.DefaultMaxBulk)
	w := bufio.NewWriter(c)
	var args [][]byte
	var out []byte
	for {
		var err error
		if args, err = r.ReadCommand(args); err != nil {
			return
		}
		out = f.reply(out[:0], args)
		if _, err := w.Write(out); err != nil {
			return
		}
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

func (f *fakeRedis) reply(out []byte, args [][]byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := ""
	if len(args) > 1 {
		k = string(args[1])
	}
	switch {
	case string(args[0]) == "SET" && len(args) == 3:
		f.data[k] = append([]byte(nil), args[2]...)
		return resp.AppendReply(out, resp.Reply{Kind: resp.SimpleString, Data: []byte("OK")})
	case string(args[0]) == "GET" && len(args) == 2:
		v, ok := f.data[k]
		if !ok {
			return resp.AppendReply(out, resp.Reply{Kind: resp.Null})
		}
		return resp.AppendReply(out, resp.Reply{Kind: resp.Bulk, Data: v})
	case string(args[0]) == "EXISTS" && len(args) == 2:
		_, ok := f.data[k]
		return resp.AppendReply(out, resp.Reply{Kind: resp.Integer, Int: int64(boolInt(ok))})
	case string(args[0]) == "DEL" && len(args) == 2:
		_, ok := f.data[k]
		delete(f.data, k)
		return resp.AppendReply(out, resp.Reply{Kind: resp.Integer, Int: int64(boolInt(ok))})
	}
	return resp.AppendReply(out, resp.Reply{Kind: resp.Error, Data: []byte("ERR unknown command")})
}

func (f *fakeRedis) get(key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[key]
	return v, ok
}

func (f *fakeRedis) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.data)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// flipByte corrupts one byte of a stored value, at offset off from its end
// (so a version header in front stays intact).
func flipByte(ctx context.Context, be Backend, k string, off int) error {
	v, err := be.Get(ctx, k, nil)
	if err != nil {
		return err
	}
	if len(v) <= off {
		return errors.New("value too short to corrupt")
	}
	v = append([]byte(nil), v...)
	v[len(v)-1-off] ^= 0x20
	return be.Put(ctx, k, v)
}

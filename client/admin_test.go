package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestDropJob drops a job's values on a node and checks the counts the
// node reports, that the values are gone, and that another job's stay.
func TestDropJob(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{})
	defer c.Close()
	ctx, addr := context.Background(), n.Addr().String()
	sizes := map[string]int{"a": 10, "b": 200, "c": 3000}
	var total int64
	for k, size := range sizes {
		put(t, c, addr, "gone", k, size)
		total += int64(size)
	}
	put(t, c, addr, "kept", "a", 5)
	d, err := c.DropJob(ctx, addr, "gone", nil)
	// Bytes freed count the tier's per-value overhead too.
	if err != nil || d.Values != uint64(len(sizes)) || d.Freed < total || d.Kept != 0 {
		t.Fatalf("DropJob = %+v, %v; want %d values, at least %d bytes, none kept, nil", d, err, len(sizes), total)
	}
	for k := range sizes {
		req := wire.Request{Job: []byte("gone"), Key: []byte(k)}
		if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); !errors.Is(err, wire.ErrNotFound) {
			t.Fatalf("get %s after the drop: %v, want not found", k, err)
		}
	}
	req := wire.Request{Job: []byte("kept"), Key: []byte("a")}
	if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
		t.Fatalf("another job's value after the drop: %v", err)
	}
}

// TestDropJobAdminToken: a guarded node takes the drop order only when it
// is made with the admin token of the cluster secret for the node's
// incarnation, and the refusal names job and node.
func TestDropJobAdminToken(t *testing.T) {
	secret := []byte("client-admin-test-secret-0123456")
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1},
		Guard: dataplane.NewTokenGuard(secret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	c := client.New(client.Options{})
	defer c.Close()
	ctx, addr := context.Background(), n.Addr().String()
	_, err = c.DropJobAt(ctx, addr, "j-1", token.OrderKey([]byte("another-secret-0123456789abcdef"), []byte("j-1")), n.Incarnation())
	if !errors.Is(err, wire.ErrBadToken) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "j-1") {
		t.Fatalf("drop with a wrong admin token: %v, want bad token naming j-1 and %s", err, addr)
	}
	if _, err := c.DropJob(ctx, addr, "j-1", token.OrderKey(secret, []byte("j-1"))); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("drop without the node's incarnation: %v, want bad token", err)
	}
	if _, err := c.DropJobAt(ctx, addr, "j-1", token.OrderKey(secret, []byte("j-1")), n.Incarnation()); err != nil {
		t.Fatalf("drop with the admin token for the node's incarnation: %v", err)
	}
}

func put(t *testing.T, c *client.Client, addr, job, key string, size int) {
	t.Helper()
	req := wire.Request{Job: []byte(job), Key: []byte(key)}
	if _, err := c.Do(context.Background(), addr, wire.OpPut, 0, &req, make([]byte, size), nil); err != nil {
		t.Fatalf("put %s/%s: %v", job, key, err)
	}
}

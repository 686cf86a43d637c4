package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

func node(t *testing.T) *dataplane.Node {
	t.Helper()
	d, err := dataplane.NewDRAM(256<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	return n
}

// TestManyCallersOneConn runs many goroutines over one connection: each
// caller must get its own reply whoever happens to read it.
func TestManyCallersOneConn(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	ctx := context.Background()
	addr := n.Addr().String()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				key := []byte(fmt.Sprintf("g%d-%d", g, i))
				val := bytes.Repeat(key, 1+i*37%500)
				req := wire.Request{Job: []byte("j"), Key: key}
				if _, err := c.Do(ctx, addr, wire.OpPut, 0, &req, val, nil); err != nil {
					errs <- err
					return
				}
				r, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil)
				if err != nil || !bytes.Equal(r.Payload, val) {
					errs <- fmt.Errorf("get %s: %v (len %d want %d)", key, err, len(r.Payload), len(val))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestErrorsAndCancel(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{})
	defer c.Close()
	addr := n.Addr().String()
	req := wire.Request{Job: []byte("j"), Key: []byte("missing")}
	if _, err := c.Do(context.Background(), addr, wire.OpGet, 0, &req, nil, nil); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, addr, wire.OpPing, 0, &wire.Request{}, nil, nil); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	// The connection is still usable after a cancelled call.
	if _, err := c.Do(context.Background(), addr, wire.OpPing, 0, &wire.Request{}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeadNode(t *testing.T) {
	n := node(t)
	c := client.New(client.Options{DialTimeout: time.Second})
	defer c.Close()
	addr := n.Addr().String()
	if _, err := c.Do(context.Background(), addr, wire.OpPing, 0, &wire.Request{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	n.Close()
	_, err := c.Do(context.Background(), addr, wire.OpPing, 0, &wire.Request{}, nil, nil)
	if !errors.Is(err, wire.ErrUnavailable) || !bytes.Contains([]byte(err.Error()), []byte(addr)) {
		t.Fatalf("dead node: %v", err)
	}
}

func TestPayloadLimit(t *testing.T) {
	lim := wire.DefaultLimits()
	lim.MaxPayload = 10
	c := client.New(client.Options{Limits: &lim})
	defer c.Close()
	n := node(t)
	_, err := c.Do(context.Background(), n.Addr().String(), wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, make([]byte, 11), nil)
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
}

// TestCancelSilentNode: a node that accepts and never answers must not hold
// a caller past its context, even when that caller is the one reading.
func TestCancelSilentNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Do(ctx, ln.Addr().String(), wire.OpPing, 0, &wire.Request{}, nil, nil)
	if err == nil {
		t.Fatal("a silent node answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("call returned after %v, its context ended after 200ms", d)
	}
}

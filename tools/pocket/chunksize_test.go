package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// TestPutChunkSize: pocket put --chunk-size stores a larger value in
// chunks of that size (its manifest at the key's owner says so), and get
// reads it back whole. Before, the CLI had no way to set it, though the
// SDKs' refusal of a chunk over a node's staging memory advises a smaller
// chunk size (a new user's re-check).
func TestPutChunkSize(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	env := cleanEnv("POCKET_CONTROLLER="+addr, envInsecure+"=1")
	reg := registerJSON(t, bin, env, "chunky")
	env = append(env, envToken+"="+reg.Token)
	value := bytes.Repeat([]byte("0123456789abcdefghij"), 15000) // 300,000 bytes
	if out, errOut, code := pocketRun(t, bin, env, string(value), "put", "--chunk-size", "64KiB", reg.JobID, "v", "-"); code != 0 {
		t.Fatalf("put --chunk-size 64KiB: exit %d: %s %s", code, out, errOut)
	}
	got, errOut, code := pocketRun(t, bin, env, "", "get", reg.JobID, "v")
	if code != 0 || got != string(value) {
		t.Fatalf("get: exit %d, %d bytes (want %d): %s", code, len(got), len(value), errOut)
	}
	tok, err := token.Parse(reg.Token)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Options{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var manifests []wire.Manifest
	for _, n := range reg.Nodes {
		r, err := c.Do(ctx, n.Addr, wire.OpGet, 0, &wire.Request{Job: []byte(reg.JobID), Key: []byte("v"), Token: tok, Epoch: reg.Epoch}, nil, nil)
		if err != nil || r.Flags&wire.FlagManifest == 0 {
			continue // not the key's owner
		}
		m, err := wire.DecodeManifest(r.Payload)
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, m)
	}
	if len(manifests) != 1 || manifests[0].Chunk != 64<<10 || manifests[0].Count != 5 || manifests[0].Size != int64(len(value)) {
		t.Fatalf("the value's manifests %+v: want one of 5 chunks of 65536 bytes", manifests)
	}
}

// Command gohelper is the Go side of the Python client's cross-language
// tests and benchmark: it writes and reads values of a job with the Go SDK,
// so the tests can check that a value written by one language reads back
// byte-exact in the other. It is a package of the module (go vet,
// staticcheck and the layer check cover it: it sits in the top layer, with
// tools); the tests and python/bench build it by path.
//
//	gohelper put JOB KEY FILE          store FILE's bytes under KEY
//	gohelper get JOB KEY FILE          write KEY's value to FILE
//	gohelper bench JOB BYTES ROUNDS    put and get a BYTES-byte value ROUNDS
//	                                   times; print the best MB/s of each as JSON
//	                                   (each get into a new buffer, as Get does)
//	gohelper lat JOB PREFIX OPS        get PREFIX000000 .. (OPS keys, each stored
//	                                   already) one after another on one goroutine;
//	                                   print the p50 and p99 in microseconds as JSON
//	gohelper cluster NODES GRACE       run a controller and nodes in this process
//	                                   and kill, start or drain nodes, or grow or shrink a job's map,
//	                                   on request (cluster.go)
//	gohelper static NODES              run static nodes in this process, run a
//	                                   node's mover and count a job's records on
//	                                   request (static.go)
//	gohelper credential                open the credential on stdin without a
//	                                   controller; print its map and its
//	                                   Credential again as JSON (credential)
//
// The controller is POCKET_CONTROLLER, reached over mutual TLS with
// POCKET_TLS_DIR when set; the job's token is POCKET_TOKEN (hex).
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketstore/pocket/pocket"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gohelper:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "cluster" {
		return cluster(args[1:])
	}
	if len(args) > 0 && args[0] == "static" {
		return static(args[1:])
	}
	if len(args) == 1 && args[0] == "credential" {
		return credential(os.Stdin)
	}
	if len(args) != 4 {
		return fmt.Errorf("usage: gohelper put|get JOB KEY FILE, gohelper bench JOB BYTES ROUNDS, gohelper lat JOB PREFIX OPS, or gohelper credential")
	}
	ctx := context.Background()
	tok, err := hex.DecodeString(os.Getenv("POCKET_TOKEN"))
	if err != nil {
		return fmt.Errorf("POCKET_TOKEN: %w", err)
	}
	s, err := pocket.Dial(ctx, os.Getenv("POCKET_CONTROLLER"), pocket.Config{})
	if err != nil {
		return err
	}
	defer s.Close()
	j, err := s.OpenJob(ctx, args[1], tok)
	if err != nil {
		return err
	}
	switch args[0] {
	case "put":
		b, err := os.ReadFile(args[3])
		if err != nil {
			return err
		}
		return j.Put(ctx, args[2], b)
	case "get":
		b, err := j.Get(ctx, args[2])
		if err != nil {
			return err
		}
		return os.WriteFile(args[3], b, 0o600)
	case "bench":
		return bench(ctx, j, args[2], args[3])
	case "lat":
		return latency(ctx, j, args[2], args[3])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// bench prints {"put_mbps": P, "get_mbps": G}: the best of ROUNDS puts and
// gets of one BYTES-byte value, in MB/s (10^6 bytes a second).
func bench(ctx context.Context, j *pocket.Job, sizeArg, roundsArg string) error {
	size, err := strconv.Atoi(sizeArg)
	if err != nil {
		return err
	}
	rounds, err := strconv.Atoi(roundsArg)
	if err != nil {
		return err
	}
	val := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	var bestPut, bestGet float64
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		if err := j.Put(ctx, "gohelper/bench", val); err != nil {
			return err
		}
		t1 := time.Now()
		got, err := j.Get(ctx, "gohelper/bench")
		if err != nil {
			return err
		}
		t2 := time.Now()
		if !bytes.Equal(got, val) {
			return fmt.Errorf("bench: value read back differs")
		}
		bestPut = max(bestPut, float64(size)/t1.Sub(t0).Seconds()/1e6)
		bestGet = max(bestGet, float64(size)/t2.Sub(t1).Seconds()/1e6)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]float64{"put_mbps": bestPut, "get_mbps": bestGet})
}

// latency prints {"p50_us": P, "p99_us": Q}: the latencies of one Get of
// each of the ops keys prefix%06d, in turn on one goroutine, the way the
// Python benchmark times its own gets of the same keys, after a warm-up
// pass over the first 500.
func latency(ctx context.Context, j *pocket.Job, prefix, opsArg string) error {
	ops, err := strconv.Atoi(opsArg)
	if err != nil || ops <= 0 {
		return fmt.Errorf("lat: OPS %q: want a positive count", opsArg)
	}
	for i := range min(ops, 500) { // warm-up: dial the nodes, fault in the code paths
		if _, err := j.Get(ctx, fmt.Sprintf("%s%06d", prefix, i)); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, ops)
	for i := range lat {
		t := time.Now()
		if _, err := j.Get(ctx, fmt.Sprintf("%s%06d", prefix, i)); err != nil {
			return err
		}
		lat[i] = time.Since(t)
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]float64{"p50_us": pct(0.5), "p99_us": pct(0.99)})
}

// credNode is one node of an opened credential's map as credential prints it.
type credNode struct {
	Addr     string  `json:"addr"`
	Weight   float64 `json:"weight"`
	Draining bool    `json:"draining"`
	Joining  bool    `json:"joining"`
}

// credential reads a credential (pocket.Job.Credential's format, either
// language's) from r, opens it with a Store without a controller, and
// prints {"job": ID, "epoch": E, "nodes": [{"addr", "weight", "draining",
// "joining"}, ...], "credential": C}: the map the Go SDK reads from it, in
// the credential's node order, and the opened job's Credential, for the
// Python client to read back.
func credential(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	s := pocket.NewStore(nil, pocket.Config{})
	defer s.Close()
	j, err := s.OpenCredential(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	m := j.Map()
	nodes := make([]credNode, len(m.Nodes))
	for i, n := range m.Nodes {
		nodes[i] = credNode{Addr: n.Addr, Weight: n.Weight, Draining: m.Draining[n.Addr], Joining: m.Joining[n.Addr]}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"job": m.Job, "epoch": m.Epoch, "nodes": nodes,
		"credential": j.Credential()})
}

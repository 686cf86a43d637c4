package pocket_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/pocket"
)

// startNode runs a storage node with a 64 MiB DRAM tier on loopback, as
// `pocket node` does, and returns its address and a stop function.
func startNode() (string, func()) {
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		log.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1}})
	if err != nil {
		log.Fatal(err)
	}
	return n.Addr().String(), func() { n.Close(); d.Close() }
}

// A job on a cluster: register it with the controller (pocket.Dial, then
// RegisterJob with hints), or, as here, open a job on fixed nodes without
// a controller. Small values are one round trip; larger ones are split
// into chunks and written and read in parallel, and a get always returns
// one whole version.
func Example() {
	addr, stop := startNode()
	defer stop()
	ctx := context.Background()
	s := pocket.NewStore(nil, pocket.Config{ChunkSize: 1 << 20})
	defer s.Close()
	job, err := s.OpenStatic("example-1", addr)
	if err != nil {
		log.Fatal(err)
	}
	if err := job.Put(ctx, "shuffle/part-0", []byte("small value")); err != nil {
		log.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 3<<20) // 3 chunks
	if err := job.Put(ctx, "shuffle/part-1", big); err != nil {
		log.Fatal(err)
	}
	v, err := job.Get(ctx, "shuffle/part-0")
	if err != nil {
		log.Fatal(err)
	}
	ents, err := job.List(ctx, "shuffle/")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)
	for _, e := range ents {
		fmt.Println(e.Name, e.Size)
	}
	if err := job.RemoveAll(ctx, "shuffle"); err != nil {
		log.Fatal(err)
	}
	// Output:
	// small value
	// shuffle/part-0 11
	// shuffle/part-1 3145728
}

// Streaming a value in and out: the value becomes visible, whole, at
// Close, and a reader never mixes two versions.
func ExampleJob_NewWriter() {
	addr, stop := startNode()
	defer stop()
	ctx := context.Background()
	s := pocket.NewStore(nil, pocket.Config{ChunkSize: 1 << 20})
	defer s.Close()
	job, err := s.OpenStatic("example-2", addr)
	if err != nil {
		log.Fatal(err)
	}
	w, err := job.NewWriter(ctx, "out/result")
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	r, err := job.NewReader(ctx, "out/result")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	// Output:
	// line 0
	// line 1
	// line 2
}

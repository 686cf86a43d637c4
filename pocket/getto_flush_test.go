package pocket

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// flushFails holds what is written and fails its Flush, as a buffered
// stdout on a full device does.
type flushFails struct{ bytes.Buffer }

func (*flushFails) Flush() error { return errors.New("write /dev/stdout: no space left on device") }

// TestGetToKeepsAValueItCouldNotFlush: a delete-after-read GetTo into a
// writer whose Flush fails answers that error and leaves the value
// stored. Before, `pocket get --delete-after-read KEY -`, whose output is
// held back until the end, deleted the value and then failed to write it
// (a new user's trial: stdout on a full device, or a closed pipe).
func TestGetToKeepsAValueItCouldNotFlush(t *testing.T) {
	addrs, _ := cluster(t, 1, 64<<20)
	j := staticJob(t, Config{}, addrs)
	ctx := context.Background()
	if err := j.Put(ctx, "k", []byte("the value")); err != nil {
		t.Fatal(err)
	}
	var w flushFails
	if _, err := j.GetTo(ctx, "k", &w, DeleteAfterRead()); err == nil {
		t.Fatal("GetTo into a writer whose Flush failed answered no error")
	}
	if v, err := j.Get(ctx, "k"); err != nil || string(v) != "the value" {
		t.Fatalf("the value after the failed delete-after-read: %q %v", v, err)
	}
}

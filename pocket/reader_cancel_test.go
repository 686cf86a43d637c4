package pocket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestReaderCancelledAfterDeleteIsNotCorrupt: a streamed read whose object
// is deleted mid-stream (by another caller, or by the caller's own
// cancelled delete still running behind its fence) and whose context then
// ends answers not found or the context's error. Before, chunkErr's look
// at the object failed with the ended context and every such failure was
// "corrupt object" (a hostile trial: 20 of 20 rounds staged so, 2 in about
// 100,000 calls of a cancellation storm). Fails on the old code.
func TestReaderCancelledAfterDeleteIsNotCorrupt(t *testing.T) {
	addrs, _ := cluster(t, 3, 256<<20)
	j := staticJob(t, Config{ChunkSize: 16 << 10}, addrs)
	bg := context.Background()
	const rounds = 20
	corrupt := 0
	for i := 0; i < rounds; i++ {
		if err := j.Put(bg, "obj", bytes.Repeat([]byte{byte(i + 1)}, 8*16<<10)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(bg)
		rd, err := j.NewReader(ctx, "obj")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // chunk 1 fetched
		if err := j.Delete(bg, "obj"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16<<10)
		if _, err := io.ReadFull(rd, buf); err != nil { // chunk 1; chunk 2's fetch starts, finds it gone
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		cancel() // the caller gives up
		_, err = rd.Read(buf)
		rd.Close()
		switch {
		case errors.Is(err, ErrCorrupt):
			corrupt++
			if corrupt == 1 {
				t.Logf("round %d: %v", i, err)
			}
		case errors.Is(err, ErrNotFound), errors.Is(err, context.Canceled):
		default:
			t.Logf("round %d: other error %v", i, err)
		}
	}
	if corrupt > 0 {
		t.Errorf("%d of %d reads of an object deleted mid-stream, whose context then ended, said the object is corrupt", corrupt, rounds)
	}
}

// TestReaderFailsForGood: a Reader whose context ends mid-stream fails the
// Read in progress and every Read after it. Before, the next Read
// answered io.EOF: a caller that reads on after a timeout (as one does
// with a net.Conn), or a bufio.Reader over it, got a truncated value that
// ended like a whole one (a hostile trial: 20 of 20 rounds). Fails on the
// old code.
func TestReaderFailsForGood(t *testing.T) {
	addrs, _ := cluster(t, 3, 256<<20)
	j := staticJob(t, Config{ChunkSize: 16 << 10}, addrs)
	bg := context.Background()
	const size = 64 * 16 << 10
	if err := j.Put(bg, "obj", bytes.Repeat([]byte{7}, size)); err != nil {
		t.Fatal(err)
	}
	truncated := 0
	const rounds = 20
	for i := 0; i < rounds; i++ {
		ctx, cancel := context.WithCancel(bg)
		rd, err := j.NewReader(ctx, "obj")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16<<10)
		var got []byte
		var firstErr error
		eofAfterErr := false
		for n := 0; ; n++ {
			if n == 3 {
				cancel()
			}
			k, err := rd.Read(buf)
			got = append(got, buf[:k]...)
			if err == io.EOF {
				eofAfterErr = firstErr != nil
				break
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if n > 100 {
				break
			}
		}
		rd.Close()
		cancel()
		if eofAfterErr && len(got) < size {
			truncated++
			if truncated == 1 {
				t.Logf("round %d: Read failed with %v, then answered io.EOF after %d of %d bytes (Size() %d)", i, firstErr, len(got), size, rd.Size())
			}
		}
	}
	if truncated > 0 {
		t.Errorf("%d of %d streams answered io.EOF after an error, %s", truncated, rounds, "short of the value's size")
	}
}

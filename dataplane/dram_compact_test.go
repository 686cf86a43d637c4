package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
)

// TestDRAMCompactionUnderLoad: writers of values of many sizes keep a
// small DRAM tier full, so puts find no room and compact (moving values
// out of sparse pages) while others put, overwrite, delete and read. Each
// writer owns its keys, so every answer is checked exactly: a read gives
// the key's last value whole, a deleted key stays deleted, and at the end
// every key holds its last value. Run with -race in make test.
func TestDRAMCompactionUnderLoad(t *testing.T) {
	d, err := dataplane.NewDRAM(8<<20, dataplane.DRAMOptions{PageSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const writers, keys, ops = 4, 16000, 8000
	sizes := []int{16, 100, 300, 1000, 4000, 20000, 70000, 200000}
	value := func(w, k, seq, size int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(w*31 + k*7 + seq + i)
		}
		if size >= 8 {
			binary.LittleEndian.PutUint64(b, uint64(seq))
		}
		return b
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			last := make(map[int][]byte) // nil: deleted or never put
			fail := func(msg string) { errs <- errors.New(strconv.Itoa(w) + ": " + msg) }
			// First the tier fills with small values, most of which then
			// go: their pages stay with the small class, held by the few
			// left, and the mixed sizes that follow need compaction.
			for k := 0; k < keys; k++ {
				v := value(w, k, 0, 100)
				if !putBytes(d, []byte("w"+strconv.Itoa(w)+"/"+strconv.Itoa(k)), v) {
					break
				}
				last[k] = v
			}
			for k := range last {
				if k%16 != 0 {
					if _, err := d.Delete([]byte("j"), []byte("w"+strconv.Itoa(w)+"/"+strconv.Itoa(k))); err != nil {
						fail("delete: " + err.Error())
						return
					}
					last[k] = nil
				}
			}
			for seq := 1; seq <= ops; seq++ {
				k := rng.IntN(keys)
				key := []byte("w" + strconv.Itoa(w) + "/" + strconv.Itoa(k))
				switch op := rng.IntN(10); {
				case op < 4:
					v := value(w, k, seq, sizes[rng.IntN(len(sizes))])
					if putBytes(d, key, v) {
						last[k] = v
					} // else full for now: others delete
				case op < 5:
					if _, err := d.Delete([]byte("j"), key); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
						fail("delete: " + err.Error())
						return
					}
					last[k] = nil
				default:
					v, err := d.Open([]byte("j"), key)
					switch {
					case errors.Is(err, dataplane.ErrNotFound):
						if last[k] != nil {
							fail("key " + string(key) + " not found, want its last value")
							return
						}
						continue
					case err != nil:
						fail("open: " + err.Error())
						return
					}
					got := bytes.Join(v.Segments(), nil)
					v.Release()
					if !bytes.Equal(got, last[k]) {
						fail("key " + string(key) + " read back something else than its last value (deleted: " + strconv.FormatBool(last[k] == nil) + ")")
						return
					}
				}
			}
			for k, want := range last {
				v, err := d.Open([]byte("j"), []byte("w"+strconv.Itoa(w)+"/"+strconv.Itoa(k)))
				if want == nil {
					if err == nil {
						v.Release()
						fail("a deleted key came back")
						return
					}
					continue
				}
				if err != nil {
					fail("final open: " + err.Error())
					return
				}
				got := bytes.Join(v.Segments(), nil)
				v.Release()
				if !bytes.Equal(got, want) {
					fail("final value wrong")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	moved, pages := d.Compacted()
	t.Logf("compaction moved %d values and freed %d pages", moved, pages)
	if moved == 0 || pages == 0 {
		t.Errorf("compaction moved %d values and freed %d pages: the test exercised nothing", moved, pages)
	}
}

// putBytes stores v under job j's key, false when the tier has no room.
func putBytes(d dataplane.Tier, key, v []byte) bool {
	p, err := d.Create([]byte("j"), key, int64(len(v)), dataplane.Meta{})
	if err != nil {
		return false
	}
	rest := v
	for _, b := range p.Buffers() {
		rest = rest[copy(b, rest):]
	}
	_, err = p.Commit()
	return err == nil
}

// TestPutsWaitForARunningCompaction: puts on several goroutines find a
// fragmented tier full at once; one compacts, and the others wait for it
// and try again, so every put that fits is stored. Before, the others
// failed with ErrNoSpace at once while the first made room. Fails on the
// old code (most rounds).
func TestPutsWaitForARunningCompaction(t *testing.T) {
	for round := range 3 {
		d, err := dataplane.NewDRAM(8<<20, dataplane.DRAMOptions{PageSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ; putBytes(d, []byte("s"+strconv.Itoa(n)), make([]byte, 100)); n++ {
		}
		for i := 0; i < n; i++ {
			if i%64 != 0 {
				if _, err := d.Delete([]byte("j"), []byte("s"+strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
		}
		var wg sync.WaitGroup
		var failed sync.Map
		start := make(chan struct{})
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if !putBytes(d, []byte("big"+strconv.Itoa(g)), make([]byte, 64<<10)) {
					failed.Store(g, true)
				}
			}()
		}
		close(start)
		wg.Wait()
		bad := 0
		failed.Range(func(any, any) bool { bad++; return true })
		if bad > 0 {
			t.Errorf("round %d: %d of 8 puts of 64 KiB refused on a tier 2 %% used", round, bad)
		}
		d.Close()
	}
}

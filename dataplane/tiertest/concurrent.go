package tiertest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
)

// Concurrent-test values carry their seed in the first 8 bytes, so a reader
// can check any version of a shared key without knowing which writer won.
func selfChecking(size int, seed uint64) []byte {
	size = max(size, 8)
	b := pattern(size, seed)
	binary.LittleEndian.PutUint64(b, seed)
	return b
}

func checkSelf(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("value of %d bytes is too short to be one the test wrote", len(b))
	}
	seed := binary.LittleEndian.Uint64(b)
	want := pattern(len(b), seed)
	binary.LittleEndian.PutUint64(want, seed)
	if string(want) != string(b) {
		return fmt.Errorf("torn or corrupt %d-byte value (seed %d)", len(b), seed)
	}
	return nil
}

func testConcurrent(t *testing.T, newTier NewTier) {
	tier := open(t, newTier, bigCapacity)
	const workers, ops, shared = 8, 300, 16
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := worker(tier, w, ops, shared); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for k := range shared {
		_, _ = tier.Delete([]byte("shared"), []byte(fmt.Sprint(k)))
	}
	if u := tier.Usage(); u.Used != 0 || u.Values != 0 {
		t.Fatalf("usage after deleting everything: %+v", u)
	}
}

// worker mixes puts, gets, deletes and lists on shared keys, and checks
// its own keys exactly.
func worker(tier dataplane.Tier, w, ops, shared int) error {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	own := fmt.Sprintf("own%d", w)
	for i := range ops {
		key := fmt.Sprint(rng.IntN(shared))
		size := 8 + rng.IntN(1<<(4+rng.IntN(14)))
		seed := uint64(w)<<32 | uint64(i)
		var err error
		switch rng.IntN(5) {
		case 0, 1:
			err = put(tier, "shared", key, selfChecking(size, seed), 0)
		case 2:
			var b []byte
			if b, _, err = get(tier, "shared", key); err == nil {
				err = checkSelf(b)
			}
		case 3:
			_, err = tier.Delete([]byte("shared"), []byte(key))
		case 4:
			err = tier.List([]byte("shared"), nil, nil, func([]byte, dataplane.Info) bool { return true })
		}
		if err != nil && !errors.Is(err, dataplane.ErrNotFound) && !errors.Is(err, dataplane.ErrNoSpace) {
			return fmt.Errorf("worker %d op %d: %w", w, i, err)
		}
		if err := ownRoundTrip(tier, own, size, seed); err != nil {
			return fmt.Errorf("worker %d op %d: %w", w, i, err)
		}
	}
	return nil
}

func ownRoundTrip(tier dataplane.Tier, job string, size int, seed uint64) error {
	data := selfChecking(size, seed)
	if err := put(tier, job, "k", data, 0); err != nil {
		return err
	}
	got, _, err := get(tier, job, "k")
	if err != nil {
		return err
	}
	if string(got) != string(data) {
		return errors.New("own key read back different bytes")
	}
	return delErr(tier.Delete([]byte(job), []byte("k")))
}

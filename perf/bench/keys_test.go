package bench

import (
	"bytes"
	"testing"
)

func TestKeyspace(t *testing.T) {
	k := NewKeyspace("b1024-", 1000)
	seen := map[string]bool{}
	for i := range k.Len() {
		key := k.Key(i)
		if len(key) != len("b1024-")+minDigits || !bytes.HasPrefix(key, []byte("b1024-")) {
			t.Fatalf("key %d = %q", i, key)
		}
		seen[string(key)] = true
	}
	if len(seen) != 1000 || string(k.Key(42)) != "b1024-00000042" {
		t.Fatalf("%d distinct keys, key 42 = %q", len(seen), k.Key(42))
	}
	// A key cannot be grown into its neighbour.
	if key := k.Key(0); cap(key) != len(key) {
		t.Fatalf("key slice has spare capacity %d", cap(key)-len(key))
	}
	if NewKeyspace("k", 0).Len() != 1 {
		t.Fatal("an empty keyspace should hold one key")
	}
}

func TestDefaultKeys(t *testing.T) {
	for size, want := range map[int64]int{0: 100000, 1024: 100000, 4096: 65536, 1 << 20: 256, 1 << 30: 1} {
		if got := DefaultKeys(size, 0); got != want {
			t.Errorf("DefaultKeys(%d, 0) = %d, want %d", size, got, want)
		}
	}
	// A 256 MiB node with nothing of the job's: half of it.
	if got := DefaultKeys(4<<20, NodeBudget(256<<20)); got != 32 {
		t.Errorf("DefaultKeys(4MiB, NodeBudget(256MiB)) = %d, want 32", got)
	}
	if got := NodeBudget(0); got != 1 {
		t.Errorf("NodeBudget(0) = %d, want 1", got)
	}
}

func TestNewValue(t *testing.T) {
	v := NewValue(100)
	if len(v) != 100 || v[0] != 'a' || v[26] != 'a' || v[25] != 'z' {
		t.Fatalf("value %q", v)
	}
}

func TestRNGCoversRange(t *testing.T) {
	r := newRNG(7)
	const n, draws = 10, 100000
	var counts [n]int
	for range draws {
		i := r.intn(n)
		if i < 0 || i >= n {
			t.Fatalf("intn(%d) = %d", n, i)
		}
		counts[i]++
	}
	for i, c := range counts {
		if c < draws/n*9/10 || c > draws/n*11/10 {
			t.Fatalf("value %d drawn %d times of %d; not uniform: %v", i, c, draws, counts)
		}
	}
}

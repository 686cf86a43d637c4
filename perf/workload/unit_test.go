package workload

import (
	"bytes"
	"errors"
	"testing"
)

func TestSortRecordsOrdersAndKeepsRecords(t *testing.T) {
	in := make([]byte, 1000*RecordSize)
	for i := range 1000 {
		genRecord(1, uint64(i), in[i*RecordSize:])
	}
	parts := partition(in, 3)
	var total int
	for r, p := range parts {
		total += len(p)
		if bad := checkSorted(mustSort(t, [][]byte{p}), 3, r); bad != "" {
			t.Fatal(bad)
		}
	}
	out := mustSort(t, parts)
	if total != len(in) || len(out) != len(in) {
		t.Fatalf("%d and %d bytes from %d", total, len(out), len(in))
	}
	a, n := checksum(in)
	b, m := checksum(out)
	if a != b || n != m || n != 1000 {
		t.Fatalf("checksum %x/%d before, %x/%d after", a, n, b, m)
	}
	if bad := checkSorted(out, 1, 0); bad != "" {
		t.Fatal(bad)
	}
	out[5*RecordSize], out[6*RecordSize] = out[6*RecordSize], out[5*RecordSize]^0xff
	if checkSorted(out, 1, 0) == "" {
		t.Fatal("disorder not found")
	}
}

func mustSort(t *testing.T, parts [][]byte) []byte {
	out, err := sortRecords(parts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSortRecordsRefusesPartialRecords(t *testing.T) {
	if _, err := sortRecords([][]byte{make([]byte, RecordSize+1)}); err == nil {
		t.Fatal("no error for a partial record")
	}
}

func TestCountsRoundTrip(t *testing.T) {
	text, counts := genText(Spec{Workers: 1, Size: 10000, Seed: 3}, 0)
	if len(bytes.Fields(text)) == 0 {
		t.Fatal("no words")
	}
	got, err := parseCounts(formatCounts(counts))
	if err != nil {
		t.Fatal(err)
	}
	for i := range counts {
		if got[i] != counts[i] {
			t.Fatalf("word %d: %d != %d", i, got[i], counts[i])
		}
	}
	for _, bad := range []string{"", "x 1\n", vocab[0] + " -1\n", vocab[0] + " 1"} {
		if _, err := parseCounts([]byte(bad)); !errors.Is(err, errCounts) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

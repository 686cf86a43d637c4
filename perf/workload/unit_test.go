package workload

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
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

func TestReadReply(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind byte
		data string
		n    int64
	}{
		{"+OK\r\n", '+', "OK", 0},
		{"-ERR x\r\n", '-', "ERR x", 0},
		{":42\r\n", ':', "", 42},
		{"$3\r\nabc\r\n", '$', "abc", 0},
		{"$0\r\n\r\n", '$', "", 0},
		{"$-1\r\n", '_', "", 0},
		{"_\r\n", '_', "", 0},
	} {
		dst := make([]byte, 0, 8)
		r, err := readReply(bufio.NewReader(strings.NewReader(c.in)), dst, 16)
		if err != nil || r.kind != c.kind || string(r.data) != c.data || r.n != c.n {
			t.Errorf("%q: %+v %v", c.in, r, err)
		}
		if c.kind == '$' && len(r.data) > 0 && &r.data[0] != &dst[:1][0] {
			t.Errorf("%q: value not read into dst", c.in)
		}
	}
	for _, in := range []string{"", "$5\r\nab", "$17\r\n", "$-2\r\n", "*1\r\n", "$3\r\nabcXY", ":x\r\n", "+OK\n"} {
		if _, err := readReply(bufio.NewReader(strings.NewReader(in)), nil, 16); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "$3\r\nabc\r\n", ":1\r\n", "$-1\r\n", "-E\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := readReply(bufio.NewReaderSize(bytes.NewReader(in), 16), nil, 1<<10)
		if err != nil {
			return
		}
		if len(r.data) > len(in) {
			t.Fatalf("reply of %d bytes from %d bytes of input", len(r.data), len(in))
		}
		if r.kind == '$' && !bytes.Contains(in, append(bytes.Clone(r.data), '\r', '\n')) {
			t.Fatalf("bulk %q is not in the input %q followed by CRLF", r.data, in)
		}
	})
}

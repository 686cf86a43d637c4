package dataplane_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/tiertest"
)

func newFaulty(t *testing.T) *dataplane.Faulty {
	t.Helper()
	f := dataplane.NewFaulty(newDRAM(t, 32<<20))
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFaultyTierPassesSuite(t *testing.T) {
	tiertest.Run(t, func(t *testing.T, capacity int64) dataplane.Tier {
		return dataplane.NewFaulty(newDRAM(t, capacity))
	})
}

func tryPut(tier dataplane.Tier, job, key string, data []byte) error {
	p, err := tier.Create([]byte(job), []byte(key), int64(len(data)), dataplane.Meta{})
	if err != nil {
		return err
	}
	rest := data
	for _, b := range p.Buffers() {
		rest = rest[copy(b, rest):]
	}
	_, err = p.Commit()
	return err
}

func read(t *testing.T, tier dataplane.Tier, job, key string) []byte {
	t.Helper()
	v, err := tier.Open([]byte(job), []byte(key))
	if err != nil {
		t.Fatalf("Open %s/%s: %v", job, key, err)
	}
	defer v.Release()
	return bytes.Join(v.Segments(), nil)
}

// Each injected failure is reported with the injected error, and leaves
// the stored values and the usage as they were.
func TestFaultyFailNext(t *testing.T) {
	for _, fault := range []error{dataplane.ErrIO, dataplane.ErrNoSpace} {
		f := newFaulty(t)
		old := bytes.Repeat([]byte("o"), 3<<20)
		put(t, f, "j", "k", old)
		before := f.Usage()
		ops := map[dataplane.FaultOp]func() error{
			dataplane.FaultCreate: func() error { return tryPut(f, "j", "k", []byte("new")) },
			dataplane.FaultCommit: func() error { return tryPut(f, "j", "k", []byte("new")) },
			dataplane.FaultOpen: func() error {
				v, err := f.Open([]byte("j"), []byte("k"))
				if err == nil {
					v.Release()
				}
				return err
			},
			dataplane.FaultStat:   func() error { _, err := f.Stat([]byte("j"), []byte("k")); return err },
			dataplane.FaultDelete: func() error { _, err := f.Delete([]byte("j"), []byte("k")); return err },
			dataplane.FaultList: func() error {
				return f.List([]byte("j"), nil, nil, func([]byte, dataplane.Info) bool { return true })
			},
		}
		for op, call := range ops {
			f.FailNext(op, 2, fault)
			for i := range 2 {
				if err := call(); !errors.Is(err, fault) {
					t.Fatalf("%v failure %d: %v, want %v", op, i, err, fault)
				}
				if !bytes.Equal(read(t, f.Inner(), "j", "k"), old) || f.Usage() != before {
					t.Fatalf("a failed %v changed what is stored: usage %+v, was %+v", op, f.Usage(), before)
				}
			}
		}
		if got := f.Injected(); got != 12 {
			t.Fatalf("Injected %d, want 12", got)
		}
		// Disarmed again: every op works.
		for op, call := range ops {
			if op == dataplane.FaultDelete {
				continue
			}
			if err := call(); err != nil {
				t.Fatalf("%v after its faults ran out: %v", op, err)
			}
		}
		if !bytes.Equal(read(t, f, "j", "k"), []byte("new")) {
			t.Fatal("put after the faults did not store")
		}
	}
}

func TestFaultyShortTransfers(t *testing.T) {
	f := newFaulty(t)
	old := bytes.Repeat([]byte("o"), 5000)
	put(t, f, "j", "k", old)
	before := f.Usage()

	f.ShortNext(dataplane.FaultCommit, 1)
	err := tryPut(f, "j", "k", bytes.Repeat([]byte("n"), 7000))
	if !errors.Is(err, dataplane.ErrIO) || !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write: %v, want ErrIO and io.ErrShortWrite", err)
	}
	if !bytes.Equal(read(t, f, "j", "k"), old) || f.Usage() != before {
		t.Fatal("a short write changed what is stored")
	}

	f.ShortNext(dataplane.FaultOpen, 1)
	v, err := f.Open([]byte("j"), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(bytes.Join(v.Segments(), nil)); int64(got) != v.Size()-1 {
		t.Fatalf("short read gave %d bytes of %d", got, v.Size())
	}
	v.Release()
	if !bytes.Equal(read(t, f, "j", "k"), old) {
		t.Fatal("the short read was not a one-off")
	}
	if f.Usage() != before || f.Injected() != 2 {
		t.Fatalf("usage %+v (was %+v), injected %d", f.Usage(), before, f.Injected())
	}
}

func TestFaultyHook(t *testing.T) {
	f := newFaulty(t)
	var seen []string
	f.SetHook(func(op dataplane.FaultOp, job, key []byte) error {
		seen = append(seen, op.String()+" "+string(job)+"/"+string(key))
		if string(key) == "bad" && op == dataplane.FaultCommit {
			return dataplane.ErrIO
		}
		return nil
	})
	if err := tryPut(f, "j", "good", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := tryPut(f, "j", "bad", []byte("v")); !errors.Is(err, dataplane.ErrIO) {
		t.Fatalf("hooked commit: %v, want ErrIO", err)
	}
	if _, err := f.Stat([]byte("j"), []byte("bad")); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("a commit failed by the hook stored the value: %v", err)
	}
	want := "create j/good|commit j/good|create j/bad|commit j/bad|stat j/bad"
	if got := join(seen); got != want {
		t.Fatalf("hook saw %q, want %q", got, want)
	}
	f.Reset()
	if err := tryPut(f, "j", "bad", []byte("v")); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	if f.Inner().Kind() != dataplane.KindDRAM || f.Kind() != dataplane.KindDRAM || f.Blocking() {
		t.Fatal("Faulty does not report its inner tier's kind")
	}
	if dataplane.FaultList.String() != "list" || dataplane.FaultOp(99).String() != "FaultOp(99)" {
		t.Fatal("FaultOp names")
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "|"
		}
		out += x
	}
	return out
}

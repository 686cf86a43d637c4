package blkbpf

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// openOrSkip opens the probe or skips the test, naming the reason.
func openOrSkip(t *testing.T) *Probe {
	t.Helper()
	p, err := Open()
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("eBPF block probe unavailable here: %v", err)
	}
	if err != nil {
		t.Fatalf("Open: %v (does not wrap ErrNotSupported)", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestSupportedIsCached(t *testing.T) {
	a, b := Supported(), Supported()
	if a != b {
		t.Fatalf("Supported changed its answer: %v then %v", a, b)
	}
	if a != nil && !errors.Is(a, ErrNotSupported) {
		t.Fatalf("Supported error %v does not wrap ErrNotSupported", a)
	}
}

// TestProbeCountsDirectIO writes and reads a file with O_DIRECT and fsync,
// which must reach the disk as block requests, and checks that the
// histogram of the file's disk grew by at least that many requests.
func TestProbeCountsDirectIO(t *testing.T) {
	p := openOrSkip(t)
	dir := t.TempDir()
	major := fileMajor(t, dir)

	before := totals(t, p, major)
	const blocks = 64
	directIO(t, filepath.Join(dir, "data"), blocks)
	after := totals(t, p, major)

	if got := after[OpWrite] - before[OpWrite]; got < blocks/8 {
		// Writes may merge in the block layer, but not 64 to fewer than 8.
		t.Errorf("write requests on major %d grew by %d, want >= %d", major, got, blocks/8)
	}
	if got := after[OpRead] - before[OpRead]; got < blocks/8 {
		t.Errorf("read requests on major %d grew by %d, want >= %d", major, got, blocks/8)
	}
	hs, err := p.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if n := h.Latency.Count(); n > 0 && (h.Latency.Sum == 0 || h.Latency.Mean() <= 0) {
			t.Errorf("%s %s: %d requests but sum %d ns", h.Device, h.Op, n, h.Latency.Sum)
		}
		if h.Major == major && h.Device == devString(h.Major, h.Minor) {
			t.Errorf("device %s has no name from /sys/dev/block", h.Device)
		}
	}
}

// totals sums request counts per operation over the devices with major.
func totals(t *testing.T, p *Probe, major uint32) [numOps]uint64 {
	t.Helper()
	hs, err := p.Read()
	if err != nil {
		t.Fatal(err)
	}
	var out [numOps]uint64
	for _, h := range hs {
		if h.Major == major {
			out[h.Op] += h.Latency.Count()
		}
	}
	return out
}

// fileMajor returns the major device number of the filesystem holding dir,
// or skips when it is not backed by a block device (tmpfs, overlay).
func fileMajor(t *testing.T, dir string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	dev := uint64(st.Dev)
	major := uint32((dev>>8)&0xfff | (dev>>32)&^0xfff)
	minor := uint32(dev&0xff | (dev>>12)&^0xff)
	if _, err := os.Stat(filepath.Join("/sys/dev/block", devString(major, minor))); err != nil {
		t.Skipf("temp dir is on %d:%d, not a block device: %v", major, minor, err)
	}
	return major
}

// directIO writes n 4 KiB blocks with O_DIRECT, fsyncs, and reads them
// back, so every block is a request the page cache cannot absorb.
func directIO(t *testing.T, path string, n int) {
	t.Helper()
	const bs = 4096
	buf, err := syscall.Mmap(-1, 0, bs, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(buf)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("O_DIRECT open refused here: %v", err)
	}
	defer f.Close()
	for i := range n {
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, int64(i)*bs); err != nil {
			t.Fatalf("O_DIRECT write: %v", err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := f.ReadAt(buf, int64(i)*bs); err != nil {
			t.Fatalf("O_DIRECT read: %v", err)
		}
		if buf[0] != byte(i) {
			t.Fatalf("block %d read back %d", i, buf[0])
		}
	}
}

func TestLayoutFromKernelBTF(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	l, err := layoutFrom(spec)
	if err != nil {
		t.Skipf("kernel struct layout unknown: %v", err)
	}
	if l.diskMinorBeg == l.diskMajor {
		t.Errorf("gendisk major and first_minor at one offset %d", l.diskMajor)
	}
	if _, err := memberOffset(spec, "request", "no_such_member"); err == nil {
		t.Error("memberOffset found a member that does not exist")
	}
	if _, err := memberOffset(spec, "no_such_struct_xyz", "q"); err == nil {
		t.Error("memberOffset found a struct that does not exist")
	}
}

package dataplane_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestNVMeErrorsSayWhatFailed: a device error on a read says the value is
// still stored (it is); a put larger than the staging memory is
// CodeTooLarge naming --nvme-staging, not "tier full". Before, a hostile
// trial's read EIO answered "device I/O error; the value is not stored",
// and a put over --nvme-staging "tier full" on a tier mostly empty.
func TestNVMeErrorsSayWhatFailed(t *testing.T) {
	var f faultSwitch
	tier := newNVMe(t, 8<<20, nvme.Options{Engine: nvme.EngineSync, Fault: f.hook, BufferPool: 2 << 20}, dataplane.NVMeOptions{})
	if err := putValue(tier, "j", "k", value(5000, 1)); err != nil {
		t.Fatal(err)
	}
	f.mode.Store(faultEIO)
	_, err := getValue(tier, "j", "k")
	f.mode.Store(faultNone)
	if !errors.Is(err, dataplane.ErrIO) || strings.Contains(err.Error(), "not stored") || !strings.Contains(err.Error(), "still stored") {
		t.Errorf("a read's EIO: %v; want ErrIO saying the value is still stored", err)
	}
	if got, err := getValue(tier, "j", "k"); err != nil || !bytes.Equal(got, value(5000, 1)) {
		t.Fatalf("the value after the failed read: %v", err)
	}

	err = putValue(tier, "j", "big", value(3<<20, 2))
	if !errors.Is(err, dataplane.ErrTooLarge) || errors.Is(err, dataplane.ErrNoSpace) || !strings.Contains(err.Error(), "--nvme-staging") {
		t.Errorf("a 3 MiB put with 2 MiB of staging on an empty 8 MiB tier: %v; want ErrTooLarge naming --nvme-staging", err)
	}
	// One value may take at most half the staging memory, so that one
	// writer cannot take it all from the others (a hostile re-check held
	// 16 MiB with one paced 15 MiB put, and other tenants' puts failed).
	err = putValue(tier, "j", "big", value(3<<19, 2))
	if !errors.Is(err, dataplane.ErrTooLarge) || !strings.Contains(err.Error(), "larger than half the NVMe tier's staging memory") {
		t.Errorf("a 1.5 MiB put with 2 MiB of staging: %v; want ErrTooLarge naming half the staging memory", err)
	}
	if err := putValue(tier, "j", "fits", value(1<<20, 3)); err != nil {
		t.Fatalf("a 1 MiB put with 2 MiB of staging: %v", err)
	}
}

// TestNVMeShrunkDevice: transfers past the end of a device that shrank
// under the tier (a loop device whose backing file was truncated, then
// losetup -c) say so, with CodeIO: a write is not "tier full". Before, a
// hostile trial's puts there answered "tier full" on a mostly empty tier
// (the block device's ENOSPC), and its gets "the value is not stored".
func TestNVMeShrunkDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop device test skipped: not root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("loop device test skipped: %v", err)
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skipf("loop device test skipped: %v", err)
	}
	backing := filepath.Join(nvmeDir(t), "backing")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, 8<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", backing).Output()
	if err != nil {
		t.Skipf("loop device test skipped: losetup: %v", err)
	}
	loop := string(bytes.TrimSpace(out))
	t.Cleanup(func() {
		if err := exec.Command(losetup, "--detach", loop).Run(); err != nil {
			t.Errorf("losetup --detach %s: %v", loop, err)
		}
	})
	dev, err := nvme.Open(loop, nvme.Options{Engine: nvme.EngineSync, BufferPool: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tier, err := dataplane.NewNVMe(dev, dataplane.NVMeOptions{})
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close(); dev.Close() })
	for i := range 6 {
		if err := putValue(tier, "j", fmt.Sprintf("k%d", i), value(1<<20, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(backing, 2<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(losetup, "-c", loop).CombinedOutput(); err != nil {
		t.Skipf("losetup -c %s: %v: %s", loop, err, out)
	}
	if n, err := dev.CurrentSize(); err != nil || n != 2<<20 {
		t.Skipf("%s is %d bytes after losetup -c (%v); want 2 MiB", loop, n, err)
	}
	err = putValue(tier, "j", "new", value(1<<20, 9))
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeIO || errors.Is(err, dataplane.ErrNoSpace) || !strings.Contains(err.Error(), "shrank") {
		t.Errorf("a put past the shrunk device's end: %v; want CodeIO saying it shrank", err)
	}
	_, err = getValue(tier, "j", "k4")
	if !errors.Is(err, dataplane.ErrIO) || !strings.Contains(err.Error(), "shrank") || strings.Contains(err.Error(), "not stored") {
		t.Errorf("a get past the shrunk device's end: %v; want CodeIO saying it shrank", err)
	}
	if got, err := getValue(tier, "j", "k0"); err != nil || !bytes.Equal(got, value(1<<20, 0)) {
		t.Errorf("a value within the shrunk device: %v", err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestUpNVMeTier: `pocket up --nvme SIZE` gives each node an NVMe tier of
// SIZE in a file of its own in DATA/nvme/up-* (a directory per run, so two
// clusters on one data directory share no file); a job whose capacity hint the
// DRAM tiers cannot hold is placed on NVMe, stores and reads back a value
// there; the files and the run's directory go when up stops. A second
// cluster on the same data directory gets files of its own; killed with
// SIGKILL, its files (with its values) stay until the next up on the
// directory removes them. Bad --nvme values are usage errors.
// Before, up had no --nvme: its clusters offered no second tier, so the
// cost-aware tier choice could not be tried on them.
func TestUpNVMeTier(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	for _, bad := range [][]string{{"--nvme", "0"}, {"--nvme", "junk"}, {"--nvme", "/some/file:1GiB"}, {"--dram", "0"}} {
		_, errOut, code := pocketRun(t, bin, base, "", append([]string{"up", "--insecure"}, bad...)...)
		if code != 2 || !strings.Contains(errOut, bad[0]) {
			t.Errorf("up %v: exit %d: %s; want a usage error naming %s", bad, code, errOut, bad[0])
		}
	}
	data := filepath.Join(dir, "data")
	up := startUpGroup(t, bin, base, "--listen", "127.0.0.1:0", "--insecure", "--data-dir", data, "--nodes", "2",
		"--dram", "16MiB", "--nvme", "64MiB", "--log-level", "warn")
	nvmeDir := filepath.Join(data, nvmeSubdir)
	files, _ := filepath.Glob(filepath.Join(nvmeDir, "up-*", "*.nvme"))
	if len(files) != 2 {
		t.Fatalf("NVMe files %v; want one per node in %s", files, nvmeDir)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Size() != 64<<20 {
			t.Fatalf("%s: %v, %v; want 64 MiB", f, st, err)
		}
	}
	// A second cluster on the same data directory (its controller's state
	// in memory): its nodes' files are in a directory of their own.
	other := startUpGroup(t, bin, base, "--listen", "127.0.0.1:0", "--insecure", "--ephemeral", "--data-dir", data,
		"--nodes", "1", "--dram", "16MiB", "--nvme", "64MiB", "--log-level", "warn")
	all, _ := filepath.Glob(filepath.Join(nvmeDir, "up-*", "*.nvme"))
	if len(all) != 3 || filepath.Dir(all[0]) == filepath.Dir(all[2]) && filepath.Dir(all[1]) == filepath.Dir(all[2]) {
		t.Fatalf("NVMe files of two clusters on one data directory: %v; want 3, in two directories", all)
	}
	// Killed with its nodes (SIGKILL), it leaves its file, values and
	// all; the next up on the directory removes it, and keeps the live
	// cluster's.
	otherDir := filepath.Dir(all[slices.IndexFunc(all, func(f string) bool { return !slices.Contains(files, f) })])
	_ = syscall.Kill(-other.cmd.Process.Pid, syscall.SIGKILL)
	<-other.exited
	if _, err := os.Stat(otherDir); err != nil {
		t.Fatalf("the killed cluster's directory: %v; the test expects it left behind", err)
	}
	third := startUpGroup(t, bin, base, "--listen", "127.0.0.1:0", "--insecure", "--ephemeral", "--data-dir", data,
		"--nodes", "1", "--dram", "16MiB", "--nvme", "64MiB", "--log-level", "warn")
	if _, err := os.Stat(otherDir); !os.IsNotExist(err) {
		t.Fatalf("the killed cluster's directory after the next up started: %v; want it removed", err)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the live cluster's file: %v", err)
		}
	}
	_ = syscall.Kill(-third.cmd.Process.Pid, syscall.SIGTERM)
	<-third.exited
	env := append(base, "POCKET_CONTROLLER="+up.ctl)
	job := registerMap(t, bin, env, "big", "--capacity", "48MiB")
	if job.Tier != "nvme" {
		t.Fatalf("a 48 MiB job on 16 MiB DRAM and 64 MiB NVMe nodes went to %q; want nvme", job.Tier)
	}
	withTok := append(slices.Clone(env), "POCKET_TOKEN="+job.Token)
	if _, errOut, code := pocketRun(t, bin, withTok, "on nvme", "put", "--insecure", job.JobID, "k", "-"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, errOut)
	}
	if got, errOut, code := pocketRun(t, bin, withTok, "", "get", "--insecure", job.JobID, "k"); code != 0 || got != "on nvme" {
		t.Fatalf("get: exit %d, %q: %s", code, got, errOut)
	}
	if err := up.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-up.exited
	if left, _ := filepath.Glob(filepath.Join(nvmeDir, "up-*")); len(left) != 0 {
		t.Fatalf("NVMe files or directories left after up stopped: %v", left)
	}
}

// TestUpNVMeRefusesAnOpenDataDir (hostile trial): up refuses to place its
// nodes' NVMe files under a directory others may write. Under a data
// directory of mode 0777 another user swapped DATA/nvme for a link to a
// directory of theirs while up ran, swapped a new node's file for a link
// to a root-owned file, and the node wrote a job's values into it.
func TestUpNVMeRefusesAnOpenDataDir(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	_, errOut, code := pocketRun(t, bin, base, "", "up", "--listen", "127.0.0.1:0", "--insecure", "--ephemeral",
		"--data-dir", filepath.Join(open, "data"), "--nodes", "1", "--dram", "16MiB", "--nvme", "64MiB")
	if code == 0 || !strings.Contains(errOut, "may be changed by another user") {
		t.Fatalf("up --nvme under a 0777 directory: exit %d: %s; want a refusal saying others may change it", code, errOut)
	}
	if files, _ := filepath.Glob(filepath.Join(open, "data", nvmeSubdir, "*", "*")); len(files) != 0 {
		t.Fatalf("files made under the refused directory: %v", files)
	}
}

// TestUpNodeMbpsCountsEveryTier: `pocket up --node-mbps N` is the node's
// network bandwidth, which bounds every tier it serves: each node reports
// N for its DRAM tier and, with --nvme, for its NVMe tier. Before, only
// the DRAM tier reported it and placement counted the NVMe tier at the
// controller's default 8000 Mb/s (a new user's trial: a job on NVMe
// allotted 12800 Mb/s on two 1000 Mb/s nodes, 6.4x, whose map never grew
// under 8 Gb/s of load). Fails on the old code.
func TestUpNodeMbpsCountsEveryTier(t *testing.T) {
	flagValue := func(args []string, name string) string {
		if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	with := (&upOptions{dram: "16MiB", nvme: "64MiB", nodeMbps: 1000}).nodeSpec("127.0.0.1:1", "")
	if d, n := flagValue(with.Args, "--dram-mbps"), flagValue(with.Args, "--nvme-mbps"); d != "1000" || n != "1000" {
		t.Errorf("node args %q: --dram-mbps %q, --nvme-mbps %q; want 1000 for both", with.Args, d, n)
	}
	without := (&upOptions{dram: "16MiB", nodeMbps: 1000}).nodeSpec("127.0.0.1:1", "")
	if flagValue(without.Args, "--dram-mbps") != "1000" || slices.Contains(without.Args, "--nvme-mbps") {
		t.Errorf("node args without --nvme %q: want --dram-mbps 1000 and no --nvme-mbps", without.Args)
	}
	if def := (&upOptions{dram: "16MiB", nvme: "64MiB"}).nodeSpec("127.0.0.1:1", ""); slices.Contains(def.Args, "--dram-mbps") || slices.Contains(def.Args, "--nvme-mbps") {
		t.Errorf("node args without --node-mbps %q: want the controller's default (no flag)", def.Args)
	}
}

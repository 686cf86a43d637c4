package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTrialFlagValuesAreUsageErrors: the command lines a new user's trial
// of the flag checks still found wrong, each now exit 2 before anything
// starts (nothing on stdout, no file made), with the usage line and a
// message leading with the flag and its value. Before: a missing
// --token-file of bench, or a bad --prices or price of status, exited 1;
// a --secret-file open to others, empty or too short exited 1 (after
// node, controller or up had got going), while a missing one gave 2;
// --etcd was read only once the controller had printed that it served
// (a junk one without a secret named the secret), --election-ttl -1s was
// taken, --advertise without --etcd named --election-ttl too; up
// --data-dir FILE failed in mkdir; node --nvme PATH:1KiB failed after
// making the file; up --metrics-base -1 spoke of ports past 65535;
// --k8s-* values were taken unread without --orchestrator kubernetes, and
// with it a required --k8s-* flag left out was found only once the
// controller had opened its state and listener;
// bench --addr junk named no flag and printed the whole usage, and bench
// --size junk had no "pocket: bench:" before it.
func TestTrialFlagValuesAreUsageErrors(t *testing.T) {
	bin, dir, secret := usageFixture(t)
	file := func(name, text string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	open := file("open-secret", strings.Repeat("ab", 32)+"\n", 0o644)
	empty := file("empty-secret", "\n", 0o600)
	short := file("short-secret", "abcdef\n", 0o600)
	openTok := file("open-token", strings.Repeat("ab", 33)+"\n", 0o644)
	notDir := file("not-a-dir", "", 0o600)
	missing := filepath.Join(dir, "missing")
	tier := filepath.Join(dir, "tier")
	ctl := []string{"controller", "--insecure", "--listen", "127.0.0.1:0"}
	etcd := []string{"controller", "--insecure", "--listen", "127.0.0.1:0", "--etcd", "127.0.0.1:1", "--secret-file", secret}
	up := []string{"up", "--insecure", "--listen", "127.0.0.1:0", "--nodes", "1", "--dram", "16MiB"}
	node := []string{"node", "--listen", "127.0.0.1:0", "--dram", "16MiB"}
	status := []string{"status", "--insecure", "--controller", "127.0.0.1:1"}
	bench := []string{"bench", "--addr", "127.0.0.1:1", "--duration", "1s"}
	q := func(flag, v string) string { return "--" + flag + ` "` + v + `"` }
	cases := []usageCase{
		// 1. Token files.
		{args: []string{"bench", "--controller", "127.0.0.1:1", "--insecure", "--token-file", missing, "--job", "x-1"}, lead: q("token-file", missing)},
		{args: append(bench, "--token-file", missing, "--job", "x-1"), lead: q("token-file", missing)},
		{args: append(bench, "--token-file", openTok, "--job", "x-1"), lead: q("token-file", openTok), also: "chmod 600"},
		{args: []string{"job", "deregister", "x-1", "--insecure", "--controller", "127.0.0.1:1", "--token-file", missing}, lead: q("token-file", missing)},
		{args: []string{"get", "x-1", "k", "--insecure", "--controller", "127.0.0.1:1", "--token-file", openTok}, lead: q("token-file", openTok)},
		// 2. Prices, on every command that takes them.
		{args: append(status, "--prices", missing), lead: q("prices", missing)},
		{args: append(status, "--price-gbps-hour", "-1"), lead: "--price-gbps-hour -1:"},
		{args: []string{"job", "register", "j", "--insecure", "--controller", "127.0.0.1:1", "--prices", missing}, lead: q("prices", missing)},
		{args: append(ctl, "--prices", missing), lead: q("prices", missing)},
		{args: append(up, "--price-nvme-gib-hour", "-1"), lead: "--price-nvme-gib-hour -1:"},
		{args: append(ctl, "--max-bytes-per-client", "-1"), lead: `--max-bytes-per-client "-1": must not be negative`},
		{args: append(up, "--max-bytes-per-client", "0.5"), lead: `--max-bytes-per-client "0.5": size "0.5": not a whole number of bytes`},
		{args: []string{"job", "register", "j", "--insecure", "--controller", "127.0.0.1:1", "--capacity", "0.5"}, lead: `--capacity "0.5": size "0.5": not a whole number of bytes`},
		{args: append(up, "--max-mbps-per-client", "-1"), lead: "--max-mbps-per-client -1:"},
		// 3. Secret files as clusterSecret reads them, on every command.
		{args: append(node, "--insecure", "--controller", "127.0.0.1:1", "--secret-file", open), lead: q("secret-file", open), also: "chmod 600"},
		{args: append(node, "--secret-file", empty), lead: q("secret-file", empty), also: "empty"},
		{args: append(node, "--secret-file", short), lead: q("secret-file", short), also: "shorter"},
		{args: append(ctl, "--secret-file", open), lead: q("secret-file", open), also: "chmod 600"},
		{args: append(ctl, "--secret-file", short), lead: q("secret-file", short), also: "shorter"},
		{args: append(up, "--secret-file", empty), lead: q("secret-file", empty), also: "empty"},
		{args: []string{"node", "drain", "127.0.0.1:7100", "--insecure", "--controller", "127.0.0.1:1", "--secret-file", missing}, lead: q("secret-file", missing)},
		{args: []string{"node", "drain", "127.0.0.1:7100", "--insecure", "--controller", "127.0.0.1:1", "--secret-file", open}, lead: q("secret-file", open)},
		// 4. etcd endpoints and the election's flags.
		{args: append(ctl, "--etcd", "junk"), lead: q("etcd", "junk"), not: "secret"},
		{args: append(ctl, "--etcd", "http://127.0.0.1:99999", "--secret-file", secret), lead: q("etcd", "http://127.0.0.1:99999")},
		{args: append(ctl, "--etcd", "127.0.0.1:1,,127.0.0.1:2", "--secret-file", secret), lead: q("etcd", "127.0.0.1:1,,127.0.0.1:2")},
		{args: append(etcd, "--election-ttl", "-1s"), lead: "--election-ttl -1s:"},
		{args: append(etcd, "--election-ttl", "0"), lead: "--election-ttl 0s:"},
		{args: append(etcd, "--election-ttl", "2m"), lead: "--election-ttl 2m0s:"},
		{args: append(ctl, "--advertise", "127.0.0.1:7100"), lead: "--advertise 127.0.0.1:7100 ", also: "--etcd", not: "--election-ttl"},
		{args: append(ctl, "--election-ttl", "3s"), lead: "--election-ttl 3s ", also: "--etcd", not: "--advertise"},
		// 5. Data directories.
		{args: append(up, "--data-dir", notDir), lead: q("data-dir", notDir)},
		{args: append(up, "--data-dir", filepath.Join(notDir, "sub")), lead: q("data-dir", filepath.Join(notDir, "sub"))},
		{args: append(ctl, "--data-dir", notDir), lead: q("data-dir", notDir)},
		{args: []string{"cert", "issue", "--role", "client", "--out", filepath.Join(dir, "out"), "--data-dir", notDir}, lead: q("data-dir", notDir)},
		// 6. The smallest NVMe tier.
		{args: []string{"node", "--listen", "127.0.0.1:0", "--dram", "0", "--nvme", tier + ":1KiB"}, lead: q("nvme", tier+":1KiB")},
		{args: []string{"up", "--insecure", "--listen", "127.0.0.1:0", "--nodes", "1", "--dram", "0", "--nvme", "1KiB"}, lead: q("nvme", "1KiB")},
		// 7. A port, not a range past 65535.
		{args: append(up, "--metrics-base", "-1"), lead: "--metrics-base -1:", also: "1 to 65535", not: "past"},
		// 8. --k8s-* values, without --orchestrator kubernetes too.
		{args: append(ctl, "--k8s-cpu", "junk"), lead: q("k8s-cpu", "junk")},
		{args: append(ctl, "--k8s-memory-overhead", "junk"), lead: q("k8s-memory-overhead", "junk")},
		{args: append(ctl, "--k8s-labels", "junk"), lead: q("k8s-labels", "junk")},
		{args: append(ctl, "--k8s-labels", "team=has space"), lead: q("k8s-labels", "team=has space"), also: `label team value "has space"`},
		{args: append(ctl, "--k8s-owner", "junk"), lead: q("k8s-owner", "junk")},
		{args: append(ctl, "--k8s-anti-affinity", "junk"), lead: q("k8s-anti-affinity", "junk")},
		{args: append(ctl, "--k8s-image-pull-policy", "junk"), lead: q("k8s-image-pull-policy", "junk")},
		{args: append(ctl, "--k8s-controller", "junk"), lead: q("k8s-controller", "junk")},
		// Negative quantities and a namespace no API server takes (a hostile
		// trial: taken until a pod was created).
		{args: append(ctl, "--k8s-cpu", "-2"), lead: q("k8s-cpu", "-2"), also: "not below 0"},
		{args: append(ctl, "--k8s-memory-overhead", "-10Gi"), lead: q("k8s-memory-overhead", "-10Gi"), also: "not below 0"},
		{args: append(ctl, "--k8s-namespace", "Bad_NS"), lead: q("k8s-namespace", "Bad_NS"), also: "RFC 1123"},
		// 7b. up --node-ports: a range of ports, enough for the nodes.
		{args: append(up, "--node-ports", "junk"), lead: `--node-ports "junk": want FIRST-LAST`},
		{args: append(up, "--node-ports", "9-8"), lead: `--node-ports "9-8": want FIRST-LAST`},
		{args: append(up, "--node-ports", "65535-65536"), lead: `--node-ports "65535-65536": want FIRST-LAST`},
		{args: append(up, "--nodes", "3", "--node-ports", "7000-7001"), lead: `--node-ports "7000-7001": 2 port(s) for 3 nodes`},
		{args: append(up, "--autoscale", "--max-nodes", "4", "--node-ports", "7000-7002"), lead: `--node-ports "7000-7002": 3 port(s) for up to --max-nodes 4 nodes`},
		// ... apart from the ports up gives the controller and the
		// metrics (a hostile trial's nodes took their own metrics ports).
		{args: []string{"up", "--insecure", "--listen", "127.0.0.1:7700", "--nodes", "2", "--node-ports", "7700-7702"},
			lead: `--node-ports "7700-7702" holds --listen's port 7700`},
		{args: append(up, "--metrics-base", "7710", "--node-ports", "7711-7715"), lead: `--node-ports "7711-7715" overlaps --metrics-base 7710's ports (7710 to 7715)`},
		{args: append(up, "--metrics", "127.0.0.1:7720", "--node-ports", "7720-7722"), lead: `--node-ports "7720-7722" holds --metrics's port 7720`},
		// 8a. cert issue --tenant: a name only a client certificate has,
		// given (exit 1 before, or taken empty).
		{args: []string{"cert", "issue", "--role", "operator", "--tenant", "alice", "--out", filepath.Join(dir, "t1")}, lead: `--tenant "alice": only a client certificate`},
		{args: []string{"cert", "issue", "--role", "client", "--tenant", "a/b", "--out", filepath.Join(dir, "t2")}, lead: `--tenant "a/b": a tenant's name is 1 to 20`},
		{args: []string{"cert", "issue", "--role", "client", "--tenant", "", "--out", filepath.Join(dir, "t3")}, lead: `--tenant "": name the tenant`},
		// 8b. --orchestrator kubernetes without a flag it requires: found
		// when the orchestrator started, after the state and the listener.
		{args: append(ctl, "--orchestrator", "kubernetes"), lead: "--orchestrator kubernetes: required flags missing: --k8s-controller (", also: ", --k8s-image ("},
		{args: append(ctl, "--orchestrator", "kubernetes", "--k8s-controller", "c:7000"), lead: "--orchestrator kubernetes: required flag missing: --k8s-image ("},
		{args: []string{"controller", "--listen", "127.0.0.1:0", "--data-dir", dir, "--orchestrator", "kubernetes", "--k8s-controller", "c:7000",
			"--k8s-image", "pocket:dev", "--k8s-tls-secret", ""}, lead: `--k8s-tls-secret "": required flag missing: --k8s-tls-secret (over TLS`},
		// 9. bench's own flags: named, after "pocket: bench:", one usage line.
		{args: []string{"bench", "--addr", "junk"}, lead: q("addr", "junk"), not: "Drives a storage node"},
		{args: []string{"bench", "--target", "echo://a"}, lead: q("target", "echo://a")},
		{args: append(bench, "--size", "junk"), lead: `invalid value "junk" for flag -size`, not: "Drives a storage node"},
		{args: append(bench, "--conns", "0"), lead: "--conns 0:", not: "--pipeline"},
		{args: append(bench, "--warmup", "-1s"), lead: "--warmup -1s:", not: "--duration"},
		// spot passes these to node drain, which runs only when the
		// host's termination notice comes (hostile re-test).
		{args: []string{"spot", "--secret-file", missing, "127.0.0.1:1"}, lead: `invalid value "` + missing + `" for flag -secret-file`, also: q("secret-file", missing)},
		{args: []string{"spot", "--controller", "junk", "127.0.0.1:1"}, lead: `invalid value "junk" for flag -controller`, also: "want HOST:PORT"},
	}
	failed := 0
	for _, c := range cases {
		if !wantUsageError(t, bin, dir, c) {
			failed++
		}
	}
	if _, err := os.Stat(tier); !os.IsNotExist(err) {
		t.Errorf("node --nvme %s:1KiB left %s: %v", tier, tier, err)
	}
	t.Logf("%d of %d command lines wrong", failed, len(cases))
}

// TestServingLinesNameTheTiers: node's and up's first lines name the tiers
// given, and only those, and count nodes in words. Before, a node without
// NVMe said `nvme ""` and up --dram 0 said "1 nodes of 0 DRAM and ...".
func TestServingLinesNameTheTiers(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	env := cleanEnv("HOME=" + dir)
	_, tiers, _ := pocketStart(t, bin, env, regexp.MustCompile(`^pocket node serving on \S+ \((.*)\)$`),
		"node", "--listen", "127.0.0.1:0", "--dram", "16MiB")
	if tiers != "dram 16MiB" {
		t.Errorf("node --dram 16MiB: tiers (%s); want (dram 16MiB)", tiers)
	}
	_, nodes, _ := pocketStart(t, bin, env, regexp.MustCompile(`^pocket cluster up: controller \S+, (.*), control plane`),
		"up", "--insecure", "--listen", "127.0.0.1:0", "--nodes", "2", "--dram", "16MiB")
	if nodes != "2 nodes of 16MiB DRAM" {
		t.Errorf("up --nodes 2 --dram 16MiB: %q; want 2 nodes of 16MiB DRAM", nodes)
	}
	if !directIO(t, dir) {
		return
	}
	path := filepath.Join(dir, "tier")
	_, tiers, _ = pocketStart(t, bin, env, regexp.MustCompile(`^pocket node serving on \S+ \((.*)\)$`),
		"node", "--listen", "127.0.0.1:0", "--dram", "0", "--nvme", path+":64MiB", "--nvme-staging", "8MiB")
	if tiers != "nvme "+path+":64MiB" {
		t.Errorf("node --dram 0 --nvme %s:64MiB: tiers (%s); want only the NVMe tier", path, tiers)
	}
	_, nodes, _ = pocketStart(t, bin, env, regexp.MustCompile(`^pocket cluster up: controller \S+, (.*), control plane`),
		"up", "--insecure", "--listen", "127.0.0.1:0", "--nodes", "1", "--dram", "0", "--nvme", "64MiB",
		"--data-dir", filepath.Join(dir, "data"))
	if !strings.HasPrefix(nodes, "1 node of 64MiB NVMe (files in ") || strings.Contains(nodes, "DRAM") {
		t.Errorf("up --nodes 1 --dram 0 --nvme 64MiB: %q; want 1 node of 64MiB NVMe (files in ...)", nodes)
	}
}

// TestGoodTrialFlagValuesStart: the values the new checks take still
// start the controller: --k8s-* values the orchestrator takes, without
// --orchestrator kubernetes, and a --data-dir two directories short of
// existing, which it creates.
func TestGoodTrialFlagValuesStart(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "new", "data")
	pocketStart(t, bin, cleanEnv("HOME="+dir), regexp.MustCompile(`pocket controller serving on (\S+)`),
		"controller", "--listen", "127.0.0.1:0", "--data-dir", data,
		"--k8s-cpu", "2", "--k8s-memory-overhead", "1Gi", "--k8s-labels", "team=storage", "--k8s-owner", "none",
		"--k8s-anti-affinity", "preferred", "--k8s-image-pull-policy", "IfNotPresent", "--k8s-controller", "pocket-controller.pocket.svc:7000")
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		t.Errorf("controller --data-dir %s: %v; want the directory made", data, err)
	}
}

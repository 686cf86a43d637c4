package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/metaclient"
)

// TestAddrFlagCheck: what each kind of address flag takes and refuses.
// Host names are taken as they are (nothing is looked up); a port is a
// number, 0 only for an address to listen on.
func TestAddrFlagCheck(t *testing.T) {
	for _, c := range []struct {
		kind      addrFlag
		good, bad []string
	}{
		{bindAddr,
			[]string{"127.0.0.1:0", ":7100", "0.0.0.0:7100", "[::1]:7100", "no-such-host.invalid:9090"},
			[]string{"junk", "127.0.0.1:70000", "127.0.0.1:-1", "127.0.0.1:http", "::1:7100"}},
		{dialAddr,
			[]string{"pocket-node-0.pocket.svc:7100", "[fd00::1]:7100"},
			[]string{"127.0.0.1:0", ":7100", "a:1,b:2", "junk"}},
		{dialList,
			[]string{"pocket-controller.pocket.svc:7000", "a:7000, b:7000,c:7000"},
			[]string{"a:7000,,b:7000", "a:7000,b", "127.0.0.1:65536"}},
		{etcdList,
			[]string{"127.0.0.1:2379", "http://etcd-0.etcd:2379,https://[fd00::1]:2379, etcd-2:2379"},
			[]string{"junk", "http://127.0.0.1:99999", "127.0.0.1:0", "ftp://h:2379", "http://:2379", "a:2379,,b:2379"}},
	} {
		for _, v := range c.good {
			if err := c.kind.check("--flag", v); err != nil {
				t.Errorf("kind %d refused %q: %v", c.kind, v, err)
			}
		}
		for _, v := range c.bad {
			err := c.kind.check("--flag", v)
			if err == nil || !strings.HasPrefix(err.Error(), "--flag \""+v+"\": ") {
				t.Errorf("kind %d, %q: %v; want an error leading with the flag and its value", c.kind, v, err)
			}
		}
	}
}

// TestCheckAddrFlagsEnv: $POCKET_CONTROLLER is checked, by its name, when
// it stands in for an unset --controller, and only then.
func TestCheckAddrFlagsEnv(t *testing.T) {
	t.Setenv(metaclient.EnvController, "junk")
	for _, c := range []struct {
		args    []string
		withCtl bool
		want    string // "" for no error
	}{
		{nil, true, "$" + metaclient.EnvController + ` "junk"`},
		{[]string{"--controller", "127.0.0.1:7000"}, true, ""},
		{[]string{"--controller", "127.0.0.1"}, true, `--controller "127.0.0.1"`},
		{nil, false, ""}, // a command without --controller does not use it
	} {
		fs := newFlagSet("status")
		if c.withCtl {
			fs.String("controller", "", "")
		}
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		err := checkAddrFlags(fs)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v, want no error", c.args, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%v: %v, want an error leading with %s", c.args, err, c.want)
		}
		flagChecksOf(fs) // not parsed by parseFlags: forget its checks
	}
}

// TestDataDirFlagCheck: a --data-dir may be missing, directories deep,
// when the nearest one that exists is a directory (the commands make the
// rest); one that exists, or that nearest one, must be a directory.
func TestDataDirFlagCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, good := range []string{dir, filepath.Join(dir, "new"), filepath.Join(dir, "new", "deeper"), "relative/new"} {
		if err := checkDataDirFlag(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{file, filepath.Join(file, "sub"), filepath.Join(file, "sub", "deeper")} {
		if err := checkDataDirFlag(bad); err == nil || !strings.HasPrefix(err.Error(), `--data-dir "`+bad+`": `) {
			t.Errorf("%s: %v; want an error leading with the flag and its value", bad, err)
		}
	}
}

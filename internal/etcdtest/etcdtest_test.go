package etcdtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestStartServesAndStops(t *testing.T) {
	s := Start(t, Options{MaxTxnOps: 16})
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get k: %v, %v; want v", r, err)
	}
	s.Stop()
	select {
	case <-s.done:
	default:
		t.Fatal("etcd still running after Stop")
	}
	if healthy(ctx, s.ClientURL) {
		t.Fatal("stopped etcd still answers /health")
	}
	s.Stop() // twice is fine
}

// fakeTB records Skipf and Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvRequire, "")
	f := &fakeTB{TB: t}
	lookBinary(f)
	if f.failed != "" || f.skipped == "" {
		t.Fatalf("without %s: skipped %q, failed %q; want a skip", EnvRequire, f.skipped, f.failed)
	}
	t.Setenv(EnvRequire, "1")
	f = &fakeTB{TB: t}
	lookBinary(f)
	if f.failed == "" || f.skipped != "" {
		t.Fatalf("with %s=1: skipped %q, failed %q; want a failure", EnvRequire, f.skipped, f.failed)
	}
	if want := "etcd not installed: apt-get install etcd-server"; !strings.Contains(f.failed, want) {
		t.Errorf("message %q does not say %q", f.failed, want)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// TestStandaloneNodeChecksTokensWithItsSecret: a node without a
// controller given --secret-file checks job tokens with it: a put with
// no token is refused. Before, it ignored the file without a word and
// stored the value (a hostile trial); a node with no secret at all now
// says on stderr that it checks no token.
func TestStandaloneNodeChecksTokensWithItsSecret(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, withSecret := range []bool{true, false} {
		args := []string{"node", "--listen", "127.0.0.1:0", "--dram", "16MiB"}
		if withSecret {
			args = append(args, "--secret-file", secret)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n') // "pocket node serving on ADDR (...)"
		f := strings.Fields(line)
		if err != nil || len(f) < 5 {
			_ = cmd.Process.Kill()
			t.Fatalf("node's first line %q: %v\n%s", line, err, errOut.String())
		}
		c := client.New(client.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, perr := c.Do(ctx, f[4], wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, []byte("v"), nil)
		cancel()
		c.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		warned := strings.Contains(errOut.String(), "job tokens are not checked")
		switch {
		case withSecret && (perr == nil || errors.Is(perr, context.DeadlineExceeded) || warned):
			t.Errorf("node with --secret-file: put without a token: %v (warned %v); want refused", perr, warned)
		case !withSecret && (perr != nil || !warned):
			t.Errorf("node without a secret: put %v, stderr %q; want stored, with a warning", perr, errOut.String())
		}
	}
}

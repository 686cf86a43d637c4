package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/token"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not narrowed by the umask
		t.Fatal(err)
	}
	return path
}

func TestReadSecretFileRefusesOpenModes(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o660} {
		path := writeFile(t, "secret", testSecret+"\n", mode)
		_, err := readSecretFile(path)
		if !errors.Is(err, errSecretFileMode) {
			t.Fatalf("mode %#o: err %v, want errSecretFileMode", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600 "+path) || strings.Contains(err.Error(), testSecret) {
			t.Fatalf("mode %#o: error %q should say chmod 600 FILE and not the secret", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		s, err := readSecretFile(writeFile(t, "secret", "  "+testSecret+"\n", mode))
		if err != nil || s != testSecret {
			t.Fatalf("mode %#o: %q, %v", mode, s, err)
		}
	}
}

func TestReadSecretFileRefusesNonSecrets(t *testing.T) {
	for name, path := range map[string]string{
		"empty":     writeFile(t, "empty", "\n", 0o600),
		"too large": writeFile(t, "large", strings.Repeat("a", maxSecretFile+1), 0o600),
		"directory": t.TempDir(),
		"missing":   filepath.Join(t.TempDir(), "none"),
	} {
		if _, err := readSecretFile(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRefuseRemovedFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--secret", testSecret},
		{"--controller", "x", "-secret=" + testSecret},
		{"job", "--token", testSecret},
		{"-token=" + testSecret, "--", "x"},
	} {
		err := refuseRemovedFlags(args)
		if err == nil {
			t.Fatalf("%q: accepted", args)
		}
		if strings.Contains(err.Error(), testSecret) || !strings.Contains(err.Error(), "POCKET_") {
			t.Fatalf("%q: error %q should name the variable to use and not repeat the value", args, err)
		}
	}
	for _, args := range [][]string{
		{"--secret-file", "f", "--token-file=f", "-json"},
		{"sort-7", "--", "--token"},
		{"-", "token"},
	} {
		if err := refuseRemovedFlags(args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
}

func TestClusterSecretFromEnvAndFile(t *testing.T) {
	t.Setenv(token.EnvSecret, "")
	if _, err := clusterSecret(""); !errors.Is(err, errNoSecret) {
		t.Fatalf("no secret: %v", err)
	}
	t.Setenv(token.EnvSecret, testSecret)
	if k, err := clusterSecret(""); err != nil || string(k) != testSecret {
		t.Fatalf("env: %q, %v", k, err)
	}
	other := strings.ToUpper(testSecret)
	if k, err := clusterSecret(writeFile(t, "s", other+"\n", 0o600)); err != nil || string(k) != other {
		t.Fatalf("file (over env): %q, %v", k, err)
	}
	if _, err := clusterSecret(writeFile(t, "s", other, 0o644)); !errors.Is(err, errSecretFileMode) {
		t.Fatalf("0644 file: %v", err)
	}
	if _, err := clusterSecret(writeFile(t, "s", "short", 0o600)); !errors.Is(err, token.ErrShortSecret) {
		t.Fatalf("short secret: %v", err)
	}
}

func TestJobTokenFromEnvAndFile(t *testing.T) {
	tok := token.Sign([]byte(testSecret), []byte("job-1"))
	text := token.Format(tok)
	t.Setenv(envToken, "")
	if _, err := jobToken(""); !errors.Is(err, errNoToken) {
		t.Fatalf("no token: %v", err)
	}
	t.Setenv(envToken, text)
	if got, err := jobToken(""); err != nil || !slices.Equal(got, tok) {
		t.Fatalf("env: %x, %v", got, err)
	}
	t.Setenv(envToken, "")
	if got, err := jobToken(writeFile(t, "tok", text+"\n", 0o600)); err != nil || !slices.Equal(got, tok) {
		t.Fatalf("file: %x, %v", got, err)
	}
	if _, err := jobToken(writeFile(t, "tok", text, 0o640)); !errors.Is(err, errSecretFileMode) {
		t.Fatalf("0640 file: %v", err)
	}
	bad := "zz" + text[2:]
	t.Setenv(envToken, bad)
	if _, err := jobToken(""); err == nil || strings.Contains(err.Error(), "zz") {
		t.Fatalf("bad token: error %v should not quote it", err)
	}
}

func TestLoadOwnSecret(t *testing.T) {
	t.Setenv(token.EnvSecret, "")
	// Without file or environment: fresh, in a private file close removes.
	s, err := loadOwnSecret("")
	if err != nil {
		t.Fatal(err)
	}
	if k, err := clusterSecret(s.path); err != nil || string(k) != string(s.key) {
		t.Fatalf("temporary file: %q, %v", k, err)
	}
	if fi, err := os.Stat(s.tempDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("temporary directory: %v, %v", fi.Mode(), err)
	}
	if arg, note := s.usage(); strings.Contains(arg+note, string(s.key)) || !strings.Contains(arg, s.path) {
		t.Fatalf("usage %q %q: want the file, not the secret", arg, note)
	}
	s.close()
	if _, err := os.Stat(s.tempDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary directory left after close: %v", err)
	}
	// A missing file is created with a fresh secret, then read back.
	path := filepath.Join(t.TempDir(), "secret")
	s, err = loadOwnSecret(path)
	if err != nil || s.tempDir != "" {
		t.Fatalf("create: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created file: %v, %v", fi.Mode(), err)
	}
	again, err := loadOwnSecret(path)
	if err != nil || string(again.key) != string(s.key) {
		t.Fatalf("reload: %v", err)
	}
	s.close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("close removed a file it was given")
	}
	// The environment, when no file is given.
	t.Setenv(token.EnvSecret, testSecret)
	if s, err := loadOwnSecret(""); err != nil || string(s.key) != testSecret || s.path != "" {
		t.Fatalf("env: %v", err)
	}
	// A file open to others is refused, not replaced.
	if _, err := loadOwnSecret(writeFile(t, "s", testSecret, 0o644)); !errors.Is(err, errSecretFileMode) {
		t.Fatalf("0644 file: %v", err)
	}
}

func TestBenchTokenArgs(t *testing.T) {
	text := token.Format(token.Sign([]byte(testSecret), []byte("bench")))
	t.Setenv(envToken, "")
	args := []string{"--addr", "n:1", "--json"}
	if got, err := benchTokenArgs(args); err != nil || !slices.Equal(got, args) {
		t.Fatalf("no token: %q, %v", got, err)
	}
	file := writeFile(t, "tok", text, 0o600)
	want := []string{"--token", text, "--addr", "n:1", "--json"}
	for _, in := range [][]string{
		{"--addr", "n:1", "--token-file", file, "--json"},
		{"--addr", "n:1", "-token-file=" + file, "--json"},
	} {
		if got, err := benchTokenArgs(in); err != nil || !slices.Equal(got, want) {
			t.Fatalf("%q: %q, %v", in, got, err)
		}
	}
	t.Setenv(envToken, text)
	if got, err := benchTokenArgs(args); err != nil || !slices.Equal(got, want) {
		t.Fatalf("env: %q, %v", got, err)
	}
	if _, err := benchTokenArgs([]string{"--token-file"}); err == nil {
		t.Fatal("--token-file without FILE accepted")
	}
}

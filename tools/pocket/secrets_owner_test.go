package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pocketstore/pocket/controller/state"
)

// uidNobody is the uid tests give files of "another user" (as root only).
const uidNobody = 65534

// TestSecretInOpenDirectoryRefused: a secret file of ours in a directory
// others may write (they could replace it) is refused, and no fresh
// secret is written into such a directory.
func TestSecretInOpenDirectoryRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecretFile(path); !errors.Is(err, state.ErrNotPrivate) {
		t.Fatalf("secret in a 0777 directory: %v, want ErrNotPrivate", err)
	}
	fresh := filepath.Join(dir, "fresh")
	if _, err := loadOwnSecret(fresh); !errors.Is(err, state.ErrNotPrivate) {
		t.Fatalf("new secret in a 0777 directory: %v, want ErrNotPrivate", err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a secret was written in a 0777 directory: %v", err)
	}
}

// TestSecretOfAnotherUserRefused is the attack: another user (nobody)
// prepares DATA/controller/secret, 0600 and theirs, in directories open
// to all; the controller, as root, must not sign tokens with it. A file of
// another user in a private directory is refused too.
func TestSecretOfAnotherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another user needs root")
	}
	data := filepath.Join(t.TempDir(), "data")
	ctl := filepath.Join(data, stateSubdir)
	if err := os.MkdirAll(ctl, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(ctl, "secret")
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{data, ctl, path} {
		if err := os.Chown(p, uidNobody, uidNobody); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{data, ctl} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := loadOwnSecret(path); !errors.Is(err, state.ErrNotPrivate) {
		t.Fatalf("another user's secret: %v %v, want ErrNotPrivate", s, err)
	}
	private := t.TempDir()
	theirs := filepath.Join(private, "secret")
	if err := os.WriteFile(theirs, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, uidNobody, uidNobody); err != nil {
		t.Fatal(err)
	}
	if _, err := clusterSecret(theirs); !errors.Is(err, state.ErrNotPrivate) {
		t.Fatalf("another user's secret in a private directory: %v, want ErrNotPrivate", err)
	}
}

package main

// Credentials never travel on a command line: every local user can read any
// process's argv in /proc/PID/cmdline. The cluster secret comes from
// --secret-file FILE or $POCKET_SECRET, a job token from --token-file FILE or
// $POCKET_TOKEN. The environment is private to its user (/proc/PID/environ
// is readable by the owner only); a file must be too: one that group or
// others may read or write is refused, as ssh refuses such a key. Errors
// name the file or variable a credential came from, never its contents.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/limited"
	"github.com/pocketstore/pocket/internal/token"
)

// maxSecretFile is the largest credential file read: a secret is 64 hex
// digits, a token 66; anything this large is the wrong file.
const maxSecretFile = 4096

// Credential errors. Messages say what to do next.
var (
	// errSecretFileMode: a credential file is open to group or others.
	errSecretFileMode = errors.New("open to other users")
	// errNoSecret: neither --secret-file nor $POCKET_SECRET gave a secret.
	errNoSecret = errors.New("no cluster secret: set " + token.EnvSecret + " or give --secret-file FILE (mode 0600; " +
		"a pocket up cluster keeps it in DATA/controller/secret, DATA its --data-dir)")
	// errNoToken: neither --token-file nor $POCKET_TOKEN gave a token.
	errNoToken = errors.New("no job token: set " + envToken + " or give --token-file FILE (mode 0600); pocket job register prints it")
)

// removedFlags put a credential on the command line; each names what
// replaced it. main refuses them for every command.
var removedFlags = map[string]string{
	"secret": "set " + token.EnvSecret + " in the environment or give --secret-file FILE (mode 0600)",
	"token":  "set " + envToken + " in the environment (pocket job register prints the line to run)",
}

// refuseRemovedFlags returns an error naming the first removed flag in
// args, without its value. Arguments after "--" are not flags.
func refuseRemovedFlags(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		if use, removed := removedFlags[flagName(a)]; removed {
			return fmt.Errorf("--%s is no longer accepted: every local user can read a command line (/proc/PID/cmdline); %s",
				flagName(a), use)
		}
	}
	return nil
}

// flagName is the name of a flag argument (-name, --name, --name=value), or
// "" for an argument that is not a flag.
func flagName(arg string) string {
	if len(arg) < 2 || arg[0] != '-' {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
	return name
}

// readSecretFile returns the contents of a credential file without
// surrounding white space, refusing a file that group or others may read
// or write, and one another user could have written (checkSecretPlace).
// The mode and owner are checked on the opened file, so it is the file
// read.
func readSecretFile(path string) (string, error) {
	f, err := limited.Open(path) // a named pipe is refused, not waited on
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %#o, %w: run chmod 600 %s", path, uint32(perm), errSecretFileMode, path)
	}
	if err := checkSecretPlace(path, fi); err != nil {
		return "", err
	}
	b, err := limited.ReadAll(f, maxSecretFile)
	if errors.Is(err, limited.ErrTooLarge) {
		return "", fmt.Errorf("%s: larger than %d bytes, not a secret or token", path, maxSecretFile)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// checkSecretPlace refuses a credential file (fi: its Stat) that another
// user could have written or could replace: not owned by this process's
// effective user, or in a directory (or below one) that another user may
// change (state.CheckPrivateDir). Otherwise a user who prepared the file,
// say DATA/controller/secret, would know the secret the controller signs
// job tokens with.
func checkSecretPlace(path string, fi fs.FileInfo) error {
	if err := state.CheckPrivateFile(path, fi); err != nil {
		return fmt.Errorf("%w, or give another file", err)
	}
	if err := state.CheckPrivateDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%s: %w, or keep the file elsewhere", path, err)
	}
	return nil
}

// secretCreators are the commands that write a fresh cluster secret to a
// --secret-file that does not exist (loadOwnSecret), by path; every other
// command refuses a missing one.
var secretCreators = map[string]bool{"up": true, "controller": true}

// checkSecretFileFlag refuses, before the command starts, a --secret-file
// it could not take the cluster secret from when it comes to: one that is
// missing, is no regular file it can open, or that clusterSecret refuses
// (open to other users, another user's or in a directory others may
// change, empty, shorter than token.MinSecretLen); with mayCreate
// (secretCreators), a missing one is refused only when its directory is
// missing. Every command that takes the flag refuses the same files.
func checkSecretFileFlag(path string, mayCreate bool) error {
	if path == "" {
		return nil
	}
	err := checkReadable(path)
	switch {
	case mayCreate && errors.Is(err, fs.ErrNotExist):
		err = checkDirOf(path)
	case err == nil:
		_, err = clusterSecret(path)
	}
	if err != nil {
		return fmt.Errorf("--secret-file %q: %w", path, err)
	}
	return nil
}

// checkTokenFileFlag refuses, before the command starts, a --token-file
// it could not take a job token from: one that is missing or is no
// regular file it can open, or that jobToken refuses (open to other
// users, empty, holding no token).
func checkTokenFileFlag(path string) error {
	if path == "" {
		return nil
	}
	err := checkReadable(path)
	if err == nil {
		_, err = jobToken(path)
	}
	if err != nil {
		return fmt.Errorf("--token-file %q: %w", path, err)
	}
	return nil
}

// clusterSecret returns the cluster secret from file, else from
// $POCKET_SECRET.
func clusterSecret(file string) ([]byte, error) {
	if file == "" {
		key, err := token.SecretFrom("")
		if errors.Is(err, token.ErrNoSecret) {
			return nil, errNoSecret
		}
		return key, err
	}
	s, err := readSecretFile(file)
	if err != nil {
		return nil, err
	}
	key, err := token.SecretFrom(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return key, nil
}

// jobToken returns a job token from file, else from $POCKET_TOKEN.
func jobToken(file string) ([]byte, error) {
	text, from := os.Getenv(envToken), "$"+envToken
	if file != "" {
		s, err := readSecretFile(file)
		if err != nil {
			return nil, err
		}
		text, from = s, file
	}
	if text == "" {
		return nil, errNoToken
	}
	t, err := token.Parse(text)
	if err != nil {
		// token.Parse's error can quote a byte of the text: not repeated.
		return nil, fmt.Errorf("%s holds no job token: want %d hex digits, as pocket job register prints", from, 2*token.Len)
	}
	return t, nil
}

// ownSecret is the secret of a cluster this process runs (pocket up,
// pocket controller) and where it is kept.
type ownSecret struct {
	key     []byte
	path    string // the file holding it; "" when it came from the environment
	tempDir string // a private directory of ours holding path; close removes it
}

// loadOwnSecret returns the secret in file, writing a fresh one there
// (mode 0600) if the file does not exist; without a file, the one in
// $POCKET_SECRET; without either, a fresh one in a private temporary
// directory that close removes.
func loadOwnSecret(file string) (*ownSecret, error) {
	if file != "" {
		key, err := clusterSecret(file)
		if errors.Is(err, fs.ErrNotExist) {
			return writeNewSecret(file, "")
		}
		if err != nil {
			return nil, err
		}
		return &ownSecret{key: key, path: file}, nil
	}
	key, err := clusterSecret("")
	if err == nil {
		return &ownSecret{key: key}, nil
	}
	if !errors.Is(err, errNoSecret) {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pocket-secret-")
	if err != nil {
		return nil, fmt.Errorf("directory for the cluster secret: %w", err)
	}
	s, err := writeNewSecret(filepath.Join(dir, "secret"), dir)
	if err != nil {
		_ = os.RemoveAll(dir)
	}
	return s, err
}

// writeNewSecret creates path (which must not exist) with mode 0600 and a
// fresh secret in it.
func writeNewSecret(path, tempDir string) (*ownSecret, error) {
	if err := state.CheckPrivateDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("cluster secret: %w, or give another --secret-file or --data-dir", err)
	}
	s, err := token.NewSecret()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	_, err = f.WriteString(s + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	return &ownSecret{key: []byte(s), path: path, tempDir: tempDir}, nil
}

// close removes the secret's temporary directory, if it made one.
func (s *ownSecret) close() {
	if s != nil && s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}

// usage tells, without printing the secret, how other commands (pocket
// node, pocket node drain) get it: the flag to add ("" for the
// environment) and a note of where it is.
func (s *ownSecret) usage() (arg, note string) {
	if s.path == "" {
		return "", "the cluster secret is this shell's $" + token.EnvSecret
	}
	note = "the cluster secret is in " + s.path
	if s.tempDir != "" {
		note += ", removed when this process stops"
	}
	return " --secret-file " + s.path, note
}

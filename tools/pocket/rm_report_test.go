package main

import (
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestRmReportsChunkBytes: rm says what an ended job's delete freed in
// object chunks. A hostile trial's rm --all freed 182 MiB of chunks a
// writer had confirmed but never published, and said "deleted 0 keys: job
// ... held none".
func TestRmReportsChunkBytes(t *testing.T) {
	for _, c := range []struct {
		name string
		res  pocket.Removed
		want string
		code int
	}{
		{"", pocket.Removed{ChunkBytes: 182 << 20}, "deleted 0 keys; 182MiB of large-object chunks no key named went too", 0},
		{"a", pocket.Removed{ChunkBytes: 4 << 10}, "deleted 0 keys; 4KiB of large-object chunks no key named", 0},
		{"", pocket.Removed{Under: 3, ChunkBytes: 1 << 20}, "deleted 3 key(s): every key of the job\n", 0},
		{"", pocket.Removed{}, "deleted 0 keys: job j-1 held none", 0},
		{"a", pocket.Removed{Name: true}, "deleted 1 key(s): a\n", 0},
	} {
		out, code := stdoutOf(t, func() int { return reportRemoved("j-1", c.name, c.res, nil, nil) })
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("rm %q with %+v: exit %d, %q; want %d, %q", c.name, c.res, code, out, c.code, c.want)
		}
	}
}

// TestRmSaysALostKeyIsLost: rm of a key that is not there, whose owner
// was a lost node, says so and exits 1 (a hostile trial: "no key").
func TestRmSaysALostKeyIsLost(t *testing.T) {
	lost := []pocket.LostNode{{Addr: "10.0.0.7:7000", Epoch: 4}}
	out, code := stderrOf(t, func() int { return reportRemoved("j-1", "part/3", pocket.Removed{}, lost, lost) })
	if code != 1 || !strings.Contains(out, `if "part/3" was written, it was on node 10.0.0.7:7000 (lost at epoch 4)`) ||
		!strings.Contains(out, "it is lost") {
		t.Fatalf("rm of a lost key: exit %d, %q", code, out)
	}
	// A name whose key was elsewhere, in a job that lost a node: keys
	// under it there are lost, uncounted.
	out, code = stderrOf(t, func() int { return reportRemoved("j-1", "dir", pocket.Removed{}, nil, lost) })
	if code != 1 || !strings.Contains(out, `has no key "dir" and none under "dir/"`) ||
		!strings.Contains(out, "keys under it that were on the node(s) the job lost, 10.0.0.7:7000 (lost at epoch 4), are lost, and not counted") {
		t.Fatalf("rm of a name in a job that lost a node: exit %d, %q", code, out)
	}
}

// TestRmOfADirectoryNotesItsLostKeys: rm of a name that found keys under
// it, in a job that lost a node, says on stderr that the keys under it
// that node held are lost and not counted, and exits 0 (nothing of the
// name is left to read). On the old code it printed the count alone.
func TestRmOfADirectoryNotesItsLostKeys(t *testing.T) {
	lost := []pocket.LostNode{{Addr: "10.0.0.7:7000", Epoch: 4}}
	for _, c := range []struct {
		name string
		res  pocket.Removed
		want string
	}{
		{"dir/", pocket.Removed{Under: 2}, `keys under "dir/" that were on the node(s) the job lost, 10.0.0.7:7000 (lost at epoch 4), are lost, and not counted`},
		{"", pocket.Removed{Under: 5}, "keys of the job that were on the node(s) the job lost, 10.0.0.7:7000 (lost at epoch 4), are lost"},
	} {
		out, code := stderrOf(t, func() int { return reportRemoved("j-1", c.name, c.res, nil, lost) })
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("rm %q with %+v in a job that lost a node: exit %d, stderr %q; want 0, %q", c.name, c.res, code, out, c.want)
		}
	}
	// --all of a job whose nodes held nothing, after a loss: the note too
	// (a hostile trial: "held none", no word of the lost keys).
	out, code := stderrOf(t, func() int { return reportRemoved("j-1", "", pocket.Removed{}, nil, lost) })
	if code != 0 || !strings.Contains(out, "keys of the job that were on the node(s) the job lost") {
		t.Fatalf("rm --all of a job whose nodes held none after a loss: exit %d, stderr %q", code, out)
	}
	// A single key found, nothing under it: no note.
	out, code = stderrOf(t, func() int { return reportRemoved("j-1", "k", pocket.Removed{Name: true}, nil, lost) })
	if code != 0 || out != "" {
		t.Fatalf("rm of a key found: exit %d, stderr %q; want 0 and nothing", code, out)
	}
}

// TestBadTokenForAJobNameHintsAtTheID: a data command given a job's name
// where its id goes is told what JOBID is; one given an id (name-number)
// that a mistyped id is refused alike. On the old code the refusal said
// only that the token does not grant the job (new users' trials: pocket
// ls sort; pocket get sort-33903383, a digit dropped).
func TestBadTokenForAJobNameHintsAtTheID(t *testing.T) {
	bad := &wire.Error{Code: wire.CodeBadToken, Msg: "token does not grant job sort"}
	if err := jobIDHint("sort", bad); !errors.Is(err, wire.ErrBadToken) || !strings.Contains(err.Error(), "such as sort-442118936") {
		t.Fatalf("bad token for a name: %v", err)
	}
	if err := jobIDHint("sort-7", bad); !errors.Is(err, wire.ErrBadToken) || !strings.Contains(err.Error(), "or JOBID is mistyped") ||
		!strings.Contains(err.Error(), "changed or cut short") {
		t.Fatalf("bad token for an id: %v; want the note that a mistyped id reads alike", err)
	}
	if other := errors.New("no controller"); jobIDHint("sort", other) != other {
		t.Fatal("another error changed")
	}
}

// TestRemovedTextQuotesAsLsDoes: rm names the keys it deleted as ls
// prints them, Go-quoted when they hold a control character. Before,
// rm of "a\nb" printed "deleted 1 key(s): a" and "b" on two lines while
// ls printed "a\nb" quoted (a new user's trial).
func TestRemovedTextQuotesAsLsDoes(t *testing.T) {
	for _, c := range []struct {
		name string
		res  pocket.Removed
		want string
	}{
		{"a\nb", pocket.Removed{Name: true}, `1 key(s): "a\nb"`},
		{"d\tx/", pocket.Removed{Name: true, Under: 2}, `3 key(s): "d\tx" and 2 under "d\tx/"`},
		{"d\tx", pocket.Removed{Under: 2}, `2 key(s) under "d\tx/"`},
		{"a", pocket.Removed{Name: true, Under: 2}, "3 key(s): a and 2 under a/"},
	} {
		if got := removedText(c.name, c.res); got != c.want || strings.Contains(got, "\n") {
			t.Errorf("removedText(%q, %+v) = %q, want %q", c.name, c.res, got, c.want)
		}
	}
}

// TestGivenFlagsRepeatTheCommandsOwn: the credential command a
// deregistration of an ended job prints carries the flags that found
// the job (a new user's trial gave --token-file and was printed a
// command without it, which failed inside eval, exit 0).
func TestGivenFlagsRepeatTheCommandsOwn(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("controller", "", "")
	fs.String("token-file", "", "")
	fs.Bool("insecure", false, "")
	fs.Bool("json", false, "")
	if err := fs.Parse([]string{"--json", "--token-file", "my token", "--insecure", "--controller", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	if got, want := givenFlags(fs, "controller", "token-file", "tls-dir", "insecure"), " --controller 127.0.0.1:7000 --insecure --token-file 'my token'"; got != want {
		t.Fatalf("givenFlags: %q, want %q", got, want)
	}
	// A false bool is repeated as given: --insecure=false overrides
	// $POCKET_INSECURE=1, and " --insecure" would say the opposite.
	fs2 := flag.NewFlagSet("x", flag.ContinueOnError)
	fs2.Bool("insecure", false, "")
	if err := fs2.Parse([]string{"--insecure=false"}); err != nil {
		t.Fatal(err)
	}
	if got := givenFlags(fs2, "insecure"); got != " --insecure=false" {
		t.Fatalf("givenFlags of --insecure=false: %q", got)
	}
	if got := shellQuoted("it's"); got != `'it'\''s'` {
		t.Fatalf("shellQuoted: %q", got)
	}
}

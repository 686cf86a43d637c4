package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/pocket"
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
		out, code := stdoutOf(t, func() int { return reportRemoved("j-1", c.name, c.res) })
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("rm %q with %+v: exit %d, %q; want %d, %q", c.name, c.res, code, out, c.code, c.want)
		}
	}
}

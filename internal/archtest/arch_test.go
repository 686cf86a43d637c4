package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The layers of ARCHITECTURE.md, lowest first, by the first element of a
// package's path inside the module. A package imports only from its own
// layer or lower ones.
var layers = [][]string{
	{"wire", "internal"},
	{"netio", "nvme", "telemetry"},
	{"client", "metaclient"},
	{"dataplane", "controller", "orchestrator", "pocket"},
	{"perf"},            // offline tools only: nothing below imports them
	{"tools", "python"}, // python: the Go helper of the Python client's tests (python/tests/gohelper)
}

// forbidden lists imports that the layers alone allow but ARCHITECTURE.md
// rules out: the two servers never import each other, and the SDK imports
// no server package. Keys and values are path prefixes inside the module.
var forbidden = map[string][]string{
	"dataplane":  {"controller"},
	"controller": {"dataplane", "netio"}, // it speaks to nodes through client only
	"pocket":     {"dataplane", "controller", "netio", "nvme", "orchestrator"},
}

// unixImporters are the only packages (with their subpackages) that may
// import golang.org/x/sys/unix.
var unixImporters = []string{"netio", "nvme", "internal/sys"}

const unixPath = "golang.org/x/sys/unix"

// allowed are known violations, kept until the code moves: "from -> to",
// paths inside the module. Each needs a reason and an issue.
var allowed = map[string]string{}

// pkg is what `go list -json` reports of one package.
type pkg struct {
	ImportPath   string
	Dir          string
	GoFiles      []string // non-test files of this build
	Module       *struct{ Path string }
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// TestImportLayers fails for every import that crosses the layers of
// ARCHITECTURE.md, naming each offending pair.
func TestImportLayers(t *testing.T) {
	mod, pkgs := listModule(t)
	var bad []string
	for _, p := range pkgs {
		from, ok := strings.CutPrefix(p.ImportPath, mod+"/")
		if !ok {
			continue
		}
		if layerOf(from) < 0 {
			bad = append(bad, fmt.Sprintf("%s: in no layer of ARCHITECTURE.md; add its directory to layers in %s", from, "internal/archtest/arch_test.go"))
			continue
		}
		bad = append(bad, checkImports(mod, from, p.Imports, "", true)...)
		bad = append(bad, checkImports(mod, from, p.TestImports, " (test)", false)...)
		bad = append(bad, checkImports(mod, from, p.XTestImports, " (external test)", false)...)
	}
	for _, v := range bad {
		t.Error(v)
	}
	if len(bad) > 0 {
		t.Logf("%d import(s) cross the layers: %s", len(bad), layerText())
	}
}

// checkImports returns one line per forbidden import of package from.
// Tests are exempt from the layers (layered false), not from the x/sys/unix
// rule: a client's or the SDK's tests start real nodes and a controller to
// talk to (client, metaclient, pocket and dataplane/agent tests do), which
// is what end-to-end tests are for and ships in no binary.
func checkImports(mod, from string, imports []string, what string, layered bool) []string {
	var bad []string
	for _, imp := range imports {
		if imp == unixPath && !underAny(from, unixImporters) {
			bad = appendUnlessAllowed(bad, from, unixPath, what, "only "+strings.Join(unixImporters, ", ")+" import x/sys/unix")
		}
		to, ok := strings.CutPrefix(imp, mod+"/")
		if !ok || to == from || !layered {
			continue
		}
		if why := crossing(from, to); why != "" {
			bad = appendUnlessAllowed(bad, from, to, what, why)
		}
	}
	return bad
}

// crossing says why from may not import to, or returns "".
func crossing(from, to string) string {
	lf, lt := layerOf(from), layerOf(to)
	if lt < 0 {
		return "the imported package is in no layer"
	}
	if lt > lf {
		return fmt.Sprintf("layer %d (%s) imports layer %d (%s)", lf, strings.Join(layers[lf], ", "), lt, strings.Join(layers[lt], ", "))
	}
	for prefix, banned := range forbidden {
		if under(from, prefix) && underAny(to, banned) && !under(to, prefix) {
			return fmt.Sprintf("%s never imports %s", prefix, strings.Join(banned, ", "))
		}
	}
	return ""
}

func appendUnlessAllowed(bad []string, from, to, what, why string) []string {
	if _, ok := allowed[from+" -> "+to]; ok {
		return bad
	}
	return append(bad, fmt.Sprintf("%s -> %s%s: %s", from, to, what, why))
}

// layerOf returns the layer index of a path inside the module, or -1.
func layerOf(path string) int {
	top, _, _ := strings.Cut(path, "/")
	for i, l := range layers {
		if slices.Contains(l, top) {
			return i
		}
	}
	return -1
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func underAny(path string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return under(path, p) })
}

func layerText() string {
	var parts []string
	for _, l := range layers {
		parts = append(parts, strings.Join(l, ", "))
	}
	return strings.Join(parts, " -> ")
}

// listModule runs `go list -json ./...` at the module root and returns
// the module path and its packages.
func listModule(t *testing.T) (string, []pkg) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH, cannot list imports: %v", err)
	}
	gomod, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == "/dev/null" {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	cmd := exec.Command(goCmd, "list", "-e", "-json=ImportPath,Dir,GoFiles,Module,Imports,TestImports,XTestImports,Error", "./...")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	return decode(t, out)
}

func decode(t *testing.T, out []byte) (string, []pkg) {
	t.Helper()
	var mod string
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Module != nil {
			mod = p.Module.Path
		}
		pkgs = append(pkgs, p)
	}
	if mod == "" || len(pkgs) == 0 {
		t.Fatal("go list found no packages of a module")
	}
	return mod, pkgs
}

// TestCrossing checks the checker on pairs that must pass and fail.
func TestCrossing(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"dataplane/agent", "telemetry", true},
		{"controller", "telemetry/metrics", true},
		{"wire/fb", "internal/units", true},
		{"tools/pocket", "perf/hw", true},
		{"dataplane", "dataplane/slab", true},
		{"dataplane/agent", "perf/telemetry", false},
		{"wire", "netio", false},
		{"telemetry", "client", false},
		{"dataplane", "controller", false},
		{"controller", "dataplane/agent", false},
		{"controller", "netio", false},
		{"controller", "client", true},
		{"pocket", "orchestrator", false},
		{"pocket", "nvme", false},
		{"perf/bench", "tools/pocket", false},
		{"dataplane", "nowhere", false},
	} {
		if why := crossing(c.from, c.to); (why == "") != c.ok {
			t.Errorf("crossing(%s, %s) = %q, want allowed %v", c.from, c.to, why, c.ok)
		}
	}
	if bad := checkImports("m", "telemetry", []string{unixPath}, "", true); len(bad) != 1 {
		t.Errorf("telemetry importing x/sys/unix: %v, want one violation", bad)
	}
	if bad := checkImports("m", "internal/sys", []string{unixPath}, "", true); len(bad) != 0 {
		t.Errorf("internal/sys importing x/sys/unix: %v, want none", bad)
	}
}

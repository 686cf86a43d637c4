package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Each plane has one client (ARCHITECTURE.md): every caller of the data
// plane goes through client, every caller of the control plane through
// metaclient. A second hand-rolled client "for just this one call" is
// how protocol bugs multiply; these are its two signs.

// protocolClients are the only packages whose code both speaks wire and
// opens connections.
var protocolClients = []string{"client", "metaclient"}

// frameSpeakers are the only packages that read or write frames by hand:
// the two clients, the two servers, the transport and wire itself.
var frameSpeakers = []string{"wire", "client", "metaclient", "netio", "dataplane", "controller"}

// frameFuncs are wire's frame-level encoders and decoders.
var frameFuncs = []string{"AppendControlFrame", "ReadControlFrame", "AppendHeader", "PutHeader", "ParseHeader", "ReplyError"}

// dialers are the standard library's ways to open a connection, by import
// path.
var dialers = map[string][]string{
	"net":        {"Dial", "DialTimeout", "DialTCP", "Dialer"},
	"crypto/tls": {"Dial", "DialWithDialer", "Dialer"},
}

// TestOneClientPerPlane fails for every non-test file outside the clients
// that imports wire and dials (a hand-rolled client), and for every use of
// wire's frame functions outside the packages that own framing.
func TestOneClientPerPlane(t *testing.T) {
	mod, pkgs := listModule(t)
	var bad []string
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, mod+"/")
		if !ok {
			continue
		}
		for _, name := range p.GoFiles {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			bad = append(bad, protocolUses(mod, rel, filepath.Join(rel, name), fset, f)...)
		}
	}
	for _, v := range bad {
		t.Error(v)
	}
}

// protocolUses returns one line per forbidden use in file f of package pkg
// (paths inside module mod), parsed with fset.
func protocolUses(mod, pkg, file string, fset *token.FileSet, f *ast.File) []string {
	names := importNames(f)
	wireName, speaksWire := names[mod+"/wire"]
	var bad []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		at := file + ":" + strconv.Itoa(fset.Position(sel.Pos()).Line)
		if speaksWire && x.Name == wireName && slices.Contains(frameFuncs, sel.Sel.Name) && !underAny(pkg, frameSpeakers) {
			bad = append(bad, fmt.Sprintf("%s: wire.%s outside %s: send requests through client or metaclient", at, sel.Sel.Name, strings.Join(frameSpeakers, ", ")))
		}
		for path, funcs := range dialers {
			if name, ok := names[path]; ok && speaksWire && x.Name == name && slices.Contains(funcs, sel.Sel.Name) && !underAny(pkg, protocolClients) {
				bad = append(bad, fmt.Sprintf("%s: dials (%s.%s) in a file that speaks wire: a hand-rolled client; use client (data plane) or metaclient (control plane)", at, path, sel.Sel.Name))
			}
		}
		return true
	})
	return bad
}

// importNames maps each import path of f to the name the file uses for it.
func importNames(f *ast.File) map[string]string {
	names := map[string]string{}
	for _, im := range f.Imports {
		path, err := strconv.Unquote(im.Path.Value)
		if err != nil {
			continue
		}
		name := filepath.Base(path)
		if im.Name != nil {
			name = im.Name.Name
		}
		names[path] = name
	}
	return names
}

// TestProtocolUses checks the rule on files that must pass and fail.
func TestProtocolUses(t *testing.T) {
	const handRolled = `package p
import (
	"net"
	w "m/wire"
)
func drop() {
	var d net.Dialer
	_ = d
	_ = w.AppendControlFrame(nil, 0, 0, 0, nil)
}`
	const rawTCP = `package p
import "net"
func baseline() { net.Dial("tcp", "x") }`
	for _, c := range []struct {
		pkg, src string
		want     int
	}{
		{"tools/x", handRolled, 2},    // dials and frames by hand
		{"controller", handRolled, 1}, // a server may frame, never dial
		{"metaclient", handRolled, 0}, // the control-plane client
		{"perf/bench", rawTCP, 0},     // raw TCP, no wire
		{"pocket", strings.Replace(handRolled, "d net.Dialer", "d int", 1), 1}, // frames without dialing
	} {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "f.go", c.src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := protocolUses("m", c.pkg, "f.go", fset, f); len(got) != c.want {
			t.Errorf("%s: %d violation(s) %q, want %d", c.pkg, len(got), got, c.want)
		}
	}
}

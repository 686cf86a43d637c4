package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// publicAPIs are the packages whose exported API must name no internal
// package: the SDK and what a program outside the module imports to talk
// to a cluster. Such a program cannot import internal packages, so a field
// or result of one of their types is one it can hold but never name or
// build (pocket.Map.Nodes was a []placement.Node). The servers'
// packages (dataplane, controller) are not APIs for other modules. Paths
// inside the module.
var publicAPIs = []string{"pocket", "client", "metaclient", "wire"}

// TestPublicAPINamesNoInternal loads each public package from the
// compiler's export data and fails for every exported identifier whose
// type reaches a type of an internal package: exported fields, methods,
// parameters, results, aliases, and the exported surface of unexported
// types that exported functions hand out.
func TestPublicAPINamesNoInternal(t *testing.T) {
	mod := modulePath(t)
	paths := make([]string, len(publicAPIs))
	for i, p := range publicAPIs {
		paths[i] = mod + "/" + p
	}
	imp := exportImporter(t, paths)
	for _, path := range paths {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
		for _, v := range internalInAPI(pkg) {
			t.Errorf("%s: exported API names an internal type: %s", path, v)
		}
	}
}

// internalInAPI returns one line per exported path of pkg's API that
// reaches a named type of an internal package ("Map.Nodes: ...").
func internalInAPI(pkg *types.Package) []string {
	w := apiWalker{pkg: pkg, seen: map[*types.TypeName]bool{}}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		if tn, ok := obj.(*types.TypeName); ok {
			w.typeName(tn, name)
			continue
		}
		w.visit(obj.Type(), name)
	}
	return w.bad
}

type apiWalker struct {
	pkg  *types.Package
	seen map[*types.TypeName]bool
	bad  []string
}

// typeName walks a type declared in the package: what it is (for an
// alias, what it stands for) and its exported fields and methods.
func (w *apiWalker) typeName(tn *types.TypeName, at string) {
	if w.seen[tn] {
		return
	}
	w.seen[tn] = true
	if tn.IsAlias() {
		w.visit(tn.Type(), at)
		return
	}
	w.surface(tn.Type(), at)
}

// surface walks the exported fields and methods of a type declared in the
// package.
func (w *apiWalker) surface(t types.Type, at string) {
	if st, ok := t.Underlying().(*types.Struct); ok {
		for f := range st.Fields() {
			if f.Exported() || f.Embedded() {
				w.visit(f.Type(), at+"."+f.Name())
			}
		}
	} else {
		w.visit(t.Underlying(), at)
	}
	ms := types.NewMethodSet(types.NewPointer(t))
	for sel := range ms.Methods() {
		if sel.Obj().Exported() {
			w.visit(sel.Type(), at+"."+sel.Obj().Name())
		}
	}
}

// visit walks a type met in the API at the path at.
func (w *apiWalker) visit(t types.Type, at string) {
	switch t := t.(type) {
	case *types.Alias:
		w.named(t.Obj(), at)
		w.visit(types.Unalias(t), at)
	case *types.Named:
		w.named(t.Obj(), at)
		for a := range t.TypeArgs().Types() {
			w.visit(a, at)
		}
	case *types.Pointer:
		w.visit(t.Elem(), at)
	case *types.Slice:
		w.visit(t.Elem(), at)
	case *types.Array:
		w.visit(t.Elem(), at)
	case *types.Chan:
		w.visit(t.Elem(), at)
	case *types.Map:
		w.visit(t.Key(), at)
		w.visit(t.Elem(), at)
	case *types.Signature:
		w.tuple(t.Params(), at+"()")
		w.tuple(t.Results(), at+"()")
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() || f.Embedded() {
				w.visit(f.Type(), at+"."+f.Name())
			}
		}
	case *types.Interface:
		for m := range t.Methods() {
			if m.Exported() {
				w.visit(m.Type(), at+"."+m.Name())
			}
		}
		for e := range t.EmbeddedTypes() {
			w.visit(e, at)
		}
	}
}

func (w *apiWalker) tuple(tu *types.Tuple, at string) {
	for v := range tu.Variables() {
		w.visit(v.Type(), at)
	}
}

// named reports a named type of an internal package, and walks the
// surface of the package's own unexported types the API hands out.
func (w *apiWalker) named(tn *types.TypeName, at string) {
	switch p := tn.Pkg(); {
	case p == nil:
	case isInternal(p.Path()):
		w.bad = append(w.bad, fmt.Sprintf("%s: %s.%s", at, p.Path(), tn.Name()))
	case p == w.pkg && !tn.Exported():
		w.typeName(tn, at)
	}
}

// isInternal reports whether an import path has an "internal" element.
func isInternal(path string) bool {
	return slices.Contains(strings.Split(path, "/"), "internal")
}

// modulePath returns the module's path (go list -m).
func modulePath(t *testing.T) string {
	t.Helper()
	out := goOutput(t, "list", "-m")
	return strings.TrimSpace(string(out))
}

// exportImporter returns an importer that reads the compiler's export
// data of paths and their dependencies, as `go list -export` builds it.
func exportImporter(t *testing.T, paths []string) types.Importer {
	t.Helper()
	args := append([]string{"list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}"}, paths...)
	out := goOutput(t, args...)
	files := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, file, ok := strings.Cut(sc.Text(), "\t"); ok && file != "" {
			files[path] = file
		}
	}
	return importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		f, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
}

// goOutput runs the go command at the module root.
func goOutput(t *testing.T, args ...string) []byte {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH: %v", err)
	}
	gomod, err := exec.Command(goCmd, "env", "GOMOD").Output()
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if err != nil || root == "." {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestInternalInAPI checks the walker on a package that hands out internal
// types every way the API can, and on uses that are not API.
func TestInternalInAPI(t *testing.T) {
	fset := token.NewFileSet()
	check := func(path, src string, imp types.Importer) *types.Package {
		f, err := parser.ParseFile(fset, path+".go", src, 0)
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := (&types.Config{Importer: imp}).Check(path, fset, []*ast.File{f}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return pkg
	}
	secret := check("m/internal/secret", "package secret\ntype Node struct{ ID string }\ntype ID int\n", nil)
	api := check("m/api", `package api
import "m/internal/secret"
type Map struct {
	Nodes []secret.Node
	hidden secret.Node
}
type Alias = secret.ID
type handle struct{ N map[string]*secret.Node; n secret.ID }
func Open() handle { return handle{} }
func (Map) Get(secret.ID) {}
func (Map) private(secret.ID) {}
type I interface{ M() chan secret.ID }
var V func() (int, secret.Node)
func ok() secret.Node { return secret.Node{} }
`, importerFunc(func(string) (*types.Package, error) { return secret, nil }))
	got := internalInAPI(api)
	want := []string{
		"Alias: m/internal/secret.ID",
		"I.M(): m/internal/secret.ID",
		"Map.Get(): m/internal/secret.ID",
		"Map.Nodes: m/internal/secret.Node",
		"Open().N: m/internal/secret.Node", // handle is unexported, its N is not
		"V(): m/internal/secret.Node",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("internalInAPI:\n got %q\nwant %q", got, want)
	}
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

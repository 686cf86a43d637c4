package wire

// The third drift check (the first two are scripts/check-gen.sh: schemas
// against the generated Go in wire/fb). Each table is described three
// times: in data.fbs / control.fbs, in the generated wire/fb, and in the
// hand-written TableSpec values the verifier walks. This test parses the
// schemas and proves every TableSpec agrees with its table, field by field,
// and that every table has a spec a decoder reaches.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// schemaFiles are the schemas the TableSpecs of this package describe.
var schemaFiles = []string{"data.fbs", "control.fbs"}

// tableSpecs gathers every TableSpec of the package by table name.
// TestSpecsAllListed proves (from the package's source) that none is left
// out, so adding a spec without listing it here fails.
var tableSpecs = map[string]*TableSpec{
	// data.fbs (message.go)
	"Request":  &requestSpec,
	"Entry":    &entrySpec,
	"Response": &responseSpec,
	// control.fbs (control.go)
	"TierStat":          &tierStatSpec,
	"Metric":            &metricSpec,
	"JobEpoch":          &jobEpochSpec,
	"NodeRegister":      &nodeRegSpec,
	"Heartbeat":         &heartbeatSpec,
	"NodeAck":           &nodeAckSpec,
	"HeldJob":           &heldJobSpec,
	"MoveReport":        &moveReportSpec,
	"JobLoad":           &jobLoadSpec,
	"JobRegister":       &jobRegSpec,
	"JobRef":            &jobRefSpec,
	"MapNode":           &mapNodeSpec,
	"PlacementMap":      &mapSpec,
	"ClientHold":        &clientHoldSpec,
	"RetiredNode":       &retiredNodeSpec,
	"LostNode":          &lostNodeSpec,
	"DropResult":        &dropSpec,
	"NodeStatus":        &nodeStatusSpec,
	"JobStatus":         &jobStatusSpec,
	"DrainNode":         &drainSpec,
	"ClusterStatus":     &clusterSpec,
	"PriceTable":        &priceTableSpec,
	"JobList":           &jobListSpec,
	"Challenge":         &challengeSpec,
	"NodeHello":         &helloSpec,
	"JobProfileRequest": &profileReqSpec,
	"ProfilePhase":      &profilePhaseSpec,
	"ProfileRun":        &profileRunSpec,
	"JobProfile":        &profileSpec,
}

// tablesWithoutSpec lists schema tables deliberately decoded by no one (so
// with no spec), each with the reason. Empty: every table has a decoder.
var tablesWithoutSpec = map[string]string{}

// schemaField is one field of a schema table: its name and its type as
// written ("ulong", "string", "[ubyte]", "[TierStat]", "JobRegister").
type schemaField struct {
	Name, Type string
	Line       int
}

type schemaTable struct {
	Name   string
	File   string
	Fields []schemaField
}

// schema is what parseSchema extracts from one or more .fbs files.
type schema struct {
	Namespace string
	RootType  string
	Tables    map[string]*schemaTable
	Order     []string // table names in declaration order
}

// fbsToken is one token of a .fbs file.
type fbsToken struct {
	Text string
	Line int
}

// lexFBS splits a .fbs source into identifiers (dotted names included),
// numbers, string literals and single punctuation characters, dropping
// // and /* */ comments.
func lexFBS(src string) ([]fbsToken, error) {
	var toks []fbsToken
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
		case c == '"':
			end := strings.IndexByte(src[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, fbsToken{src[i : i+end+2], line})
			i += end + 2
		case c == '_' || c == '-' || c == '+' || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)):
			j := i + 1
			for j < len(src) && (src[j] == '_' || src[j] == '.' || unicode.IsLetter(rune(src[j])) || unicode.IsDigit(rune(src[j]))) {
				j++
			}
			toks = append(toks, fbsToken{src[i:j], line})
			i = j
		case strings.ContainsRune("{}[]:;=(),", rune(c)):
			toks = append(toks, fbsToken{string(c), line})
			i++
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", line, c)
		}
	}
	return toks, nil
}

// fbsParser parses the subset of the flatbuffers schema language the wire
// schemas use: namespace, root_type, include/attribute/file_* (skipped) and
// tables whose fields are `name: type;`, optionally with a default value
// and (attributes). enum, struct and union are refused so that the day a
// schema uses one, this test is extended rather than silently wrong.
type fbsParser struct {
	file string
	toks []fbsToken
	pos  int
}

func (p *fbsParser) errf(format string, args ...any) error {
	line := 0
	if p.pos < len(p.toks) {
		line = p.toks[p.pos].Line
	} else if len(p.toks) > 0 {
		line = p.toks[len(p.toks)-1].Line
	}
	return fmt.Errorf("%s:%d: %s", p.file, line, fmt.Sprintf(format, args...))
}

func (p *fbsParser) next() (string, error) {
	if p.pos >= len(p.toks) {
		return "", p.errf("unexpected end of file")
	}
	p.pos++
	return p.toks[p.pos-1].Text, nil
}

func (p *fbsParser) expect(want string) error {
	got, err := p.next()
	if err != nil {
		return err
	}
	if got != want {
		p.pos--
		return p.errf("want %q, got %q", want, got)
	}
	return nil
}

func (p *fbsParser) ident() (string, error) {
	got, err := p.next()
	if err != nil {
		return "", err
	}
	if !isIdent(got) {
		p.pos--
		return "", p.errf("want a name, got %q", got)
	}
	return got, nil
}

func isIdent(s string) bool {
	if s == "" || !(s[0] == '_' || unicode.IsLetter(rune(s[0]))) {
		return false
	}
	return !strings.ContainsAny(s, "-+")
}

// skipTo consumes tokens through the next occurrence of tok.
func (p *fbsParser) skipTo(tok string) error {
	for {
		t, err := p.next()
		if err != nil {
			return err
		}
		if t == tok {
			return nil
		}
	}
}

// parseFile adds the declarations of one file to s.
func (p *fbsParser) parseFile(s *schema) error {
	for p.pos < len(p.toks) {
		kw, err := p.next()
		if err != nil {
			return err
		}
		switch kw {
		case "namespace":
			ns, err := p.ident()
			if err != nil {
				return err
			}
			if s.Namespace != "" && s.Namespace != ns {
				return p.errf("namespace %s, another file has %s", ns, s.Namespace)
			}
			s.Namespace = ns
			if err := p.expect(";"); err != nil {
				return err
			}
		case "root_type":
			if s.RootType, err = p.ident(); err != nil {
				return err
			}
			if err := p.expect(";"); err != nil {
				return err
			}
		case "include", "attribute", "file_identifier", "file_extension":
			if err := p.skipTo(";"); err != nil {
				return err
			}
		case "table":
			if err := p.table(s); err != nil {
				return err
			}
		default:
			p.pos--
			return p.errf("%q is outside the subset this test parses (extend it)", kw)
		}
	}
	return nil
}

// table parses `table Name (attrs)? { fields }`.
func (p *fbsParser) table(s *schema) error {
	name, err := p.ident()
	if err != nil {
		return err
	}
	if _, dup := s.Tables[name]; dup {
		return p.errf("table %s declared twice", name)
	}
	if err := p.attrs(); err != nil {
		return err
	}
	if err := p.expect("{"); err != nil {
		return err
	}
	t := &schemaTable{Name: name, File: p.file}
	for {
		if p.pos < len(p.toks) && p.toks[p.pos].Text == "}" {
			p.pos++
			break
		}
		f, err := p.field()
		if err != nil {
			return err
		}
		t.Fields = append(t.Fields, f)
	}
	s.Tables[name] = t
	s.Order = append(s.Order, name)
	return nil
}

// field parses `name: type (= default)? (attrs)? ;`.
func (p *fbsParser) field() (schemaField, error) {
	var f schemaField
	var err error
	if p.pos < len(p.toks) {
		f.Line = p.toks[p.pos].Line
	}
	if f.Name, err = p.ident(); err != nil {
		return f, err
	}
	if err := p.expect(":"); err != nil {
		return f, err
	}
	t, err := p.next()
	if err != nil {
		return f, err
	}
	if t == "[" {
		elem, err := p.ident()
		if err != nil {
			return f, err
		}
		if err := p.expect("]"); err != nil {
			return f, err
		}
		f.Type = "[" + elem + "]"
	} else if isIdent(t) {
		f.Type = t
	} else {
		p.pos--
		return f, p.errf("field %s: want a type, got %q", f.Name, t)
	}
	if p.pos < len(p.toks) && p.toks[p.pos].Text == "=" {
		p.pos++
		if _, err := p.next(); err != nil { // the default value
			return f, err
		}
	}
	if err := p.attrs(); err != nil {
		return f, err
	}
	return f, p.expect(";")
}

// attrs skips an optional parenthesized attribute list.
func (p *fbsParser) attrs() error {
	if p.pos < len(p.toks) && p.toks[p.pos].Text == "(" {
		return p.skipTo(")")
	}
	return nil
}

// parseSchema parses the named files (relative to the package directory)
// as one schema.
func parseSchema(files ...string) (*schema, error) {
	s := &schema{Tables: map[string]*schemaTable{}}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		toks, err := lexFBS(string(src))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p := &fbsParser{file: name, toks: toks}
		if err := p.parseFile(s); err != nil {
			return nil, err
		}
	}
	if s.RootType != "" && s.Tables[s.RootType] == nil {
		return nil, fmt.Errorf("root_type %s is not a table", s.RootType)
	}
	return s, nil
}

// scalarKinds maps schema scalar types to the verifier's kinds.
var scalarKinds = map[string]FieldKind{
	"ulong": Scalar8, "long": Scalar8, "double": Scalar8,
	"uint64": Scalar8, "int64": Scalar8, "float64": Scalar8,
	"uint": Scalar4, "int": Scalar4, "float": Scalar4,
	"uint32": Scalar4, "int32": Scalar4, "float32": Scalar4,
	"ushort": Scalar2, "short": Scalar2, "uint16": Scalar2, "int16": Scalar2,
	"ubyte": Scalar1, "byte": Scalar1, "bool": Scalar1, "uint8": Scalar1, "int8": Scalar1,
}

// kindName names a FieldKind for reports.
func kindName(k FieldKind) string {
	names := [...]string{"?", "Scalar1", "Scalar2", "Scalar4", "Scalar8", "String", "Bytes", "TableVec", "TableField"}
	if int(k) < len(names) {
		return names[k]
	}
	return "FieldKind(" + strconv.Itoa(int(k)) + ")"
}

// wantField is what the verifier must say about a schema field: its kind
// and, for tables and vectors of tables, the table its Sub must describe.
func wantField(s *schema, f schemaField) (FieldKind, string, error) {
	if k, ok := scalarKinds[f.Type]; ok {
		return k, "", nil
	}
	if f.Type == "string" {
		return String, "", nil
	}
	if elem, ok := strings.CutPrefix(f.Type, "["); ok {
		elem = strings.TrimSuffix(elem, "]")
		if k, ok := scalarKinds[elem]; ok && k == Scalar1 {
			return Bytes, "", nil
		}
		if s.Tables[elem] != nil {
			return TableVec, elem, nil
		}
		return 0, "", fmt.Errorf("vector type %s has no verifier kind", f.Type)
	}
	if s.Tables[f.Type] != nil {
		return TableField, f.Type, nil
	}
	return 0, "", fmt.Errorf("type %s has no verifier kind", f.Type)
}

// compareSpec lists every way spec disagrees with the schema's table of its
// name; specs resolves Sub pointers (a Sub must be the package's spec of
// that table, not a copy). An empty result means they agree.
func compareSpec(s *schema, spec *TableSpec, specs map[string]*TableSpec) []string {
	t := s.Tables[spec.Name]
	if t == nil {
		return []string{fmt.Sprintf("spec %s: no such table in the schemas", spec.Name)}
	}
	var errs []string
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s (%s): ", spec.Name, t.File)+fmt.Sprintf(format, args...))
	}
	if len(spec.Fields) != len(t.Fields) {
		bad("spec has %d fields, schema %d", len(spec.Fields), len(t.Fields))
	}
	for i := 0; i < min(len(spec.Fields), len(t.Fields)); i++ {
		sf, f := spec.Fields[i], t.Fields[i]
		kind, sub, err := wantField(s, f)
		if err != nil {
			bad("field %d %s (line %d): %v", i, f.Name, f.Line, err)
			continue
		}
		if sf.Kind != kind {
			bad("field %d %s: %s: spec says %s, schema needs %s", i, f.Name, f.Type, kindName(sf.Kind), kindName(kind))
			continue
		}
		switch {
		case sub == "" && sf.Sub != nil:
			bad("field %d %s: %s has a Sub (%s)", i, f.Name, f.Type, sf.Sub.Name)
		case sub != "" && sf.Sub == nil:
			bad("field %d %s: %s has no Sub", i, f.Name, f.Type)
		case sub != "" && sf.Sub.Name != sub:
			bad("field %d %s: %s: Sub describes %s", i, f.Name, f.Type, sf.Sub.Name)
		case sub != "" && specs[sub] != sf.Sub:
			bad("field %d %s: %s: Sub is not the package's %s spec", i, f.Name, f.Type, sub)
		}
	}
	return errs
}

// TestSpecsMatchSchemas: every TableSpec has the fields of its schema table,
// in order, with matching kinds and Subs.
func TestSpecsMatchSchemas(t *testing.T) {
	if all, _ := filepath.Glob("*.fbs"); strings.Join(all, " ") != strings.Join(sortedCopy(schemaFiles), " ") {
		t.Errorf("schemas in wire: %v; schemaFiles lists %v", all, schemaFiles)
	}
	s, err := parseSchema(schemaFiles...)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tables) == 0 {
		t.Fatal("no tables parsed")
	}
	if s.Namespace != "fb" {
		t.Errorf("namespace %q, want fb (the generated package)", s.Namespace)
	}
	names := make([]string, 0, len(tableSpecs))
	for name := range tableSpecs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		spec := tableSpecs[name]
		if spec.Name != name {
			t.Errorf("tableSpecs[%q] is the spec of %q", name, spec.Name)
		}
		for _, e := range compareSpec(s, spec, tableSpecs) {
			t.Error(e)
		}
	}
	for _, name := range s.Order {
		_, has := tableSpecs[name]
		_, excused := tablesWithoutSpec[name]
		switch {
		case !has && !excused:
			t.Errorf("table %s (%s) has no TableSpec (add one and decode with it, or list it in tablesWithoutSpec)",
				name, s.Tables[name].File)
		case has && excused:
			t.Errorf("table %s has a spec but is listed in tablesWithoutSpec", name)
		}
	}
	for name := range tablesWithoutSpec {
		if s.Tables[name] == nil {
			t.Errorf("tablesWithoutSpec lists %s, which is not in the schemas", name)
		}
	}
	if !t.Failed() {
		t.Logf("%d tables in %v agree with their TableSpecs", len(s.Tables), schemaFiles)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// TestSpecsCatchDrift proves compareSpec is not vacuous: deliberately wrong
// copies of real specs must each be reported.
func TestSpecsCatchDrift(t *testing.T) {
	s, err := parseSchema(schemaFiles...)
	if err != nil {
		t.Fatal(err)
	}
	if errs := compareSpec(s, &responseSpec, tableSpecs); len(errs) != 0 {
		t.Fatalf("the real Response spec should agree: %v", errs)
	}
	mutate := func(spec *TableSpec, f func(fs []Field) []Field) *TableSpec {
		c := *spec
		c.Fields = f(append([]Field(nil), spec.Fields...))
		return &c
	}
	otherEntry := entrySpec
	cases := []struct {
		name string
		spec *TableSpec
		want string
	}{
		{"wrong scalar width", mutate(&responseSpec, func(fs []Field) []Field {
			fs[3].Kind = Scalar8 // flags: uint is Scalar4
			return fs
		}), "field 3 flags: uint: spec says Scalar8, schema needs Scalar4"},
		{"field dropped", mutate(&responseSpec, func(fs []Field) []Field {
			return fs[:len(fs)-1]
		}), "spec has 11 fields, schema 12"},
		{"field added", mutate(&requestSpec, func(fs []Field) []Field {
			return append(fs, Field{Kind: Scalar8})
		}), "spec has 10 fields, schema 9"},
		{"fields swapped", mutate(&requestSpec, func(fs []Field) []Field {
			fs[0], fs[2] = fs[2], fs[0] // job string <-> token [ubyte]
			return fs
		}), "field 0 job: string: spec says Bytes, schema needs String"},
		{"string as bytes", mutate(&challengeSpec, func(fs []Field) []Field {
			fs[0].Kind = String
			return fs
		}), "field 0 nonce: [ubyte]: spec says String, schema needs Bytes"},
		{"wrong Sub table", mutate(&nodeRegSpec, func(fs []Field) []Field {
			fs[1].Sub = &metricSpec
			return fs
		}), "field 1 tiers: [TierStat]: Sub describes Metric"},
		{"Sub a copy", mutate(&responseSpec, func(fs []Field) []Field {
			fs[4].Sub = &otherEntry
			return fs
		}), "Sub is not the package's Entry spec"},
		{"missing Sub", mutate(&jobStatusSpec, func(fs []Field) []Field {
			fs[4].Sub = nil
			return fs
		}), "field 4 hints: JobRegister has no Sub"},
		{"table as vector", mutate(&jobStatusSpec, func(fs []Field) []Field {
			fs[4].Kind = TableVec
			return fs
		}), "spec says TableVec, schema needs TableField"},
		{"unknown table", &TableSpec{Name: "Nope"}, "no such table"},
	}
	for _, c := range cases {
		errs := compareSpec(s, c.spec, tableSpecs)
		if len(errs) == 0 {
			t.Errorf("%s: drift not caught", c.name)
			continue
		}
		if !strings.Contains(strings.Join(errs, "\n"), c.want) {
			t.Errorf("%s: got %q, want a report containing %q", c.name, errs, c.want)
		}
	}

	// A schema change the specs did not follow is caught too.
	drifted, err := parseSchema(schemaFiles...)
	if err != nil {
		t.Fatal(err)
	}
	entry := drifted.Tables["Entry"]
	entry.Fields = append(entry.Fields, schemaField{Name: "mtime_ms", Type: "long"})
	if errs := compareSpec(drifted, &entrySpec, tableSpecs); len(errs) == 0 {
		t.Error("a field added to the schema but not the spec was not caught")
	}
}

// TestSchemaParser checks the parser on the parts of the subset the real
// schemas do not use, and that it refuses what it does not understand.
func TestSchemaParser(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.fbs", `include "other.fbs"; /* block
comment */ namespace fb;
attribute "priority";
table Leaf { v: short = 3 (deprecated); } // trailing
table Root (priority: 1) { leaf: Leaf; leaves: [Leaf]; b: [byte]; s: string; }
root_type Root;
`)
	s, err := parseSchema(ok)
	if err != nil {
		t.Fatal(err)
	}
	if s.RootType != "Root" || len(s.Order) != 2 || len(s.Tables["Root"].Fields) != 4 {
		t.Fatalf("parsed %+v", s)
	}
	leaf := &TableSpec{Name: "Leaf", Fields: []Field{{Kind: Scalar2}}}
	specs := map[string]*TableSpec{"Leaf": leaf}
	root := &TableSpec{Name: "Root", Fields: []Field{
		{Kind: TableField, Sub: leaf}, {Kind: TableVec, Sub: leaf}, {Kind: Bytes}, {Kind: String},
	}}
	specs["Root"] = root
	for _, spec := range []*TableSpec{leaf, root} {
		if errs := compareSpec(s, spec, specs); len(errs) != 0 {
			t.Errorf("%s: %v", spec.Name, errs)
		}
	}
	for _, src := range []string{
		"enum Color : byte { Red }",
		"struct Vec { x: float; }",
		"table T { a: ulong }",
		"table T { a ulong; }",
		"table T { a: ulong;",
		"/* open",
	} {
		if _, err := parseSchema(write("bad.fbs", src)); err == nil {
			t.Errorf("%q parsed without error", src)
		}
	}
	bad, err := parseSchema(write("vec.fbs", "table T { a: [ulong]; b: Unknown; }"))
	if err != nil {
		t.Fatal(err)
	}
	errs := compareSpec(bad, &TableSpec{Name: "T", Fields: []Field{{Kind: Bytes}, {Kind: Scalar4}}}, nil)
	if len(errs) != 2 {
		t.Errorf("unsupported types: got %q, want two reports", errs)
	}
}

// TestSpecsAllListed reads the package's own (non-test) source and checks
// that tableSpecs holds every TableSpec declared in it, and that every
// table with a spec is reached by a decoder: passed to Verify or root, or
// the Sub of a spec that is.
func TestSpecsAllListed(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]string{} // var name -> table name
	verified := map[string]bool{}   // var names passed to Verify or root
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i < len(n.Values) {
						if table, ok := specLiteral(n.Values[i]); ok {
							if prev, dup := declared[id.Name]; dup {
								t.Errorf("%s declared twice (%s, %s)", id.Name, prev, table)
							}
							declared[id.Name] = table
						}
					}
				}
			case *ast.CallExpr:
				if fn, ok := n.Fun.(*ast.Ident); ok && (fn.Name == "Verify" || fn.Name == "root") && len(n.Args) == 2 {
					if u, ok := n.Args[1].(*ast.UnaryExpr); ok && u.Op == token.AND {
						if id, ok := u.X.(*ast.Ident); ok {
							verified[id.Name] = true
						}
					}
				}
			}
			return true
		})
	}
	if len(declared) == 0 {
		t.Fatal("found no TableSpec declarations")
	}
	byTable := map[string]string{}
	for v, table := range declared {
		if other, dup := byTable[table]; dup {
			t.Errorf("table %s has two specs: %s and %s", table, other, v)
		}
		byTable[table] = v
		if tableSpecs[table] == nil {
			t.Errorf("%s (table %s) is missing from tableSpecs", v, table)
		}
	}
	for table := range tableSpecs {
		if _, ok := byTable[table]; !ok {
			t.Errorf("tableSpecs lists %s, declared by no package-level TableSpec", table)
		}
	}

	// decodeRequest reads Request without Verify; reqdec_test.go holds it
	// to Verify(&requestSpec) on every input.
	verified["requestSpec"] = true

	// Reachability from the decoders' roots through Sub.
	reached := map[*TableSpec]bool{}
	var walk func(*TableSpec)
	walk = func(s *TableSpec) {
		if s == nil || reached[s] {
			return
		}
		reached[s] = true
		for _, f := range s.Fields {
			walk(f.Sub)
		}
	}
	for v := range verified {
		table, ok := declared[v]
		if !ok {
			t.Errorf("%s is passed to Verify/root but is not a package-level TableSpec", v)
			continue
		}
		walk(tableSpecs[table])
	}
	for table, spec := range tableSpecs {
		if !reached[spec] {
			t.Errorf("spec of %s is used by no decoder (not verified, nor a Sub of a verified spec)", table)
		}
	}
}

// specLiteral reports whether e is a TableSpec{Name: "..."} literal, and
// its table name.
func specLiteral(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return "", false
	}
	if id, ok := lit.Type.(*ast.Ident); !ok || id.Name != "TableSpec" {
		return "", false
	}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
			if b, ok := kv.Value.(*ast.BasicLit); ok && b.Kind == token.STRING {
				name, err := strconv.Unquote(b.Value)
				return name, err == nil
			}
		}
	}
	return "", true // a TableSpec without a literal name: reported as ""
}

package wire

import "encoding/binary"

// FieldKind says how the verifier must check one field of a table.
type FieldKind uint8

// Field kinds: scalars by width, offsets to strings, byte vectors and
// vectors of tables.
const (
	Scalar1 FieldKind = iota + 1
	Scalar2
	Scalar4
	Scalar8
	String     // string (length, bytes, NUL)
	Bytes      // [ubyte] or any 1-byte scalar vector
	TableVec   // vector of tables; Sub describes the element table
	TableField // a nested table; Sub describes it
)

// Field describes one field of a table, in field-id order.
type Field struct {
	Kind FieldKind
	Sub  *TableSpec // for TableVec and TableField
}

// TableSpec lists a table's fields in id order, exactly as the schema
// declares them.
type TableSpec struct {
	Name   string
	Fields []Field
}

// maxDepth bounds nesting so a hostile buffer cannot recurse without end.
const maxDepth = 8

// Verify proves that buf is a flatbuffer whose root is a table of spec, with
// every vtable, field, string and vector the generated accessors can reach
// lying inside buf. Only after Verify succeeds may generated accessors touch
// untrusted bytes: they do no checks of their own.
func Verify(buf []byte, spec *TableSpec) error {
	if len(buf) < 4 {
		return Errorf(CodeMalformed, "%s: flatbuffer of %d bytes", spec.Name, len(buf))
	}
	root := int64(binary.LittleEndian.Uint32(buf))
	v := verifier{buf: buf, n: int64(len(buf)), budget: int64(len(buf))/4 + 1}
	return v.table(root, spec, 0)
}

// verifier walks one buffer. budget bounds the tables it visits: every
// honest table takes at least 4 bytes of its own, so a buffer of n bytes
// holds at most n/4 of them; more visits mean vectors share tables to make
// verification cost grow with the square of the input, and are refused.
type verifier struct {
	buf    []byte
	n      int64
	budget int64
}

func (v *verifier) fail(spec *TableSpec, what string) error {
	return Errorf(CodeMalformed, "%s: %s out of bounds", spec.Name, what)
}

func (v *verifier) u16(at int64) int64 { return int64(binary.LittleEndian.Uint16(v.buf[at:])) }
func (v *verifier) u32(at int64) int64 { return int64(binary.LittleEndian.Uint32(v.buf[at:])) }

// table checks the table at pos: its vtable, then each present field.
func (v *verifier) table(pos int64, spec *TableSpec, depth int) error {
	if depth > maxDepth {
		return Errorf(CodeMalformed, "%s: nested too deep", spec.Name)
	}
	if v.budget--; v.budget < 0 {
		return Errorf(CodeMalformed, "%s: more tables than the buffer can hold", spec.Name)
	}
	if pos < 0 || pos+4 > v.n {
		return v.fail(spec, "table")
	}
	soff := int64(int32(binary.LittleEndian.Uint32(v.buf[pos:])))
	vt := pos - soff
	if vt < 0 || vt+4 > v.n {
		return v.fail(spec, "vtable")
	}
	vsize, osize := v.u16(vt), v.u16(vt+2)
	if vsize < 4 || vsize%2 != 0 || vt+vsize > v.n || osize < 4 || pos+osize > v.n {
		return v.fail(spec, "vtable size")
	}
	for i := range spec.Fields {
		slot := int64(4 + 2*i)
		if slot+2 > vsize {
			break // absent: older writer
		}
		off := v.u16(vt + slot)
		if off == 0 {
			continue
		}
		if err := v.field(pos+off, pos+osize, &spec.Fields[i], spec, depth); err != nil {
			return err
		}
	}
	return nil
}

// field checks one present field at fpos, which must lie inside its table
// (which ends at end).
func (v *verifier) field(fpos, end int64, f *Field, spec *TableSpec, depth int) error {
	width := int64(4) // an offset, or a 4-byte scalar
	switch f.Kind {
	case Scalar1:
		width = 1
	case Scalar2:
		width = 2
	case Scalar8:
		width = 8
	}
	if fpos+width > end {
		return v.fail(spec, "field")
	}
	switch f.Kind {
	case String, Bytes, TableVec:
		return v.vector(fpos, f, spec, depth)
	case TableField:
		return v.table(fpos+v.u32(fpos), f.Sub, depth+1)
	}
	return nil
}

// vector checks the string or vector whose offset is stored at fpos.
func (v *verifier) vector(fpos int64, f *Field, spec *TableSpec, depth int) error {
	at := fpos + v.u32(fpos)
	if at+4 > v.n {
		return v.fail(spec, "vector")
	}
	n := v.u32(at)
	elem := int64(1)
	if f.Kind == TableVec {
		elem = 4
	}
	need := at + 4 + n*elem
	if f.Kind == String {
		need++ // the NUL terminator
	}
	if need > v.n {
		return v.fail(spec, "vector length")
	}
	if f.Kind != TableVec {
		return nil
	}
	for i := int64(0); i < n; i++ {
		e := at + 4 + 4*i
		if err := v.table(e+v.u32(e), f.Sub, depth+1); err != nil {
			return err
		}
	}
	return nil
}

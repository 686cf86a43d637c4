// Package redact prints values that hold a secret (a job's capability
// token, the cluster secret) without it, whichever way they are printed:
// every fmt verb (%v, %+v, %#v, %s, %d, %x...) and log/slog.
//
// A type that holds a secret in an exported field named by Secrets gets a
// Format method that calls Format and a LogValue method that calls
// LogValue; its other exported fields print as fmt and slog print them.
// A type whose secret is in an unexported field (fmt would print it, and
// cannot call its methods) writes its own Format, with Bytes.
package redact

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
)

// Secrets are the field names whose values are never printed: their
// length is, as Bytes gives it.
var Secrets = map[string]bool{"Token": true, "Secret": true, "Credential": true}

// Bytes is how a secret of n bytes prints: "[redacted N bytes]", or
// "[none]" when it is empty.
func Bytes[S ~[]byte | ~string](s S) string {
	if len(s) == 0 {
		return "[none]"
	}
	return fmt.Sprintf("[redacted %d bytes]", len(s))
}

// shown stands for a secret field in a view: it prints as Bytes for every
// verb.
type shown struct{ s string }

func (h shown) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(h.s)) }

var shownType = reflect.TypeOf(shown{})

// views caches, per struct type, the type of its view (viewType).
var views sync.Map // reflect.Type -> reflect.Type

// viewType is t's exported fields, the secrets among them of type shown.
func viewType(t reflect.Type) reflect.Type {
	if v, ok := views.Load(t); ok {
		return v.(reflect.Type)
	}
	var fs []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		sf := reflect.StructField{Name: f.Name, Type: f.Type}
		if Secrets[f.Name] {
			sf.Type = shownType
		}
		fs = append(fs, sf)
	}
	vt := reflect.StructOf(fs)
	views.Store(t, vt)
	return vt
}

// view returns v (a struct, or a pointer to one) as its view: the same
// exported fields, secrets as shown.
func view(v any) (reflect.Value, reflect.Type) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	t := rv.Type()
	vt := viewType(t)
	out := reflect.New(vt).Elem()
	for i := 0; i < vt.NumField(); i++ {
		name := vt.Field(i).Name
		src := rv.FieldByName(name)
		if vt.Field(i).Type == shownType {
			out.Field(i).Set(reflect.ValueOf(shown{secretText(src)}))
			continue
		}
		out.Field(i).Set(src)
	}
	return out, t
}

func secretText(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return Bytes(v.String())
	case reflect.Slice:
		return Bytes(make([]byte, v.Len()))
	}
	if v.IsZero() {
		return "[none]"
	}
	return "[redacted]"
}

// Format prints v, a struct or a pointer to one, as fmt prints it with
// verb and f's flags, but for its secret fields, which print as Bytes,
// and its unexported fields, which are left out. %#v names v's type.
func Format(f fmt.State, verb rune, v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		_, _ = fmt.Fprintf(f, "<nil>")
		return
	}
	out, t := view(v)
	if verb == 'v' && f.Flag('#') {
		s := fmt.Sprintf("%#v", out.Interface())
		s = strings.TrimPrefix(s, out.Type().String())
		prefix := t.String()
		if reflect.TypeOf(v).Kind() == reflect.Pointer {
			prefix = "&" + prefix
		}
		_, _ = f.Write([]byte(prefix + s))
		return
	}
	s := fmt.Sprintf(fmt.FormatString(f, verb), out.Interface())
	if reflect.TypeOf(v).Kind() == reflect.Pointer && (verb == 'v' || verb == 's') {
		s = "&" + s
	}
	_, _ = f.Write([]byte(s))
}

// LogValue is v's slog group: its exported fields by name, secrets as
// Bytes, unexported ones left out.
func LogValue(v any) slog.Value {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return slog.StringValue("<nil>")
	}
	out, _ := view(v)
	attrs := make([]slog.Attr, 0, out.NumField())
	for i := 0; i < out.NumField(); i++ {
		fv := out.Field(i)
		if s, ok := fv.Interface().(shown); ok {
			attrs = append(attrs, slog.String(out.Type().Field(i).Name, s.s))
			continue
		}
		attrs = append(attrs, slog.Any(out.Type().Field(i).Name, fv.Interface()))
	}
	return slog.GroupValue(attrs...)
}

// FormatAs is Format of v, a struct of exported fields that stands for a
// value of the type named name (a pointer's view, say): %#v names name.
func FormatAs(f fmt.State, verb rune, name string, v any) {
	if verb == 'v' && f.Flag('#') {
		out, _ := view(v)
		s := fmt.Sprintf("%#v", out.Interface())
		_, _ = f.Write([]byte(name + strings.TrimPrefix(s, out.Type().String())))
		return
	}
	Format(f, verb, v)
}

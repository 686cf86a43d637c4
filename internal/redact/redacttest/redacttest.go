// Package redacttest checks that a value prints no secret: every fmt verb
// and flag a program would log with, nested in a struct, a slice and a
// pointer, and log/slog's text and JSON handlers.
package redacttest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Forms are the format strings Check prints with.
var Forms = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%c", "%U", "%T %v"}

// Check fails t for every way of printing v (named name in failures) that
// shows secret: as text, its hex, its base64, or its bytes in decimal
// ("[83 69 ...]"), with fmt (CheckFmt) and with log/slog's text and JSON
// handlers. secret must be a few bytes long, so that a match is no
// accident. A slice or map of such values is checked with CheckFmt only:
// slog's JSON handler encodes it with encoding/json, which is an encoding
// (it keeps the token; see package redact), not a printing.
func Check(t testing.TB, name string, v any, secret []byte) {
	t.Helper()
	CheckFmt(t, name, v, secret)
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(h(&b)).Info("m", "v", v, slog.Any("any", v), slog.Group("g", "v", v))
		if Shows(b.String(), secret) {
			t.Errorf("%s: slog shows the secret: %s", name, b.String())
		}
	}
}

// CheckFmt is Check's fmt half: every form of Forms, of v alone and nested
// in a struct's exported field, a slice and a pointer. (fmt calls no
// method of a value in an unexported field, and prints it raw: no type can
// redact itself there.)
func CheckFmt(t testing.TB, name string, v any, secret []byte) {
	t.Helper()
	type holder struct {
		V  any
		In []any
	}
	wrapped := map[string]any{
		"plain":  v,
		"struct": holder{V: v, In: []any{v}},
		"slice":  []any{v},
		"ptr":    &holder{V: v},
	}
	for form, w := range wrapped {
		for _, f := range Forms {
			if s := fmt.Sprintf(f, w); Shows(s, secret) {
				t.Errorf("%s: fmt %q of %s shows the secret: %s", name, f, form, s)
			}
		}
	}
}

// Shows reports whether s holds secret in any form Check looks for.
func Shows(s string, secret []byte) bool {
	dec := strings.Trim(fmt.Sprint(secret), "[]")
	for _, form := range []string{string(secret), hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret), dec, fmt.Sprintf("%q", secret)} {
		if strings.Contains(s, form) {
			return true
		}
	}
	return false
}

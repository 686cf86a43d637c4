package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
)

// figureDigits is how many significant digits a fractional figure of the
// JSON output keeps (never fewer than its integer part has).
const figureDigits = 6

// writeJSON writes v as indented JSON with its fractional figures rounded
// (roundFigures). Every --json output of the CLI goes through it (or,
// one object a line, writeJSONLine), so no
// float field of any of them prints binary noise: a new user's trial read
// "alloc_mbps": 6400.000000000002 from `pocket job register --json`, a sum
// of per-node shares, and status --json's mbps, cost and rate fields are
// sums and quotients of the same kind.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, roundFigures(b), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// writeJSONLine writes v as one line of JSON with its fractional figures
// rounded (roundFigures), for outputs of one object per line (probe).
// Before, `pocket probe --json` printed its rates unrounded
// ("busy_percent":9.090909091243157: a new user's trial).
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(roundFigures(b), '\n'))
	return err
}

// roundFigures rewrites the fractional numbers of the JSON document b
// (those written with a point or an exponent) by roundFigure; integers,
// strings and the document's layout are kept.
func roundFigures(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
			out = append(out, c)
		case c == '-' || c >= '0' && c <= '9':
			j := i
			for j < len(b) && strings.IndexByte("+-.0123456789eE", b[j]) >= 0 {
				j++
			}
			out = append(out, roundLiteral(string(b[i:j]))...)
			i = j - 1
		default:
			out = append(out, c)
		}
	}
	return out
}

// roundLiteral is a JSON number literal rounded by roundFigure, or the
// literal itself when it is an integer or does not parse.
func roundLiteral(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		return lit
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return lit
	}
	return roundFigure(f)
}

// roundFigure formats f with figureDigits significant digits, but keeps
// every digit of its integer part (a counter or a byte figure held as a
// float stays exact): 6400.000000000002 is "6400", 33.333333333333336
// "33.3333", 0.012345678 "0.0123457".
func roundFigure(f float64) string {
	a := math.Abs(f)
	switch {
	case a == 0 || math.IsInf(f, 0) || math.IsNaN(f):
		return strconv.FormatFloat(f, 'g', -1, 64)
	case a >= 1e21: // what encoding/json writes with an exponent
		return strconv.FormatFloat(f, 'g', -1, 64)
	case a >= 1:
		decimals := max(0, figureDigits-1-int(math.Floor(math.Log10(a))))
		return trimZeros(strconv.FormatFloat(f, 'f', decimals, 64))
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', figureDigits, 64), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// trimZeros drops the trailing zeros of a decimal's fraction, and its
// point when nothing is left after it.
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

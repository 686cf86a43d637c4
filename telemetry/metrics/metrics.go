package metrics

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// The /metrics endpoint writes the Prometheus text exposition format
// (version 0.0.4) itself rather than going through client_golang: the
// metrics are already gathered once a second into a Snapshot and lock-free
// histograms, so client_golang's registry, descriptors and collectors would
// add a layer (and its protobuf and common modules) only to copy the same
// numbers. The format is a few line shapes, written here and checked by a
// parser in the tests:
//
//	# HELP name text
//	# TYPE name counter|gauge|histogram
//	name{label="value",...} 1.5
//	name_bucket{...,le="0.000001024"} 3   (cumulative, ending with le="+Inf")
//	name_sum{...} 0.25
//	name_count{...} 7

// MetricType is the TYPE of a metric family.
type MetricType string

// The metric types used here.
const (
	Counter       MetricType = "counter"
	Gauge         MetricType = "gauge"
	HistogramType MetricType = "histogram"
)

// Latency histograms are exported with one bucket per power of two of
// nanoseconds from 2^leMinBits (about 1 us) to 2^leMaxBits (68.7 s): these
// are bucket edges of both Histogram and the eBPF log2 slots, so the
// exported counts are exact, and 27 buckets keep a scrape small. A bucket
// "le" holds the values below its bound.
const (
	leMinBits = 10
	leMaxBits = histMaxBits
)

// LatencyBuckets is the number of finite buckets ("le" below +Inf) of every
// exported latency histogram.
const LatencyBuckets = leMaxBits - leMinBits + 1

// MetricWriter writes metric families in the text format. Errors stick:
// after the first failed write the rest are dropped and Err reports it.
// Families must each be written whole (Header, then all their samples),
// which the format requires.
type MetricWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

// NewMetricWriter writes to w; call Flush at the end.
func NewMetricWriter(w io.Writer) *MetricWriter {
	return &MetricWriter{w: bufio.NewWriter(w)}
}

// Header starts a metric family.
func (m *MetricWriter) Header(name, help string, typ MetricType) {
	b := append(m.buf[:0], "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	b = append(b, '\n')
	m.write(b)
}

// Value writes one sample. labels alternate names and values:
// Value("x", 1, "device", "lo").
func (m *MetricWriter) Value(name string, v float64, labels ...string) {
	b := append(m.buf[:0], name...)
	b = appendLabels(b, labels, "", "")
	b = append(b, ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	m.write(b)
}

// Histogram writes the buckets, sum and count of a latency histogram in
// seconds.
func (m *MetricWriter) Histogram(name string, s *HistogramSnapshot, labels ...string) {
	var cum [leMaxBits - leMinBits + 1]uint64
	for k := leMinBits; k <= leMaxBits; k++ {
		cum[k-leMinBits] = s.countBelow(k)
	}
	m.buckets(name, cum[:], s.Count(), float64(s.Sum)/1e9, labels)
}

// Log2Histogram writes a histogram kept in log2 nanosecond slots, as the
// eBPF block probe keeps them (slots[j] counts values in [2^j, 2^(j+1)) ns),
// with the same buckets as Histogram; count and sumSec cover every slot.
func (m *MetricWriter) Log2Histogram(name string, slots []uint64, count uint64, sumSec float64, labels ...string) {
	m.buckets(name, slotsCumulative(slots), count, sumSec, labels)
}

// slotsCumulative turns log2 slots into counts below 2^k ns for the
// exported k: slot j holds [2^j, 2^(j+1)), so it is below 2^k when j < k.
func slotsCumulative(slots []uint64) []uint64 {
	out := make([]uint64, LatencyBuckets)
	var run uint64
	j := 0
	for k := leMinBits; k <= leMaxBits; k++ {
		for ; j < k && j < len(slots); j++ {
			run += slots[j]
		}
		out[k-leMinBits] = run
	}
	return out
}

// buckets writes cum[i] as the bucket le = 2^(leMinBits+i) ns.
func (m *MetricWriter) buckets(name string, cum []uint64, count uint64, sumSec float64, labels []string) {
	bucket := name + "_bucket"
	for i, c := range cum {
		le := strconv.FormatFloat(math.Ldexp(1, leMinBits+i)/1e9, 'g', -1, 64)
		m.sample(bucket, labels, le, float64(c))
	}
	m.sample(bucket, labels, "+Inf", float64(count))
	m.Value(name+"_sum", sumSec, labels...)
	m.Value(name+"_count", float64(count), labels...)
}

func (m *MetricWriter) sample(name string, labels []string, le string, v float64) {
	b := append(m.buf[:0], name...)
	b = appendLabels(b, labels, "le", le)
	b = append(b, ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	m.write(b)
}

func (m *MetricWriter) write(b []byte) {
	m.buf = b[:0]
	if m.err == nil {
		_, m.err = m.w.Write(b)
	}
}

// Flush writes out what is buffered and returns the first error.
func (m *MetricWriter) Flush() error {
	if m.err == nil {
		m.err = m.w.Flush()
	}
	return m.err
}

// appendLabels writes {a="x",b="y"} with an optional extra pair (for le).
func appendLabels(b []byte, labels []string, extraName, extraValue string) []byte {
	if len(labels) < 2 && extraName == "" {
		return b
	}
	b = append(b, '{')
	for i := 0; i+1 < len(labels); i += 2 {
		b = appendPair(b, labels[i], labels[i+1])
		b = append(b, ',')
	}
	if extraName != "" {
		b = appendPair(b, extraName, extraValue)
		b = append(b, ',')
	}
	b[len(b)-1] = '}'
	return b
}

func appendPair(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

// appendEscaped escapes backslash and newline, and in label values also
// the double quote, as the format asks.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// Collector is anything that can write metric families: the Sampler, or a
// controller's own gauges through CollectorFunc.
type Collector interface {
	WriteMetrics(w *MetricWriter)
}

// CollectorFunc adapts a function to Collector.
type CollectorFunc func(w *MetricWriter)

// WriteMetrics calls f(w).
func (f CollectorFunc) WriteMetrics(w *MetricWriter) { f(w) }

// Handler serves the collectors' metrics, in order, on each GET: mount it
// at /metrics on the node and on the controller. Metric family names must
// be unique across the collectors.
func Handler(cs ...Collector) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		mw := NewMetricWriter(w)
		for _, c := range cs {
			c.WriteMetrics(mw)
		}
		_ = mw.Flush() // the client went away; nothing to tell it
	})
}

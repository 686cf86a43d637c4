package metrics

import (
	"log/slog"
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a fresh registry (never the global default one, so
// two nodes in one test process keep their figures apart) holding the Go
// runtime's and the process's collectors (go_*, process_*) and cs.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	all := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, cs...)
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// Handler serves reg on /metrics in the format the scraper negotiates
// (text or protobuf). A collector's error is logged to log (nil:
// slog.Default()) and the rest is still served.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg, // promhttp_metric_handler_errors_total
	})
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: scrape", "err", v) }

// Latency histograms are exported as classic Prometheus histograms with
// one bucket per power of two of nanoseconds, from 2^exportMinBits (about
// 1 us) to 2^exportMaxBits (68.7 s). Classic rather than native: every
// Prometheus and Grafana reads them from the text format, while native
// histograms need protobuf scraping and a feature flag on the server. And
// powers of two are bucket edges of both layouts (RequestLayout and the
// eBPF probe's Log2Layout), so the exported counts are exact copies of the
// in-process ones, not re-binned estimates; 27 buckets keep a scrape of a
// few ops small. Values exactly at an edge land one bucket higher than
// Prometheus' "le" (less or equal) would put them: a nanosecond.
const (
	exportMinBits = 10
	exportMaxBits = requestMaxBits
)

// ExportBuckets is the number of finite buckets ("le" below +Inf) of
// every exported latency histogram.
const ExportBuckets = exportMaxBits - exportMinBits + 1

// ConstHistogram turns a snapshot into a Prometheus histogram in seconds
// for desc, whose variable labels take labelValues.
func ConstHistogram(desc *prometheus.Desc, s *HistogramSnapshot, labelValues ...string) (prometheus.Metric, error) {
	buckets := make(map[float64]uint64, ExportBuckets)
	for k := exportMinBits; k <= exportMaxBits; k++ {
		buckets[math.Ldexp(1, k)/1e9] = s.CountBelow(k)
	}
	return prometheus.NewConstHistogram(desc, s.Count(), float64(s.Sum)/1e9, buckets, labelValues...)
}

// Collect sends m, or an invalid metric carrying err so the scrape
// reports it (promhttp logs it and serves the rest).
func Collect(ch chan<- prometheus.Metric, desc *prometheus.Desc, m prometheus.Metric, err error) {
	if err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	ch <- m
}

package metrics

import (
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Parse reads the Prometheus text exposition format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metrics: parse: %w", err)
	}
	return fams, nil
}

// Scrape gets url (an http:// address of /metrics) with c (nil:
// http.DefaultClient) in the text format and parses it.
func Scrape(c *http.Client, url string) (Families, error) {
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("metrics: scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: scrape %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Find returns the series of family name whose labels include all of
// labels (alternating names and values), or nil.
func (f Families) Find(name string, labels ...string) *dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	for _, m := range fam.Metric {
		if hasLabels(m, labels) {
			return m
		}
	}
	return nil
}

// Value is the value of a counter, gauge or untyped series found as by
// Find; ok is false when there is none.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	m := f.Find(name, labels...)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

// Sum adds up the counter or gauge values of every series of family name
// whose labels include labels.
func (f Families) Sum(name string, labels ...string) float64 {
	var t float64
	if fam := f[name]; fam != nil {
		for _, m := range fam.Metric {
			if hasLabels(m, labels) {
				t += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return t
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

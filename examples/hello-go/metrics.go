package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const metricPrefix = "hello_go"

type reqKey struct {
	path string
	code int
}

// durationBuckets are client_golang's default buckets (prometheus.DefBuckets): 5ms to 10s.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// histogram holds one path's request durations: a count per bucket (the last one +Inf), not
// yet cumulative, and their sum.
type histogram struct {
	counts []uint64
	sum    float64
	count  uint64
}

func (h *histogram) observe(seconds float64) {
	// The first bucket whose upper bound (le) is at least the duration.
	h.counts[sort.SearchFloat64s(durationBuckets, seconds)]++
	h.sum += seconds
	h.count++
}

// metrics counts HTTP requests by path and status code, and times them by path.
type metrics struct {
	mu        sync.Mutex
	requests  map[reqKey]uint64
	durations map[string]*histogram
}

func newMetrics() *metrics {
	return &metrics{requests: make(map[reqKey]uint64), durations: make(map[string]*histogram)}
}

// observe records one answered request.
func (m *metrics) observe(path string, code int, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqKey{path, code}]++
	h, ok := m.durations[path]
	if !ok {
		h = &histogram{counts: make([]uint64, len(durationBuckets)+1)}
		m.durations[path] = h
	}
	h.observe(took.Seconds())
}

// write renders the Prometheus text exposition format (version 0.0.4).
func (m *metrics) write(w io.Writer, start, now time.Time) {
	fmt.Fprintf(w, "# HELP %s_build_info Build information.\n", metricPrefix)
	fmt.Fprintf(w, "# TYPE %s_build_info gauge\n", metricPrefix)
	fmt.Fprintf(w, "%s_build_info{version=\"%s\",build_time=\"%s\"} 1\n",
		metricPrefix, escapeLabel(version), escapeLabel(buildTime))

	m.mu.Lock()
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].path != keys[j].path {
			return keys[i].path < keys[j].path
		}
		return keys[i].code < keys[j].code
	})
	fmt.Fprintf(w, "# HELP %s_http_requests_total HTTP requests by path and status code.\n", metricPrefix)
	fmt.Fprintf(w, "# TYPE %s_http_requests_total counter\n", metricPrefix)
	for _, k := range keys {
		fmt.Fprintf(w, "%s_http_requests_total{path=\"%s\",code=\"%d\"} %d\n",
			metricPrefix, escapeLabel(k.path), k.code, m.requests[k])
	}
	m.writeDurations(w)
	m.mu.Unlock()

	fmt.Fprintf(w, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n")
	fmt.Fprintf(w, "# TYPE process_start_time_seconds gauge\n")
	fmt.Fprintf(w, "process_start_time_seconds %s\n", formatSeconds(float64(start.UnixMilli())/1000))
	fmt.Fprintf(w, "# HELP %s_uptime_seconds Seconds since the process started.\n", metricPrefix)
	fmt.Fprintf(w, "# TYPE %s_uptime_seconds gauge\n", metricPrefix)
	fmt.Fprintf(w, "%s_uptime_seconds %s\n", metricPrefix, formatSeconds(now.Sub(start).Seconds()))
}

// writeDurations renders the histogram as Prometheus reads one: cumulative buckets ending
// with le="+Inf" (which equals _count), then _sum and _count. The caller holds m.mu.
func (m *metrics) writeDurations(w io.Writer) {
	name := metricPrefix + "_http_request_duration_seconds"
	fmt.Fprintf(w, "# HELP %s Time taken to answer HTTP requests, by path.\n", name)
	fmt.Fprintf(w, "# TYPE %s histogram\n", name)
	paths := make([]string, 0, len(m.durations))
	for p := range m.durations {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		h, label := m.durations[p], escapeLabel(p)
		var cumulative uint64
		for i, count := range h.counts {
			cumulative += count
			le := "+Inf"
			if i < len(durationBuckets) {
				le = strconv.FormatFloat(durationBuckets[i], 'g', -1, 64)
			}
			fmt.Fprintf(w, "%s_bucket{path=\"%s\",le=\"%s\"} %d\n", name, label, le, cumulative)
		}
		fmt.Fprintf(w, "%s_sum{path=\"%s\"} %s\n", name, label, strconv.FormatFloat(h.sum, 'g', -1, 64))
		fmt.Fprintf(w, "%s_count{path=\"%s\"} %d\n", name, label, h.count)
	}
}

func formatSeconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func (a *app) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	a.metrics.write(w, a.start, time.Now())
}

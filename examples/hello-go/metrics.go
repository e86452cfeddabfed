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

// metrics counts HTTP requests by path and status code.
type metrics struct {
	mu       sync.Mutex
	requests map[reqKey]uint64
}

func newMetrics() *metrics { return &metrics{requests: make(map[reqKey]uint64)} }

func (m *metrics) inc(path string, code int) {
	m.mu.Lock()
	m.requests[reqKey{path, code}]++
	m.mu.Unlock()
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
	m.mu.Unlock()

	fmt.Fprintf(w, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n")
	fmt.Fprintf(w, "# TYPE process_start_time_seconds gauge\n")
	fmt.Fprintf(w, "process_start_time_seconds %s\n", formatSeconds(float64(start.UnixMilli())/1000))
	fmt.Fprintf(w, "# HELP %s_uptime_seconds Seconds since the process started.\n", metricPrefix)
	fmt.Fprintf(w, "# TYPE %s_uptime_seconds gauge\n", metricPrefix)
	fmt.Fprintf(w, "%s_uptime_seconds %s\n", metricPrefix, formatSeconds(now.Sub(start).Seconds()))
}

func formatSeconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func (a *app) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	a.metrics.write(w, a.start, time.Now())
}

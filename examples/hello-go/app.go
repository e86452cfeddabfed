package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// app is the HTTP handler: routing plus request counting and timing.
type app struct {
	start    time.Time
	greeting string
	metrics  *metrics
}

func newApp(start time.Time, greeting string) *app {
	return &app{start: start, greeting: greeting, metrics: newMetrics()}
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	begin := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	path := r.URL.Path
	known := path == "/" || path == "/health" || path == "/metrics"
	if !known {
		path = "other"
	}
	switch {
	case known && r.Method != http.MethodGet && r.Method != http.MethodHead:
		rec.Header().Set("Allow", "GET, HEAD")
		http.Error(rec, "method not allowed", http.StatusMethodNotAllowed)
	case path == "/":
		if !delay(rec, r) {
			break
		}
		rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(rec, "%s from %s %s\n", a.greeting, appName, version)
	case path == "/health":
		a.serveHealth(rec, r)
	case path == "/metrics":
		a.serveMetrics(rec, r)
	default:
		http.NotFound(rec, r)
	}
	a.metrics.observe(path, rec.code, time.Since(begin))
}

// maxDelay bounds GET /?delay=D.
const maxDelay = 30 * time.Second

// delay holds a request for ?delay=D (a slow request, to watch a graceful shutdown finish
// it). It reports false when it answered the request itself: a bad value, or a client that
// went away.
func delay(w http.ResponseWriter, r *http.Request) bool {
	value := r.URL.Query().Get("delay")
	if value == "" {
		return true
	}
	d, err := time.ParseDuration(value)
	if err != nil || d < 0 || d > maxDelay {
		http.Error(w, fmt.Sprintf("delay must be a duration up to %s, like 500ms", maxDelay), http.StatusBadRequest)
		return false
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

// statusRecorder remembers the status code written by a handler.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush passes a handler's flush on, so what it wrote so far leaves at once.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// loadGreeting reads the "greeting" key from a YAML file, returning
// "hello" when the file or key is missing.
func loadGreeting(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "hello"
	}
	defer f.Close()
	if g, ok := parseGreeting(bufio.NewScanner(f)); ok {
		return g
	}
	return "hello"
}

// parseGreeting understands just `greeting: text` and `greeting: "text"`
// (or single quotes) at the top level, with optional trailing comments.
func parseGreeting(sc *bufio.Scanner) (string, bool) {
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "greeting:") {
			continue
		}
		v := strings.TrimSpace(strings.TrimPrefix(line, "greeting:"))
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
			if end := strings.IndexByte(v[1:], v[0]); end >= 0 {
				return v[1 : 1+end], true
			}
		}
		if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		if v != "" && !strings.HasPrefix(v, "#") {
			return v, true
		}
	}
	return "", false
}

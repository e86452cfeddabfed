package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, path, nil))
	return rr.Result()
}

func TestHealthUp(t *testing.T) {
	t.Setenv("HELLO_HEALTH_DOWN", "")
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	resp := get(t, newApp(time.Now(), "hello"), "/health")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "version", "buildTime", "checks"} {
		if _, ok := body[k]; !ok {
			t.Errorf("missing key %q in %v", k, body)
		}
	}
	if body["status"] != "UP" {
		t.Errorf("status = %v, want UP", body["status"])
	}
	checks, _ := body["checks"].(map[string]any)
	if checks["state_dir"] != "UP" {
		t.Errorf("state_dir = %v, want UP", checks["state_dir"])
	}
}

func TestHealthForcedDown(t *testing.T) {
	t.Setenv("HELLO_HEALTH_DOWN", "1")
	t.Setenv("STATE_DIRECTORY", "")
	resp := get(t, newApp(time.Now(), "hello"), "/health")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", resp.StatusCode)
	}
	var rep healthReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.Status != "DOWN" || rep.Checks["forced"] != "DOWN: HELLO_HEALTH_DOWN is set" {
		t.Errorf("unexpected report %+v", rep)
	}
	if rep.Checks["state_dir"] != "UP (no STATE_DIRECTORY)" {
		t.Errorf("state_dir = %q", rep.Checks["state_dir"])
	}
}

func TestHealthSlowSendsHeadersThenTrickles(t *testing.T) {
	t.Setenv("HELLO_HEALTH_SLOW", "1")
	t.Setenv("STATE_DIRECTORY", "")
	pace := slowHealthPace
	slowHealthPace = 20 * time.Millisecond
	defer func() { slowHealthPace = pace }()
	srv := httptest.NewServer(newApp(time.Now(), "hello"))
	defer srv.Close()
	start := time.Now()
	resp, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	headers := time.Since(start)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	whole := time.Since(start)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(body)) {
		t.Fatalf("status %d, Content-Length %d, body %d bytes", resp.StatusCode, resp.ContentLength, len(body))
	}
	if floor := time.Duration(len(body)) * slowHealthPace; whole < floor || headers > floor/2 {
		t.Errorf("headers after %s, the whole body after %s: want the headers at once and the body over %s", headers, whole, floor)
	}
	var rep healthReport
	if err := json.Unmarshal(body, &rep); err != nil || rep.Status != "UP" {
		t.Errorf("body %q: %v", body, err)
	}
}

func TestHealthStateDirMissing(t *testing.T) {
	t.Setenv("HELLO_HEALTH_DOWN", "")
	t.Setenv("STATE_DIRECTORY", t.TempDir()+"/missing")
	if resp := get(t, newApp(time.Now(), "hello"), "/health"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	a := newApp(time.Now().Add(-2*time.Second), "hello")
	get(t, a, "/")
	get(t, a, "/nope")
	get(t, a, "/nope/again")
	resp := get(t, a, "/metrics")
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4" {
		t.Errorf("Content-Type = %q", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	out := string(b)
	for _, want := range []string{
		"# TYPE hello_go_build_info gauge\n",
		`hello_go_build_info{version="dev",build_time="unknown"} 1` + "\n",
		"# TYPE hello_go_http_requests_total counter\n",
		`hello_go_http_requests_total{path="/",code="200"} 1` + "\n",
		`hello_go_http_requests_total{path="other",code="404"} 2` + "\n",
		"# TYPE process_start_time_seconds gauge\n",
		"# TYPE hello_go_uptime_seconds gauge\n",
		"# TYPE hello_go_http_request_duration_seconds histogram\n",
		`hello_go_http_request_duration_seconds_count{path="other"} 2` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics missing %q:\n%s", want, out)
		}
	}
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [0-9.e+-]+$`)
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "# ") && !sample.MatchString(line) {
			t.Errorf("malformed sample line %q", line)
		}
	}
}

func TestRootAndNotFound(t *testing.T) {
	a := newApp(time.Now(), "howdy")
	b, _ := io.ReadAll(get(t, a, "/").Body)
	if got, want := string(b), "howdy from hello-go dev\n"; got != want {
		t.Errorf("GET / = %q, want %q", got, want)
	}
	if resp := get(t, a, "/missing"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /missing = %d, want 404", resp.StatusCode)
	}
}

func TestDelay(t *testing.T) {
	a := newApp(time.Now(), "hello")
	start := time.Now()
	resp := get(t, a, "/?delay=50ms")
	if resp.StatusCode != http.StatusOK || time.Since(start) < 50*time.Millisecond {
		t.Errorf("GET /?delay=50ms = %d after %s", resp.StatusCode, time.Since(start))
	}
	for _, bad := range []string{"soon", "-1s", "31s"} {
		if resp := get(t, a, "/?delay="+bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /?delay=%s = %d, want 400", bad, resp.StatusCode)
		}
	}
}

func TestParseGreeting(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{"greeting: \"hi there\"\n", "hi there", true},
		{"# comment\ngreeting: hey # trailing\n", "hey", true},
		{"greeting: 'single'\n", "single", true},
		{"other: x\n  greeting: nested\n", "", false},
		{"greeting:\n", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := parseGreeting(bufio.NewScanner(strings.NewReader(c.in)))
		if got != c.want || ok != c.ok {
			t.Errorf("parseGreeting(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestPassedSocketsAreOnlyThisProcesssOwn(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	cases := []struct {
		pid, fds string
		want     int
	}{
		{self, "2", 2},
		{strconv.Itoa(os.Getpid() + 1), "1", 0}, // meant for another process
		{self, "0", 0},
		{self, "many", 0},
		{"", "1", 0},
	}
	for _, c := range cases {
		t.Setenv("LISTEN_PID", c.pid)
		t.Setenv("LISTEN_FDS", c.fds)
		if got := passedSockets(); got != c.want {
			t.Errorf("LISTEN_PID=%s LISTEN_FDS=%s: %d sockets, want %d", c.pid, c.fds, got, c.want)
		}
		if _, set := os.LookupEnv("LISTEN_FDS"); set {
			t.Errorf("LISTEN_FDS is still set")
		}
	}
}

func TestRequestDurationHistogram(t *testing.T) {
	m := newMetrics()
	m.observe("/", 200, 3*time.Millisecond)
	m.observe("/", 200, 300*time.Millisecond)
	m.observe("/", 500, 20*time.Second)
	var b strings.Builder
	m.writeDurations(&b)
	out := b.String()
	for _, want := range []string{
		`hello_go_http_request_duration_seconds_bucket{path="/",le="0.005"} 1` + "\n",
		`hello_go_http_request_duration_seconds_bucket{path="/",le="0.25"} 1` + "\n",
		`hello_go_http_request_duration_seconds_bucket{path="/",le="0.5"} 2` + "\n",
		`hello_go_http_request_duration_seconds_bucket{path="/",le="10"} 2` + "\n",
		`hello_go_http_request_duration_seconds_bucket{path="/",le="+Inf"} 3` + "\n",
		`hello_go_http_request_duration_seconds_sum{path="/"} 20.303` + "\n",
		`hello_go_http_request_duration_seconds_count{path="/"} 3` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("histogram missing %q:\n%s", want, out)
		}
	}
}

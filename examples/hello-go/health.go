package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// slowHealthPace is how often a /health under HELLO_HEALTH_SLOW sends the next byte of its body.
var slowHealthPace = time.Second

type healthReport struct {
	Status    string            `json:"status"`
	Version   string            `json:"version"`
	BuildTime string            `json:"buildTime"`
	Checks    map[string]string `json:"checks"`
}

// health runs the checks; the service is UP only if every check is UP.
func health() healthReport {
	checks := map[string]string{"state_dir": checkStateDir(os.Getenv("STATE_DIRECTORY"))}
	if os.Getenv("HELLO_HEALTH_DOWN") != "" {
		checks["forced"] = "DOWN: HELLO_HEALTH_DOWN is set"
	}
	status := "UP"
	for _, c := range checks {
		if strings.HasPrefix(c, "DOWN") {
			status = "DOWN"
		}
	}
	return healthReport{Status: status, Version: version, BuildTime: buildTime, Checks: checks}
}

// checkStateDir verifies that dir (systemd's StateDirectory=) is writable.
func checkStateDir(dir string) string {
	if dir == "" {
		return "UP (no STATE_DIRECTORY)"
	}
	// systemd may pass several colon-separated directories; check the first.
	if i := strings.IndexByte(dir, ':'); i >= 0 {
		dir = dir[:i]
	}
	f, err := os.CreateTemp(dir, ".health-*")
	if err != nil {
		return "DOWN: " + err.Error()
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return "DOWN: " + err.Error()
	}
	return "UP"
}

func (a *app) serveHealth(w http.ResponseWriter, _ *http.Request) {
	rep := health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if rep.Status != "UP" {
		status = http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(rep)
	body = append(body, '\n')
	if os.Getenv("HELLO_HEALTH_SLOW") != "" {
		trickle(w, status, body)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// trickle sends the headers at once, then the body a byte every slowHealthPace: a health check
// that starts to answer but never finishes in time, which only a deadline on the whole answer
// catches (an idle timeout never fires). It goes on while the client reads: a client that only
// closed its sending half (as an SSH tunnel does once the request is sent) cancels the
// request's context, yet still waits for the answer.
func trickle(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	flusher, _ := w.(http.Flusher)
	for i := range body {
		if flusher != nil {
			flusher.Flush()
		}
		time.Sleep(slowHealthPace)
		if _, err := w.Write(body[i : i+1]); err != nil {
			return
		}
	}
}

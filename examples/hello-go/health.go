package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
)

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
	if rep.Status != "UP" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTCPModeAnswersPingAndItsHealthcheckPasses(t *testing.T) {
	t.Setenv("SHIPIT_HEALTH_ADDR", "")
	t.Setenv("SHIPIT_HEALTH", "")
	t.Setenv("HELLO_HEALTH_DOWN", "")
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveTCP(ctx, ln) }()
	var out bytes.Buffer
	if err := healthcheck(modeTCP, ln.Addr().String(), &out); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	var rep healthReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Version != version {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveTCP: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("serveTCP did not stop")
	}
	if err := healthcheck(modeTCP, ln.Addr().String(), &out); err == nil {
		t.Fatal("a healthcheck of a stopped service passed")
	}
}

func TestWorkerHealthcheckIsItsOwnChecks(t *testing.T) {
	t.Setenv("SHIPIT_HEALTH_ADDR", "")
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	t.Setenv("HELLO_HEALTH_DOWN", "")
	var out bytes.Buffer
	if err := healthcheck(modeWorker, "", &out); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	if !strings.Contains(out.String(), `"version"`) {
		t.Errorf("no version in %q", out.String())
	}
	t.Setenv("HELLO_HEALTH_DOWN", "1")
	if err := healthcheck(modeWorker, "", &out); err == nil {
		t.Fatal("a worker forced DOWN passed its healthcheck")
	}
}

func TestHTTPHealthcheckAsksTheAddressShipitGives(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	t.Setenv("HELLO_HEALTH_DOWN", "")
	srv := httptest.NewServer(newApp(time.Now(), "hello"))
	defer srv.Close()
	t.Setenv("SHIPIT_HEALTH_ADDR", strings.TrimPrefix(srv.URL, "http://"))
	var out bytes.Buffer
	if err := healthcheck(modeHTTP, "127.0.0.1:1", &out); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	t.Setenv("HELLO_HEALTH_DOWN", "1")
	if err := healthcheck(modeHTTP, "127.0.0.1:1", &out); err == nil {
		t.Fatal("a service answering 503 passed its healthcheck")
	}
}

func TestAPreflightWithoutAScratchSocketChecksItself(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	t.Setenv("HELLO_HEALTH_DOWN", "")
	t.Setenv("SHIPIT_HEALTH_ADDR", "")
	t.Setenv("SHIPIT_HEALTH", "preflight")
	var out bytes.Buffer
	if err := healthcheck(modeHTTP, "127.0.0.1:1", &out); err != nil {
		t.Fatalf("healthcheck asked the old release: %v", err)
	}
}

func TestModesAreChecked(t *testing.T) {
	for _, bad := range []string{"", "grpc"} {
		if err := run([]string{"--mode", bad}); err == nil || !strings.Contains(err.Error(), "--mode") {
			t.Errorf("--mode %q: %v", bad, err)
		}
	}
}

// Command hello-cgo is shipit's example of a Go service with C code (cgo):
// /health reports what the C code, compiled into the static binary, answers.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// Stamped by shipit with -ldflags "-X main.version=... -X main.buildTime=...".
var (
	version   = "dev"
	buildTime = "unknown"
)

func main() {
	log.SetFlags(0) // journald adds timestamps
	port := flag.Int("port", 8080, "TCP port to listen on (0.0.0.0:PORT)")
	flag.Parse()
	if *port < 1 || *port > 65535 {
		log.Fatalf("hello-cgo: invalid -port %d", *port)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", serveHealth)
	srv := &http.Server{
		Addr:              ":" + strconv.Itoa(*port),
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("hello-cgo %s (built %s) listening on %s", version, buildTime, srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Printf("hello-cgo: %v", err)
		os.Exit(1)
	}
}

func serveHealth(w http.ResponseWriter, _ *http.Request) {
	native := checkNative()
	status, code := "UP", http.StatusOK
	if native[:2] != "UP" {
		status, code = "DOWN", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]interface{}{
		"status":    status,
		"version":   version,
		"buildTime": buildTime,
		"checks":    map[string]string{"native": native},
	})
}

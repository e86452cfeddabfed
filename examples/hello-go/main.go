// Command hello-go is a tiny example HTTP service for shipit.
//
// It serves a greeting on /, a JSON health report on /health and
// Prometheus metrics on /metrics, takes its listening sockets from
// systemd when a socket unit passes them (else binds --port), and shuts
// down gracefully on SIGTERM/SIGINT. Other modes and `healthcheck`: modes.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stamped at build time with
// -ldflags "-X main.version=... -X main.buildTime=...".
var (
	version   = "dev"
	buildTime = "unknown"
)

const (
	appName         = "hello-go"
	shutdownTimeout = 10 * time.Second
)

func main() {
	log.SetFlags(0) // journald adds timestamps
	if err := run(os.Args[1:]); err != nil {
		log.Printf("%s: error: %v", appName, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet(appName, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by main
	portFlag := fs.String("port", "8080", "TCP port to listen on (0.0.0.0:PORT)")
	mode := fs.String("mode", modeHTTP, "what to serve: http, tcp (PING/PONG lines) or worker (nothing)")
	command := ""
	if len(args) > 0 && args[0] == "healthcheck" {
		command, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	port, err := strconv.ParseUint(*portFlag, 10, 16)
	if err != nil || port == 0 {
		return fmt.Errorf("invalid --port %q: must be an integer in 1..65535", *portFlag)
	}
	if err := checkMode(*mode); err != nil {
		return err
	}
	if command == "healthcheck" {
		return healthcheck(*mode, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))), os.Stdout)
	}
	// A release that dies (at once, or after HELLO_CRASH's duration, serving nothing
	// meanwhile), for showing (and testing) how a deploy catches a crash.
	if crash := os.Getenv("HELLO_CRASH"); crash != "" {
		if d, err := time.ParseDuration(crash); err == nil {
			time.Sleep(d)
		}
		return fmt.Errorf("HELLO_CRASH=%s: exiting", crash)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *mode == modeWorker {
		log.Printf("%s %s (built %s) working, listening on nothing", appName, version, buildTime)
		work(ctx)
		log.Printf("%s: stopped", appName)
		return nil
	}

	app := newApp(time.Now(), loadGreeting("config.yaml"))
	lns, fromSystemd, err := listeners(net.JoinHostPort("0.0.0.0", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	if *mode == modeTCP {
		log.Printf("%s %s (built %s) answering PING on %s", appName, version, buildTime, lns[0].Addr())
		return serveTCP(ctx, lns[0])
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, len(lns))
	addrs := make([]string, 0, len(lns))
	for _, ln := range lns {
		go func(ln net.Listener) { errc <- srv.Serve(ln) }(ln)
		addrs = append(addrs, ln.Addr().String())
	}
	origin := "its own socket"
	if fromSystemd {
		origin = "sockets from systemd"
	}
	log.Printf("%s %s (built %s) listening on %s (%s)", appName, version, buildTime, strings.Join(addrs, ", "), origin)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process the default way
	log.Printf("%s: signal received, shutting down (waiting up to %s for in-flight requests)", appName, shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Shutdown closes this process's listeners at once (systemd keeps its copy of a passed
	// socket open, so new connections queue for the next process), then waits for the
	// requests in flight. Serve returns as soon as it begins, so main must wait for it here.
	if err := srv.Shutdown(sctx); err != nil {
		log.Printf("%s: shutdown: %v", appName, err)
	}
	log.Printf("%s: stopped", appName)
	return nil
}

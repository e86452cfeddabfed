package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Modes: hello-go serves HTTP by default; "tcp" answers a line protocol (PING -> PONG) with no
// HTTP, as a cache or gRPC server would; "worker" listens on nothing, as a queue worker.
const (
	modeHTTP   = "http"
	modeTCP    = "tcp"
	modeWorker = "worker"
)

// healthTimeout bounds one healthcheck: shipit's [health] timeout is the real deadline.
const healthTimeout = 5 * time.Second

func checkMode(mode string) error {
	switch mode {
	case modeHTTP, modeTCP, modeWorker:
		return nil
	}
	return fmt.Errorf("invalid --mode %q: one of http, tcp or worker", mode)
}

// serveTCP answers each line: PING with PONG, anything else with an error, until ctx ends.
func serveTCP(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go answerLines(conn)
	}
}

func answerLines(conn net.Conn) {
	defer conn.Close()
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "PING":
			fmt.Fprint(conn, "PONG\r\n")
		default:
			fmt.Fprint(conn, "ERR unknown command\r\n")
		}
	}
}

// work stands for a queue worker: it logs now and then until ctx ends.
func work(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			log.Printf("%s: worker alive", appName)
		}
	}
}

// healthcheck is `hello-go healthcheck`: it asks the running service as its mode serves
// (a worker checks itself), prints the health report as JSON and says by its exit status
// whether the service is healthy. SHIPIT_HEALTH_ADDR, when set (shipit's pre-flight sets it
// to the scratch socket), is the address to ask instead of 127.0.0.1:PORT. A pre-flight
// without one (SHIPIT_HEALTH=preflight: no socket unit) has no new instance to ask, and the
// one listening is the old release: the check is then only its own, as a worker's.
func healthcheck(mode, addr string, out io.Writer) error {
	if a := os.Getenv("SHIPIT_HEALTH_ADDR"); a != "" {
		addr = a
	} else if os.Getenv("SHIPIT_HEALTH") == "preflight" {
		mode = modeWorker
	}
	switch mode {
	case modeHTTP:
		return httpHealthcheck(addr, out)
	case modeTCP:
		conn, err := net.DialTimeout("tcp", addr, healthTimeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(healthTimeout))
		fmt.Fprint(conn, "PING\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return fmt.Errorf("%s answered no line: %w", addr, err)
		}
		if strings.TrimSpace(line) != "PONG" {
			return fmt.Errorf("%s answered %q to PING", addr, strings.TrimSpace(line))
		}
	}
	rep := health()
	if err := json.NewEncoder(out).Encode(rep); err != nil {
		return err
	}
	if rep.Status != "UP" {
		return fmt.Errorf("status %s", rep.Status)
	}
	return nil
}

func httpHealthcheck(addr string, out io.Writer) error {
	client := http.Client{Timeout: healthTimeout}
	resp, err := client.Get("http://" + addr + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(out, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/health answered %d", resp.StatusCode)
	}
	return nil
}

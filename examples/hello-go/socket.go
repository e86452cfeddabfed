package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// firstPassedFD is where the sockets systemd passes begin (SD_LISTEN_FDS_START).
const firstPassedFD = 3

// listeners returns the listening sockets systemd passed (socket activation: a .socket unit
// holds them, so connections wait in the kernel's queue while this process restarts), or
// else a socket of its own on addr. The bool says which.
func listeners(addr string) ([]net.Listener, bool, error) {
	n := passedSockets()
	if n == 0 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, false, err
		}
		return []net.Listener{ln}, false, nil
	}
	lns := make([]net.Listener, 0, n)
	for fd := firstPassedFD; fd < firstPassedFD+n; fd++ {
		f := os.NewFile(uintptr(fd), "socket from systemd")
		ln, err := net.FileListener(f)
		f.Close() // the listener holds its own duplicate
		if err != nil {
			return nil, true, fmt.Errorf("socket %d from systemd: %w", fd, err)
		}
		lns = append(lns, ln)
	}
	return lns, true, nil
}

// passedSockets is how many sockets systemd passed: LISTEN_FDS, but only when LISTEN_PID is
// this process (the variables may have been meant for a parent). They are removed either
// way, so a child process never takes the sockets for its own.
func passedSockets() int {
	pid, pidErr := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, nErr := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	for _, name := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(name)
	}
	if pidErr != nil || nErr != nil || pid != os.Getpid() || n < 1 {
		return 0
	}
	return n
}

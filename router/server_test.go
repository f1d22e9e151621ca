package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedis starts a throw-away redis-server on a free loopback port (no
// persistence, data in a temp dir), stopped by its PID when the test ends,
// and returns a RESP2 client to it. It skips the test if redis-server is not
// installed. With cluster, the server is a cluster node (serving no slots):
// Redis 7.0 answers CLUSTER KEYSLOT only in cluster mode.
func startRedis(t testing.TB, cluster bool) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		logf := filepath.Join(dir, fmt.Sprintf("redis-%d.log", attempt))
		argv := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--logfile", logf}
		if cluster {
			argv = append(argv, "--cluster-enabled", "yes",
				"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", attempt))
		}
		cmd := exec.Command(bin, argv...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		c := redis.NewClient(&redis.Options{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Protocol: 2,
			DisableIdentity: true, MaxRetries: -1, DialTimeout: time.Second,
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			lastErr = c.Ping(ctx).Err()
			cancel()
			if lastErr == nil {
				t.Cleanup(func() { c.Close(); stop() })
				return c
			}
			select {
			case <-exited:
			default:
				if time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					continue
				}
			}
			break
		}
		c.Close()
		stop()
		log, _ := os.ReadFile(logf)
		lastErr = fmt.Errorf("%v\n%s", lastErr, log)
	}
	t.Fatalf("redis-server did not come up: %v", lastErr)
	return nil
}

// freePort returns a port in [12000, 22000) that is free on loopback, and
// whose cluster bus port (+10000) is free too.
func freePort() (int, error) {
	for range 200 {
		p := 12000 + rand.IntN(10000)
		a, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p, nil
	}
	return 0, errors.New("no free port pair in 12000-22000")
}

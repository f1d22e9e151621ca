package dial

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestTLSToPlainServer: rediss:// to a redis-server without TLS fails within
// the dial timeout (5 s here) with a message that says what to check, by
// ferry's own dial and by go-redis clients with RedisDialer, whose dial
// retries must not wait the timeout again.
func TestTLSToPlainServer(t *testing.T) {
	redistest.Require(t)
	plain := redistest.Start(t)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	want := "TLS handshake failed — is TLS enabled on " + plain.Addr + "?"
	check := func(what string, err error, took time.Duration) {
		t.Helper()
		if err == nil || err.Error() != want && !errors.Is(err, ErrTLSHandshake) {
			t.Fatalf("%s: %v, want %q", what, err, want)
		}
		if took > 10*time.Second {
			t.Errorf("%s: failed after %s, want within the dial timeout", what, took)
		}
		t.Logf("%s: %v after %s", what, err, took.Round(time.Millisecond))
	}

	start := time.Now()
	_, err := Conn(context.Background(), Options{Addr: plain.Addr, TLS: cfg, Timeout: 5 * time.Second})
	check("Conn", err, time.Since(start))
	if err.Error() != want {
		t.Errorf("Conn: %q, want %q", err, want)
	}

	c := redis.NewClient(&redis.Options{Addr: plain.Addr, TLSConfig: cfg, DialTimeout: 5 * time.Second,
		Dialer: RedisDialer(cfg, 5*time.Second), Protocol: 2, DisableIdentity: true, MaxRetries: 2})
	defer c.Close()
	start = time.Now()
	err = c.Ping(context.Background()).Err()
	check("go-redis", err, time.Since(start))
}

// TestTLSHandshakeCancelled: ferry's stop during a handshake is a
// cancellation, not a TLS problem.
func TestTLSHandshakeCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent peer: the handshake waits
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Conn(ctx, Options{Addr: ln.Addr().String(), TLS: &tls.Config{MinVersion: tls.VersionTLS12}, Timeout: time.Minute})
		errc <- err
	}()
	cancel()
	err = <-errc
	if !errors.Is(err, context.Canceled) && (err == nil || errors.Is(err, ErrTLSHandshake)) {
		t.Errorf("cancelled handshake: %v", err)
	}
}

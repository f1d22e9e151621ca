package status

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// serve runs a Server built with opts on addr until the test ends and
// returns its base URL and the log it writes.
func serve(t *testing.T, addr string, opts ...Option) (string, *lockedBuf) {
	t.Helper()
	logs := &lockedBuf{}
	s, err := New(addr, true, zerolog.New(logs), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	_, port, _ := strings.Cut(s.Addr(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(s.Addr(), ":")
	}
	return "http://127.0.0.1:" + port, logs
}

// lockedBuf is a log written by the server's goroutine and read by the
// test.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// warnings are the warn-level lines of a JSON log.
func warnings(logs *lockedBuf) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"level":"warn"`) {
			out = append(out, l)
		}
	}
	return out
}

func TestPprofOffByDefault(t *testing.T) {
	url, logs := serve(t, "127.0.0.1:0")
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/profile", "/debug/pprof/trace", "/debug/pprof/heap"} {
		if code, _, _ := get(t, url+p); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 without pprof", p, code)
		}
	}
	if _, body, _ := get(t, url+"/"); strings.Contains(body, "pprof") {
		t.Errorf("the index lists pprof:\n%s", body)
	}
	if w := warnings(logs); len(w) > 0 {
		t.Errorf("warnings on a loopback address: %q", w)
	}
}

func TestPprofOn(t *testing.T) {
	url, _ := serve(t, "127.0.0.1:0", WithPprof(true))
	code, body, _ := get(t, url+"/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ with pprof on: %d\n%s", code, body)
	}
	if code, _, _ := get(t, url+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/goroutine: %d", code)
	}
}

// TestNonLoopbackWarns: a status server on every interface logs one warning
// naming what anyone who can reach it gets.
func TestNonLoopbackWarns(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		_, logs := serve(t, "0.0.0.0:0", WithPprof(pprof))
		w := warnings(logs)
		if len(w) != 1 {
			t.Fatalf("pprof %v: %d warnings, want 1: %q", pprof, len(w), w)
		}
		for _, want := range []string{"non-loopback", "/status", "/metrics", "/healthz", "without authentication"} {
			if !strings.Contains(w[0], want) {
				t.Errorf("warning %s lacks %q", w[0], want)
			}
		}
		if got := strings.Contains(w[0], "/debug/pprof/"); got != pprof {
			t.Errorf("pprof %v: warning %s names pprof: %v", pprof, w[0], got)
		}
	}
}

package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// shutdownGrace bounds the graceful shutdown once Run's context is done.
const shutdownGrace = 2 * time.Second

// Server serves the state of the registered jobs over HTTP:
//
//	GET /status        {"jobs":[Job…]}, sorted by name
//	GET /status/<job>  one Job, or 404
//	GET /metrics       Prometheus text format
//	GET /healthz       200 "ok", or 503 naming the failed jobs
//	GET /livez         200 "ok" while the process serves (Kubernetes liveness)
//	GET /readyz        200 "ok", or 503 naming each job part that is not
//	                   ready and why: a failed job, or a source link or
//	                   target connection down longer than UnreadyAfter
//	GET /debug/pprof/  Go profiles, only with WithPprof(true)
//
// A disabled Server (no address, or the default address was busy) accepts
// registrations and serves nothing.
type Server struct {
	log  zerolog.Logger
	ln   net.Listener // nil: disabled
	srv  *http.Server
	reg  *prometheus.Registry
	addr string

	pprof bool

	mu      sync.RWMutex
	sources map[string]Source

	stateMu sync.Mutex
	state   int // 0 new, 1 running, 2 closed
}

// New binds addr at once, so that a busy port is found before any job
// starts. addr "" disables the server. When binding fails and explicit is
// false (addr is the default, not something the user configured; another
// ferry may run on this host) New logs a warning and returns a disabled
// Server; when explicit is true it returns an error naming the address.
func New(addr string, explicit bool, log zerolog.Logger, opts ...Option) (*Server, error) {
	s := &Server{log: log, sources: map[string]Source{}}
	for _, o := range opts {
		o(s)
	}
	if addr == "" {
		return s, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		err = fmt.Errorf("status_addr %s: %w", addr, listenCause(err))
		if explicit {
			return nil, err
		}
		log.Warn().Err(err).Msg("status server disabled: the default status address is not available (another ferry on this host?); set status_addr to choose one, or \"off\"")
		return s, nil
	}
	s.ln = ln
	s.addr = ln.Addr().String()
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		&collector{s: s},
	)
	errLog := stdlog.New(logWriter{log}, "", 0)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveIndex)
	mux.HandleFunc("GET /status", s.serveStatus)
	mux.HandleFunc("GET /status/{job}", s.serveJob)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /livez", s.serveLive)
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:      errLog,
		ErrorHandling: promhttp.ContinueOnError,
	}))
	if s.pprof {
		// Profiles of a running job, for a slow sync: go tool pprof
		// http://<status_addr>/debug/pprof/profile?seconds=10. Off by
		// default: profiles show memory contents (keys, values).
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if !isLoopback(ln.Addr()) {
		log.Warn().Str("status_addr", s.addr).Msgf("the status server listens on a non-loopback address: %s served without authentication to anyone who can reach it", s.served())
	}
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
	return s, nil
}

// Option is an option of New.
type Option func(*Server)

// WithPprof serves /debug/pprof/ when on.
func WithPprof(on bool) Option { return func(s *Server) { s.pprof = on } }

// served lists what the server serves, for logs.
func (s *Server) served() string {
	l := "/status, /metrics, /healthz"
	if s.pprof {
		l += ", /debug/pprof/"
	}
	return l
}

// isLoopback reports whether a bound address is reachable from this host
// only (an unspecified address, 0.0.0.0 or ::, is every interface).
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// listenCause strips "listen tcp 127.0.0.1:9121: bind:" from a Listen
// error, keeping what went wrong ("address already in use"); errors.Is
// still sees the errno.
func listenCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var sc *os.SyscallError
	if errors.As(err, &sc) && sc.Err != nil {
		err = sc.Err
	}
	return err
}

// Register adds the job name, or replaces its Source.
func (s *Server) Register(name string, src Source) {
	if src == nil {
		s.Unregister(name)
		return
	}
	s.mu.Lock()
	s.sources[name] = src
	s.mu.Unlock()
}

// Unregister removes the job name.
func (s *Server) Unregister(name string) {
	s.mu.Lock()
	delete(s.sources, name)
	s.mu.Unlock()
}

// Addr is the bound address (the real port when addr had port 0), or ""
// when the server is disabled.
func (s *Server) Addr() string { return s.addr }

// Run serves until ctx is done, then shuts down gracefully: requests under
// way get up to 2 s to finish. A disabled Server just waits for ctx. Run
// may be called once.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		<-ctx.Done()
		return nil
	}
	s.stateMu.Lock()
	st := s.state
	if st == 0 {
		s.state = 1
	}
	s.stateMu.Unlock()
	switch st {
	case 1:
		return errors.New("status: Run called twice")
	case 2:
		return nil
	}
	s.log.Info().Str("status_addr", s.addr).Msgf("status server listening (%s)", s.served())
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(s.ln) }()
	select {
	case err := <-done:
		// Serve failed on its own (Close, or the listener died).
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("status server %s: %w", s.addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		// Requests still running after the grace period are cut.
		s.srv.Close()
	}
	<-done
	return nil
}

// Close releases the address at once and stops a running server without
// grace. It is only needed when Run is never called (an error between New
// and Run); Run returns nil once Close was called.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	s.stateMu.Lock()
	st := s.state
	s.state = 2
	s.stateMu.Unlock()
	switch st {
	case 0:
		return s.ln.Close()
	case 1:
		return s.srv.Close()
	}
	return nil
}

// jobs returns the snapshots of the registered jobs, sorted by name.
func (s *Server) jobs() []Job {
	s.mu.RLock()
	names := make([]string, 0, len(s.sources))
	srcs := make([]Source, 0, len(s.sources))
	for n := range s.sources {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		srcs = append(srcs, s.sources[n])
	}
	s.mu.RUnlock()
	// Sources are called without the lock: a slow one must not block
	// Register.
	out := make([]Job, len(names))
	for i, n := range names {
		out[i] = snapshot(n, srcs[i])
	}
	return out
}

func (s *Server) job(name string) (Job, bool) {
	s.mu.RLock()
	src, ok := s.sources[name]
	s.mu.RUnlock()
	if !ok {
		return Job{}, false
	}
	return snapshot(name, src), true
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "ferry\n\n/status        all jobs (JSON)\n/status/<job>  one job (JSON)\n/metrics       Prometheus metrics\n/healthz       200 unless a job failed\n")
	if s.pprof {
		fmt.Fprint(w, "/debug/pprof/  Go profiles\n")
	}
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Jobs []Job `json:"jobs"`
	}{s.jobs()})
}

func (s *Server) serveJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("job")
	j, ok := s.job(name)
	if !ok {
		writeJSON(w, http.StatusNotFound, struct {
			Error string `json:"error"`
		}{fmt.Sprintf("no job %q", name)})
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	var failed []string
	for _, j := range s.jobs() {
		if j.Phase == PhaseFailed {
			line := "job " + j.Name + ": failed"
			if j.LastError != "" {
				line += ": " + oneLine(j.LastError)
			}
			failed = append(failed, line)
		}
	}
	probeReply(w, failed)
}

func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	probeReply(w, nil)
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	var lines []string
	for _, j := range s.jobs() {
		for _, why := range j.NotReady() {
			lines = append(lines, "job "+j.Name+": "+why)
		}
	}
	probeReply(w, lines)
}

// probeReply answers a health probe: 200 "ok", or 503 with a line per
// problem.
func probeReply(w http.ResponseWriter, problems []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(problems, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// logWriter turns net/http's and promhttp's log lines into debug events.
type logWriter struct{ log zerolog.Logger }

func (l logWriter) Write(p []byte) (int, error) {
	l.log.Debug().Str("component", "status").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Package redistest is the real-Redis test harness of ferry's integration tests.
//
// Tests start real redis-server processes (standalone or cluster) on free loopback
// ports, each in its own temporary directory, and stop them by PID when the test
// ends. Redis is never mocked. Data equality between a source and a target is
// asserted with an encoding-independent digest over every key, type, value and TTL
// (see TakeDigest, AssertSameData) of data written by FillAllTypes.
//
// Environment:
//
//	FERRY_SKIP_REDIS=1      Require skips the test instead of failing when redis-server is missing
//	FERRY_REDIS_SERVER      redis-server binary (default: redis-server from PATH)
//	FERRY_REDIS_CLI         redis-cli binary (default: redis-cli from PATH)
//	FERRY_BINARY            prebuilt ferry binary for FerryBinary (default: go build ./cmd/ferry)
//	FERRY_REDIS_SERVER_NEW  a Redis 7.4+ (or Valkey 9+) redis-server for StartNewer; tests
//	                        of features older servers lack skip without it (CI has none)
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// HarnessClientName is the CLIENT SETNAME of every connection the harness opens,
// so tests that count ferry's connections (names "ferry-...") never see them.
const HarnessClientName = "redistest"

const (
	startTimeout = 30 * time.Second // PING answered (includes loading an RDB on Restart)
	stopTimeout  = 10 * time.Second // SIGTERM → SIGKILL
)

func serverBinary() string {
	if p := os.Getenv("FERRY_REDIS_SERVER"); p != "" {
		return p
	}
	return "redis-server"
}

func cliBinary() string {
	if p := os.Getenv("FERRY_REDIS_CLI"); p != "" {
		return p
	}
	return "redis-cli"
}

// Require fails the test when redis-server is not installed (a missing Redis must
// not turn integration tests silently green). With FERRY_SKIP_REDIS=1 it skips instead.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(serverBinary()); err == nil {
		return
	}
	if os.Getenv("FERRY_SKIP_REDIS") == "1" {
		t.Skipf("redistest: %s not found in PATH and FERRY_SKIP_REDIS=1: skipping", serverBinary())
	}
	t.Fatalf("redistest: %s not found in PATH: install Redis (apt-get install redis-server), "+
		"set FERRY_REDIS_SERVER to its path, or set FERRY_SKIP_REDIS=1 to skip integration tests", serverBinary())
}

func requireCLI(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(cliBinary()); err == nil {
		return
	}
	if os.Getenv("FERRY_SKIP_REDIS") == "1" {
		t.Skipf("redistest: %s not found in PATH and FERRY_SKIP_REDIS=1: skipping", cliBinary())
	}
	t.Fatalf("redistest: %s not found in PATH (needed to create clusters): install redis-tools, "+
		"set FERRY_REDIS_CLI, or set FERRY_SKIP_REDIS=1 to skip integration tests", cliBinary())
}

// Server is one redis-server process started by a test.
type Server struct {
	Port int
	Addr string // 127.0.0.1:Port
	Dir  string // working dir: redis.log, redis.pid, dump.rdb, nodes.conf
	PID  int
	Args []string // full argument list of the current process (defaults merged with the caller's)

	tb  testing.TB
	bin string // redis-server binary

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited and was reaped
	waitErr error
	stopped bool // exit was asked for (Stop, Kill); otherwise an exit is unexpected
	client  *redis.Client
}

// managed are the directives the harness owns; passing them to Start is an error.
var managed = map[string]bool{"port": true, "dir": true, "daemonize": true, "pidfile": true, "logfile": true}

func defaultArgs() []string {
	return []string{
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--save", "",
		"--appendonly", "no",
		"--repl-diskless-sync-delay", "0", // full syncs start at once (the default waits 5 s)
		"--enable-debug-command", "yes", // DEBUG SLEEP / RELOAD / OBJECT for tests
		"--loglevel", "notice",
	}
}

// splitDirectives turns "--a x y --b z" into [["--a" "x" "y"] ["--b" "z"]].
func splitDirectives(args []string) ([][]string, error) {
	var out [][]string
	for _, a := range args {
		if strings.HasPrefix(a, "--") && len(a) > 2 {
			out = append(out, []string{a})
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("argument %q does not follow a --directive", a)
		}
		out[len(out)-1] = append(out[len(out)-1], a)
	}
	return out, nil
}

func directiveName(d []string) string { return strings.ToLower(strings.TrimPrefix(d[0], "--")) }

// mergeArgs returns base with every directive that extra names replaced by extra's.
// A directive given several times in extra (e.g. two --save lines) keeps all of them.
func mergeArgs(base, extra []string) ([]string, error) {
	bd, err := splitDirectives(base)
	if err != nil {
		return nil, err
	}
	ed, err := splitDirectives(extra)
	if err != nil {
		return nil, err
	}
	override := map[string]bool{}
	for _, d := range ed {
		override[directiveName(d)] = true
	}
	var out []string
	for _, d := range bd {
		if !override[directiveName(d)] {
			out = append(out, d...)
		}
	}
	for _, d := range ed {
		out = append(out, d...)
	}
	return out, nil
}

func checkManaged(args []string) error {
	ds, err := splitDirectives(args)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if managed[directiveName(d)] {
			return fmt.Errorf("%s is managed by redistest and cannot be passed", d[0])
		}
	}
	return nil
}

// Start starts a redis-server on a free loopback port in a fresh directory under
// t.TempDir() and waits until it answers PING. Defaults: --bind 127.0.0.1 --save ""
// --appendonly no --repl-diskless-sync-delay 0 --enable-debug-command yes; args
// override defaults by directive name (e.g. "--save", "3600 1"). --port, --dir,
// --logfile, --pidfile and --daemonize are managed. The server is stopped (SIGTERM,
// SIGKILL after 10 s) when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	Require(t)
	s, err := startServer(t, t.TempDir(), serverBinary(), args)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

// StartNewer is Start with the server of FERRY_REDIS_SERVER_NEW: for what
// only Redis 7.4+ holds (hash field TTLs). Without it the test is skipped:
// CI runs Debian's 7.0 only; run these by hand against a newer build.
func StartNewer(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := os.Getenv("FERRY_REDIS_SERVER_NEW")
	if bin == "" {
		t.Skip("redistest: needs a Redis 7.4+ server: set FERRY_REDIS_SERVER_NEW to its redis-server")
	}
	s, err := startServer(t, t.TempDir(), bin, args)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

// startServer is Start without t.Fatal (safe to call from several goroutines).
func startServer(t testing.TB, parent, bin string, args []string) (*Server, error) {
	if err := checkManaged(args); err != nil {
		return nil, err
	}
	userArgs, err := mergeArgs(defaultArgs(), args)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePortPair()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(parent, fmt.Sprintf("redis-%d", port))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		s := &Server{Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, tb: t, bin: bin}
		err = s.launch(userArgs, nil)
		if err == nil {
			t.Cleanup(s.cleanup)
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
		os.RemoveAll(dir)
	}
	return nil, fmt.Errorf("could not start redis-server on a free port after 5 attempts: %w", lastErr)
}

var errPortTaken = errors.New("port taken")

// launch starts the process with userArgs (already merged with the defaults) on
// s.Port / s.Dir and waits for PING. With certs the server listens with TLS
// only (--port 0 --tls-port Port), readiness is checked over TLS and the
// shared client (Do, Info…) speaks TLS. On failure the process is gone.
func (s *Server) launch(userArgs []string, certs *Certs) error {
	ports := []string{"--port", strconv.Itoa(s.Port)}
	var tlsCfg *tls.Config
	kind := ""
	if certs != nil {
		ports = []string{"--port", "0", "--tls-port", strconv.Itoa(s.Port)}
		tlsCfg, kind = certs.ClientTLS(), "TLS "
	}
	full := append(append(ports,
		"--dir", s.Dir,
		"--logfile", filepath.Join(s.Dir, "redis.log"),
		"--pidfile", filepath.Join(s.Dir, "redis.pid"),
		"--daemonize", "no",
	), userArgs...)
	cmd := exec.Command(s.bin, full...)
	cmd.Dir = s.Dir
	// Config errors are printed to stdout/stderr before the logfile is opened.
	out, err := os.OpenFile(filepath.Join(s.Dir, "redis.stdout"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	logStart := logSize(s.Dir)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.stopped, s.waitErr = cmd, done, false, nil
	s.PID = cmd.Process.Pid
	s.Args = userArgs
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(done)
	}()
	if err := s.waitReady(tlsCfg, cmd.Process.Pid, done); err != nil {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.signalAndWait(syscall.SIGKILL, 5*time.Second)
		tail := logTail(s.Dir, logStart, 15)
		if strings.Contains(tail, "Address already in use") || errors.Is(err, errPortTaken) {
			return fmt.Errorf("%w: %s: %v", errPortTaken, s.Addr, err)
		}
		stdout, _ := os.ReadFile(filepath.Join(s.Dir, "redis.stdout"))
		return fmt.Errorf("%sredis-server on %s (args %q): %v\n--- output ---\n%s--- redis.log ---\n%s",
			kind, s.Addr, userArgs, err, stdout, tail)
	}
	if tlsCfg != nil {
		s.mu.Lock()
		s.client = redis.NewClient(tlsClientOptions(s.Addr, tlsCfg))
		s.mu.Unlock()
	}
	return nil
}

// waitReady polls PING until PONG (not LOADING) and checks the server answering
// is our process (another test binary may have taken the port in between).
func (s *Server) waitReady(tlsCfg *tls.Config, pid int, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited during startup (%v)", s.exitErr())
		default:
		}
		got, err := rawInfoPID(s.Addr)
		if tlsCfg != nil {
			got, err = tlsInfoPID(s.Addr, tlsCfg)
		}
		if err == nil {
			if got != pid {
				return fmt.Errorf("%w: port answered by pid %d, not ours (%d)", errPortTaken, got, pid)
			}
			return nil
		}
		last = err
		time.Sleep(15 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v (last error: %v)", startTimeout, last)
}

// rawInfoPID sends PING and INFO server over a plain connection and returns
// process_id; an error while the server is not up or still loading.
func rawInfoPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	return infoPID(c)
}

// infoPID sends PING and INFO server over c, closes it and returns
// process_id.
func infoPID(c net.Conn) (int, error) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return 0, fmt.Errorf("PING: %s", strings.TrimSpace(line))
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(line, "$") {
		return 0, fmt.Errorf("INFO: %s", strings.TrimSpace(line))
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return 0, err
	}
	buf := make([]byte, n+2)
	if _, err := ioReadFull(r, buf); err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(buf), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server without process_id")
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *Server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// Running reports whether the current process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// signalAndWait sends sig and waits up to timeout for the exit; true when exited.
func (s *Server) signalAndWait(sig syscall.Signal, timeout time.Duration) bool {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (s *Server) stop(graceful bool) error {
	s.mu.Lock()
	s.stopped = true
	pid := s.PID
	c := s.client
	s.client = nil // a restarted server gets fresh connections
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if graceful {
		if s.signalAndWait(syscall.SIGTERM, stopTimeout) {
			return nil
		}
		if s.signalAndWait(syscall.SIGKILL, 5*time.Second) {
			return fmt.Errorf("redis-server %s (pid %d) ignored SIGTERM for %v and was killed", s.Addr, pid, stopTimeout)
		}
	} else if s.signalAndWait(syscall.SIGKILL, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("redis-server %s (pid %d) did not exit after SIGKILL", s.Addr, pid)
}

// Stop stops the server gracefully (SIGTERM: Redis runs SHUTDOWN, which saves only
// when save points are configured — none by default) and waits for the exit.
// SIGKILL after 10 s. A no-op when the server is not running.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(true); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// Kill sends SIGKILL (a crash: nothing saved, clients see a reset) and waits.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.stop(false); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// Restart starts the server again on the same port and dir with the same
// arguments (extraArgs override them), keeping dump.rdb / nodes.conf. A running
// server is stopped gracefully first.
func (s *Server) Restart(t testing.TB, extraArgs ...string) {
	t.Helper()
	if err := s.restart(nil, extraArgs); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// restart stops s and starts it again with its arguments merged with
// extraArgs (and certs for a TLS server).
func (s *Server) restart(certs *Certs, extraArgs []string) error {
	if err := s.stop(true); err != nil {
		return err
	}
	if err := checkManaged(extraArgs); err != nil {
		return err
	}
	s.mu.Lock()
	prev := s.Args
	s.mu.Unlock()
	args, err := mergeArgs(prev, extraArgs)
	if err != nil {
		return err
	}
	var lastErr error
	// The port was ours a moment ago; a short retry covers TIME_WAIT-free rebind races.
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = s.launch(args, certs); lastErr == nil {
			return nil
		}
		if !errors.Is(lastErr, errPortTaken) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("restart %s: %w", s.Addr, lastErr)
}

func (s *Server) cleanup() {
	s.mu.Lock()
	unexpected := !s.stopped && s.done != nil
	done := s.done
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if unexpected {
		select {
		case <-done:
			s.tb.Logf("redistest: redis-server %s (pid %d) had exited before the end of the test (%v); log tail:\n%s",
				s.Addr, s.PID, s.exitErr(), logTail(s.Dir, 0, 20))
		default:
		}
	}
	if s.tb.Failed() {
		if tail := logTail(s.Dir, 0, 20); tail != "" {
			s.tb.Logf("redistest: redis-server %s (pid %d) log tail:\n%s", s.Addr, s.PID, tail)
		}
	}
	if err := s.stop(true); err != nil {
		s.tb.Errorf("redistest: %v", err)
	}
}

// Log returns the contents of redis.log (all runs of this server).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

func logSize(dir string) int64 {
	fi, err := os.Stat(filepath.Join(dir, "redis.log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the last n lines of redis.log written after byte offset from.
func logTail(dir string, from int64, n int) string {
	b, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !boringLogLine(l) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// boringLogLine: startup boilerplate that says nothing about a failure.
func boringLogLine(l string) bool {
	for _, b := range []string{"oO0OoO0OoO0Oo", "Redis version=", "Configuration loaded", "monotonic clock",
		"Running mode=", "Server initialized", "Memory overcommit", "Ready to accept connections",
		"No cluster configuration found"} {
		if strings.Contains(l, b) {
			return true
		}
	}
	return strings.TrimSpace(l) == ""
}

// URL returns redis://127.0.0.1:port.
func (s *Server) URL() string { return "redis://" + s.Addr }

func newClientOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                     addr,
		ClientName:               HarnessClientName,
		DisableIdentity:          true,
		Protocol:                 2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		DialTimeout:              5 * time.Second,
		ReadTimeout:              60 * time.Second,
		WriteTimeout:             60 * time.Second,
		MaxRetries:               -1,
	}
}

// Client returns a new go-redis client (RESP2, named "redistest") for this
// server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(newClientOptions(s.Addr))
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) sharedClient() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(newClientOptions(s.Addr))
	}
	return s.client
}

// Do runs one command on db 0 over a shared pooled connection and returns its
// reply (RESP2: string, int64, []any, nil); t.Fatal on error (a nil reply is
// returned as nil, not an error). SELECT is refused: it would leak into the pool;
// use Client(t).Conn() for another db.
func (s *Server) Do(t testing.TB, args ...any) any {
	t.Helper()
	if len(args) > 0 && strings.EqualFold(fmt.Sprint(args[0]), "select") {
		t.Fatalf("redistest: Do(SELECT) is not supported (pooled connection); use Client(t).Conn()")
	}
	v, err := s.sharedClient().Do(context.Background(), args...).Result()
	if err != nil && err != redis.Nil {
		t.Fatalf("redistest: %s %v: %v", s.Addr, args, err)
	}
	return v
}

// Info returns one INFO section as field → value.
func (s *Server) Info(t testing.TB, section string) map[string]string {
	t.Helper()
	// A server closes its clients when its role changes (a failover, a
	// sentinel's CLIENT KILL): a dropped connection is asked again on a new
	// one, a reply error is not.
	var err error
	for range 3 {
		var txt string
		txt, err = s.sharedClient().Info(context.Background(), section).Result()
		if err == nil {
			return parseInfo(txt)
		}
		var re redis.Error
		if errors.As(err, &re) {
			break
		}
	}
	t.Fatalf("redistest: %s INFO %s: %v", s.Addr, section, err)
	return nil
}

func parseInfo(txt string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(txt, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// ClientInfo is one row of CLIENT LIST.
type ClientInfo struct {
	ID    int64
	Addr  string
	Name  string
	Age   time.Duration
	Idle  time.Duration
	DB    int
	Cmd   string
	Flags string            // e.g. "N", "S" (replica), "M", "x" (in MULTI)
	Raw   map[string]string // every field as Redis printed it
}

func parseClientList(txt string) []ClientInfo {
	var out []ClientInfo
	for _, l := range strings.Split(txt, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		ci := ClientInfo{Raw: map[string]string{}}
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			ci.Raw[k] = v
		}
		ci.ID, _ = strconv.ParseInt(ci.Raw["id"], 10, 64)
		ci.Addr = ci.Raw["addr"]
		ci.Name = ci.Raw["name"]
		age, _ := strconv.ParseInt(ci.Raw["age"], 10, 64)
		idle, _ := strconv.ParseInt(ci.Raw["idle"], 10, 64)
		ci.Age, ci.Idle = time.Duration(age)*time.Second, time.Duration(idle)*time.Second
		ci.DB, _ = strconv.Atoi(ci.Raw["db"])
		ci.Cmd = ci.Raw["cmd"]
		ci.Flags = ci.Raw["flags"]
		out = append(out, ci)
	}
	return out
}

// ClientsNamed returns the connections (all types, replicas included) whose name
// starts with namePrefix ("" = all, the harness's own included).
func (s *Server) ClientsNamed(t testing.TB, namePrefix string) []ClientInfo {
	t.Helper()
	txt, err := s.sharedClient().ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("redistest: %s CLIENT LIST: %v", s.Addr, err)
	}
	var out []ClientInfo
	for _, c := range parseClientList(txt) {
		if strings.HasPrefix(c.Name, namePrefix) {
			out = append(out, c)
		}
	}
	return out
}

// KillClients kills (CLIENT KILL ID) every connection whose name starts with
// namePrefix and returns how many were killed. The prefix must not be empty.
func (s *Server) KillClients(t testing.TB, namePrefix string) int {
	t.Helper()
	if namePrefix == "" {
		t.Fatalf("redistest: KillClients needs a name prefix")
	}
	n := 0
	for _, c := range s.ClientsNamed(t, namePrefix) {
		k, err := s.sharedClient().Do(context.Background(), "CLIENT", "KILL", "ID", c.ID).Int()
		if err != nil {
			t.Fatalf("redistest: %s CLIENT KILL ID %d: %v", s.Addr, c.ID, err)
		}
		n += k
	}
	return n
}

// WaitFor polls cond every 20 ms until it returns true; t.Fatalf after timeout.
// msg (a fmt format with args) says what was awaited.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: timed out after %v waiting for %s", timeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

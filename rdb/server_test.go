package rdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testServer is a redis-server started for one test (local helper; the
// shared harness lives elsewhere and is not a dependency of this package).
type testServer struct {
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t testing.TB, extra ...string) *testServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"),
	}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	srv := &testServer{addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, cmd: cmd}
	t.Cleanup(func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	c := srv.client(0)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Ping(context.Background()).Err(); err == nil {
			break
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server did not come up: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return srv
}

func (s *testServer) client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.addr, DB: db, Protocol: 2, MaxRetries: -1})
}

// save runs SAVE and returns the dump file's bytes.
func (s *testServer) save(t testing.TB) []byte {
	t.Helper()
	c := s.client(0)
	defer c.Close()
	if err := c.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustDo(t testing.TB, c *redis.Client, args ...any) any {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil && err != redis.Nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

func argsToAny(args [][]byte) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = string(a)
	}
	return out
}

func fmtArgs(args [][]byte) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		if len(a) > 40 {
			s += fmt.Sprintf("%q...(%d)", a[:40], len(a))
		} else {
			s += strconv.Quote(string(a))
		}
	}
	return s
}

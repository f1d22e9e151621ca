package topology

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/redis/go-redis/v9"
)

// testNode is a redis-server started by a test, stopped by its PID at cleanup.
type testNode struct {
	Addr string
	C    *redis.Client
	Stop func() // SIGTERM (SIGKILL after 5 s) and wait; idempotent
}

func requireBinaries(t testing.TB) {
	t.Helper()
	for _, b := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
}

func clientFor(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 10 * time.Second, PoolSize: 2,
	})
}

// startNode starts redis-server on a free loopback port in 12000-22000 whose
// bus port (+10000) is free too; a cluster node when cluster is set.
func startNode(t testing.TB, cluster bool, extra ...string) *testNode {
	t.Helper()
	n, err := tryStartNode(t, cluster, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tryStartNode is startNode for any goroutine.
func tryStartNode(t testing.TB, cluster bool, extra ...string) (*testNode, error) {
	dir := t.TempDir()
	var lastErr error
	for attempt := range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		logf := filepath.Join(dir, fmt.Sprintf("redis-%d.log", attempt))
		argv := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", logf,
		}
		if cluster {
			argv = append(argv, "--cluster-enabled", "yes",
				"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", attempt),
				"--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0")
		}
		argv = append(argv, extra...)
		cmd := exec.Command("redis-server", argv...)
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
		}
		n := &testNode{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Stop: stop}
		n.C = clientFor(n.Addr)
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			lastErr = n.C.Ping(ctx).Err()
			cancel()
			if lastErr == nil {
				t.Cleanup(func() { n.C.Close(); stop() })
				return n, nil
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
		n.C.Close()
		stop()
		log, _ := os.ReadFile(logf)
		lastErr = fmt.Errorf("%v\n%s", lastErr, log)
	}
	return nil, fmt.Errorf("redis-server did not come up: %v", lastErr)
}

var portMu sync.Mutex

func freePort() (int, error) {
	portMu.Lock() // nodes start in parallel: do not hand one port out twice
	defer portMu.Unlock()
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
		if !taken[p] {
			taken[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port pair in 12000-22000")
}

var taken = map[int]bool{}

// startCluster starts masters*(1+replicas) cluster nodes, joins them with
// redis-cli --cluster create and waits until the cluster is healthy.
func startCluster(t testing.TB, masters, replicas int) []*testNode {
	t.Helper()
	requireBinaries(t)
	nodes := make([]*testNode, masters*(1+replicas))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { nodes[i], errs[i] = tryStartNode(t, true) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	args := []string{"--cluster", "create"}
	for _, n := range nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	redisCLI(t, args...)
	waitHealthy(t, nodes, 30*time.Second)
	return nodes
}

func redisCLI(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitHealthy waits until every node says cluster_state:ok with all slots
// ok, knows every node, and every replica's link to its master is up.
func waitHealthy(t testing.TB, nodes []*testNode, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = ""
		for _, n := range nodes {
			info, err := n.C.ClusterInfo(ctx).Result()
			if err != nil {
				why = fmt.Sprintf("%s: %v", n.Addr, err)
				break
			}
			if ctl.InfoField(info, "cluster_state") != "ok" || ctl.InfoField(info, "cluster_slots_ok") != "16384" ||
				ctl.InfoField(info, "cluster_known_nodes") != strconv.Itoa(len(nodes)) {
				why = fmt.Sprintf("%s: %q", n.Addr, info)
				break
			}
			repl, err := n.C.Info(ctx, "replication").Result()
			if err != nil {
				why = fmt.Sprintf("%s: %v", n.Addr, err)
				break
			}
			if ctl.InfoField(repl, "role") == "slave" && ctl.InfoField(repl, "master_link_status") != "up" {
				why = fmt.Sprintf("%s: replica link down", n.Addr)
				break
			}
		}
		if why == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("cluster not healthy after %v: %s", timeout, why)
}

package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a redis-server running in sentinel mode, watching one master.
type Sentinel struct {
	Addr string
	Port int
	cmd  *exec.Cmd
}

// StartSentinel starts a sentinel (quorum 1, failover after 1 s without the
// master) that monitors the master at masterAddr under name.
func StartSentinel(t testing.TB, name, masterAddr string) *Sentinel {
	t.Helper()
	return startSentinel(t, name, masterAddr, nil)
}

// StartSentinelTLS is StartSentinel for a master started by StartTLS: the
// sentinel speaks TLS only, with the server certificate of certs, requires
// a client certificate, and reaches the master over TLS with the client
// certificate. Client does not work on it.
func StartSentinelTLS(t testing.TB, certs *Certs, name, masterAddr string) *Sentinel {
	t.Helper()
	return startSentinel(t, name, masterAddr, certs)
}

func startSentinel(t testing.TB, name, masterAddr string, certs *Certs) *Sentinel {
	t.Helper()
	Require(t)
	host, port, _ := strings.Cut(masterAddr, ":")
	for attempt := 0; attempt < 5; attempt++ {
		p := FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		listen := fmt.Sprintf("port %d\n", p)
		opts := &redis.Options{Protocol: 2, DisableIdentity: true}
		if certs != nil {
			listen = fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"+
				"tls-replication yes\ntls-client-cert-file %s\ntls-client-key-file %s\n",
				p, certs.ServerCert, certs.ServerKey, certs.CAFile, certs.ClientCert, certs.ClientKey)
			opts.TLSConfig = certs.ClientTLS()
		}
		body := fmt.Sprintf("%sbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			listen, dir, filepath.Join(dir, "sentinel.log"), name, host, port, name, name, name)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(serverBinary(), conf, "--sentinel")
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			t.Fatalf("redistest: start sentinel: %v", err)
		}
		s := &Sentinel{Addr: "127.0.0.1:" + strconv.Itoa(p), Port: p, cmd: cmd}
		opts.Addr = s.Addr
		c := redis.NewSentinelClient(opts)
		ok := false
		for i := 0; i < 100; i++ {
			if _, err := c.GetMasterAddrByName(context.Background(), name).Result(); err == nil {
				ok = true
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
		if ok {
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				done := make(chan struct{})
				go func() { cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					cmd.Process.Kill()
					<-done
				}
			})
			return s
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Fatal("redistest: sentinel did not come up")
	return nil
}

// Client is a sentinel client.
func (s *Sentinel) Client(t testing.TB) *redis.SentinelClient {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

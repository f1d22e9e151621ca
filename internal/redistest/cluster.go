package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Cluster is a Redis Cluster of servers started by a test.
//
// Masters are ordered by their first slot (Masters[0] owns slot 0); the replicas
// of Masters[i] are Replicas[i*r : (i+1)*r] for r replicas per master. After a
// failover call Refresh to reorder them from the live topology.
type Cluster struct {
	Masters, Replicas []*Server

	nodes []*Server // every node, in start order
}

// Nodes returns every node (masters and replicas, running or not).
func (c *Cluster) Nodes() []*Server { return append([]*Server(nil), c.nodes...) }

// Addrs returns the master addresses, then the replica addresses.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Masters {
		out = append(out, s.Addr)
	}
	for _, s := range c.Replicas {
		out = append(out, s.Addr)
	}
	return out
}

// Client returns a go-redis cluster client (RESP2, named "redistest"), closed at cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                    c.Addrs(),
		ClientName:               HarnessClientName,
		DisableIdentity:          true,
		Protocol:                 2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		DialTimeout:              5 * time.Second,
		ReadTimeout:              60 * time.Second,
		WriteTimeout:             60 * time.Second,
	})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// StartCluster starts masters*(1+replicasPerMaster) cluster-enabled servers,
// joins them with `redis-cli --cluster create ... --cluster-replicas N --cluster-yes`
// and waits until every node reports cluster_state:ok with all slots covered and
// every replica is linked and synced. --cluster-node-timeout defaults to 2000 ms so
// failovers are quick; args override it and Start's defaults. masters >= 3.
func StartCluster(t testing.TB, masters, replicasPerMaster int, args ...string) *Cluster {
	t.Helper()
	Require(t)
	requireCLI(t)
	if masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, got %d", masters)
	}
	if replicasPerMaster < 0 {
		t.Fatalf("redistest: negative replicas per master")
	}
	nodeArgs, err := mergeArgs([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "2000",
	}, args)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	n := masters * (1 + replicasPerMaster)
	parent := t.TempDir()
	nodes := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = startServer(t, parent, serverBinary(), nodeArgs)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("redistest: cluster node: %v", err)
		}
	}
	c := &Cluster{nodes: nodes}
	cliArgs := []string{"--cluster", "create"}
	for _, s := range nodes {
		cliArgs = append(cliArgs, s.Addr)
	}
	cliArgs = append(cliArgs, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cliBinary(), cliArgs...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: %s %s: %v\n%s", cliBinary(), strings.Join(cliArgs, " "), err, out)
	}
	if err := c.waitHealthy(30*time.Second, replicasPerMaster); err != nil {
		t.Fatalf("redistest: cluster did not come up: %v\n--- redis-cli output ---\n%s", err, out)
	}
	if err := c.refresh(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	if len(c.Masters) != masters || len(c.Replicas) != n-masters {
		t.Fatalf("redistest: cluster has %d masters and %d replicas, want %d and %d",
			len(c.Masters), len(c.Replicas), masters, n-masters)
	}
	return c
}

// WaitHealthy waits (up to timeout) until every running node reports
// cluster_state:ok with all 16384 slots, all running nodes agree on which node
// serves which slots and see no running node as failing, and every running
// replica is linked to its master and not syncing. Use after a failover or a
// restart of a node; then Refresh.
func (c *Cluster) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := c.waitHealthy(timeout, -1); err != nil {
		t.Fatalf("redistest: cluster not healthy: %v", err)
	}
}

// Refresh reorders Masters and Replicas from the topology a running node reports
// (after a failover, a replica that was promoted moves to Masters).
func (c *Cluster) Refresh(t testing.TB) {
	t.Helper()
	if err := c.refresh(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// MasterFor returns the master serving key, per the live topology (CLUSTER NODES of a running node).
func (c *Cluster) MasterFor(t testing.TB, key string) *Server {
	t.Helper()
	slot := Slot(key)
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		nodes, err := clusterNodes(s.Addr)
		if err != nil {
			continue
		}
		for _, nd := range nodes {
			if nd.master() && nd.ownsSlot(slot) {
				if srv := c.byPort(nd.port); srv != nil {
					return srv
				}
			}
		}
	}
	t.Fatalf("redistest: no master found for key %q (slot %d)", key, slot)
	return nil
}

func (c *Cluster) byPort(p int) *Server {
	for _, s := range c.nodes {
		if s.Port == p {
			return s
		}
	}
	return nil
}

type nodeLine struct {
	id, masterID string
	port         int
	flags        map[string]bool
	slots        [][2]int
	linked       bool
}

func (n nodeLine) master() bool { return n.flags["master"] }
func (n nodeLine) ownsSlot(slot int) bool {
	for _, r := range n.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}
func (n nodeLine) firstSlot() int {
	m := 1 << 30
	for _, r := range n.slots {
		m = min(m, r[0])
	}
	return m
}

func clusterNodes(addr string) ([]nodeLine, error) {
	cl := redis.NewClient(newClientOptions(addr))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	txt, err := cl.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s CLUSTER NODES: %w", addr, err)
	}
	var out []nodeLine
	for _, l := range strings.Split(txt, "\n") {
		f := strings.Fields(l)
		if len(f) < 8 {
			continue
		}
		nl := nodeLine{id: f[0], masterID: f[3], flags: map[string]bool{}, linked: f[7] == "connected"}
		hostport, _, _ := strings.Cut(f[1], "@")
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			nl.port, _ = strconv.Atoi(hostport[i+1:])
		}
		for _, fl := range strings.Split(f[2], ",") {
			nl.flags[fl] = true
		}
		for _, sr := range f[8:] {
			if strings.HasPrefix(sr, "[") { // migrating/importing marker
				continue
			}
			lo, hi, ok := strings.Cut(sr, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if ok {
				b, _ = strconv.Atoi(hi)
			}
			nl.slots = append(nl.slots, [2]int{a, b})
		}
		out = append(out, nl)
	}
	return out, nil
}

func (c *Cluster) refresh() error {
	var lastErr error
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		nodes, err := clusterNodes(s.Addr)
		if err != nil {
			lastErr = err
			continue
		}
		byID := map[string]nodeLine{}
		var ms []nodeLine
		for _, n := range nodes {
			byID[n.id] = n
			if n.master() && !n.flags["fail"] {
				ms = append(ms, n)
			}
		}
		sort.SliceStable(ms, func(i, j int) bool { return ms[i].firstSlot() < ms[j].firstSlot() })
		c.Masters, c.Replicas = nil, nil
		for _, m := range ms {
			srv := c.byPort(m.port)
			if srv == nil {
				continue
			}
			c.Masters = append(c.Masters, srv)
			var reps []nodeLine
			for _, n := range nodes {
				if n.masterID == m.id && !n.master() {
					reps = append(reps, n)
				}
			}
			sort.Slice(reps, func(i, j int) bool { return reps[i].port < reps[j].port })
			for _, r := range reps {
				if srv := c.byPort(r.port); srv != nil {
					c.Replicas = append(c.Replicas, srv)
				}
			}
		}
		return nil
	}
	return fmt.Errorf("no running cluster node answered CLUSTER NODES (%v)", lastErr)
}

// waitHealthy: see WaitHealthy. wantReplicas >= 0 also requires every master to
// have that many online replicas (used at creation).
func (c *Cluster) waitHealthy(timeout time.Duration, wantReplicas int) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.healthy(wantReplicas)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) healthy(wantReplicas int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	live := map[int]bool{}
	for _, s := range c.nodes {
		if s.Running() {
			live[s.Port] = true
		}
	}
	var topo string
	for _, s := range c.nodes {
		if !live[s.Port] {
			continue
		}
		cl := s.sharedClient()
		ci, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s CLUSTER INFO: %w", s.Addr, err)
		}
		info := parseInfo(ci)
		if info["cluster_state"] != "ok" || info["cluster_slots_ok"] != "16384" {
			return fmt.Errorf("%s: cluster_state:%s cluster_slots_ok:%s", s.Addr, info["cluster_state"], info["cluster_slots_ok"])
		}
		nodes, err := clusterNodes(s.Addr)
		if err != nil {
			return err
		}
		// Every running node must see the same roles: masters with their slots,
		// replicas with their master.
		portOf := map[string]int{}
		for _, n := range nodes {
			portOf[n.id] = n.port
		}
		var parts []string
		replicasOf := map[int]int{}
		for _, n := range nodes {
			if !live[n.port] {
				continue
			}
			if n.flags["fail"] || n.flags["fail?"] || n.flags["handshake"] || n.flags["noaddr"] {
				return fmt.Errorf("%s sees node :%d as %v", s.Addr, n.port, n.flags)
			}
			switch {
			case n.master() && len(n.slots) > 0:
				parts = append(parts, fmt.Sprintf("%d:%v", n.port, n.slots))
			case n.master():
				parts = append(parts, fmt.Sprintf("%d:empty", n.port))
			default:
				parts = append(parts, fmt.Sprintf("%d:replica-of:%d", n.port, portOf[n.masterID]))
				replicasOf[portOf[n.masterID]]++
			}
		}
		if wantReplicas >= 0 {
			for _, n := range nodes {
				if n.master() && len(n.slots) > 0 && replicasOf[n.port] != wantReplicas {
					return fmt.Errorf("%s sees %d replicas of :%d, want %d", s.Addr, replicasOf[n.port], n.port, wantReplicas)
				}
			}
		}
		sort.Strings(parts)
		if t := strings.Join(parts, " "); topo == "" {
			topo = t
		} else if t != topo {
			return fmt.Errorf("nodes disagree on the slot map: %s vs %s (%s)", topo, t, s.Addr)
		}
		rep, err := cl.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("%s INFO replication: %w", s.Addr, err)
		}
		ri := parseInfo(rep)
		switch ri["role"] {
		case "slave":
			if ri["master_link_status"] != "up" || ri["master_sync_in_progress"] != "0" {
				return fmt.Errorf("replica %s: master_link_status:%s master_sync_in_progress:%s",
					s.Addr, ri["master_link_status"], ri["master_sync_in_progress"])
			}
		case "master":
			if wantReplicas >= 0 {
				online := 0
				for k, v := range ri {
					if strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online") {
						online++
					}
				}
				if online != wantReplicas && len(nodes) > 0 && isSlotOwner(nodes, s.Port) {
					return fmt.Errorf("master %s has %d online replicas, want %d", s.Addr, online, wantReplicas)
				}
			}
		}
	}
	if topo == "" {
		return fmt.Errorf("no running cluster node")
	}
	return nil
}

func isSlotOwner(nodes []nodeLine, port int) bool {
	for _, n := range nodes {
		if n.port == port && n.master() && len(n.slots) > 0 {
			return true
		}
	}
	return false
}

// Slot returns the cluster hash slot of key (CRC16 of the key or its {hash tag}, mod 16384).
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

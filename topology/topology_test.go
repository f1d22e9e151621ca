package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/router"

	"github.com/redis/go-redis/v9"
)

func addrs(nodes []*testNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Addr)
	}
	return out
}

func byAddr(nodes []*testNode, addr string) *testNode {
	for _, n := range nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// sameShape: same masters (ID, address), replicas (ID, address, master) and slots.
func sameShape(a, b *Map) error {
	if !a.Equal(b) {
		return fmt.Errorf("slot owners differ:\n %v\n %v", a, b)
	}
	if len(a.Shards) != len(b.Shards) {
		return fmt.Errorf("%d shards vs %d", len(a.Shards), len(b.Shards))
	}
	for i := range a.Shards {
		x, y := a.Shards[i], b.Shards[i]
		if x.Master.ID != y.Master.ID || x.Master.Addr != y.Master.Addr || !x.Master.Master || !y.Master.Master ||
			!slices.Equal(x.Slots, y.Slots) || len(x.Replicas) != len(y.Replicas) {
			return fmt.Errorf("shard %d: %+v vs %+v", i, x, y)
		}
		for j := range x.Replicas {
			r, s := x.Replicas[j], y.Replicas[j]
			if r.ID != s.ID || r.Addr != s.Addr || r.MasterID != x.Master.ID || s.MasterID != y.Master.ID || r.Master || s.Master {
				return fmt.Errorf("shard %d replica %d: %+v vs %+v", i, j, r, s)
			}
		}
	}
	return nil
}

// waitAgree polls until every way, from every node, gives the same shape
// and check(m) passes, and returns that Map.
func waitAgree(t *testing.T, nodes []*testNode, timeout time.Duration, check func(*Map) error) *Map {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var why error
	for time.Now().Before(deadline) {
		why = nil
		var ref *Map
	all:
		for _, n := range nodes {
			for _, w := range allWays {
				m, err := discover(ctx, []string{n.Addr}, nil, []way{w})
				if err != nil {
					why = err
					break all
				}
				if m.Via != w.name || m.Seed != n.Addr {
					t.Fatalf("Via %q Seed %q, want %q %q", m.Via, m.Seed, w.name, n.Addr)
				}
				if len(m.Excluded) > 0 || len(m.Unowned()) > 0 {
					why = fmt.Errorf("%s via %s: excluded %+v, unowned %v", n.Addr, w.name, m.Excluded, m.Unowned())
					break all
				}
				if ref == nil {
					ref = m
					if why = check(m); why != nil {
						break all
					}
				} else if why = sameShape(ref, m); why != nil {
					why = fmt.Errorf("%s via %s: %w", n.Addr, w.name, why)
					break all
				}
			}
		}
		if why == nil {
			return ref
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no agreement after %v: %v", timeout, why)
	return nil
}

// checkOwners checks the Map against the servers: CLUSTER KEYSLOT agrees with
// router.Slot, the owner answers a GET for the key, and every other master
// redirects it there with MOVED.
func checkOwners(t *testing.T, nodes []*testNode, m *Map) {
	t.Helper()
	ctx := context.Background()
	keys := []string{"a", "b", "c", "{user1000}.following", "__ferry:{" + router.TagForSlot(0) + "}:x",
		"__ferry:{" + router.TagForSlot(16383) + "}:x"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("key:%d", i*7919))
	}
	for _, s := range m.Shards {
		for _, r := range s.Slots {
			keys = append(keys, "{"+router.TagForSlot(r[0])+"}", "{"+router.TagForSlot(r[1])+"}")
		}
	}
	masters := m.Masters()
	for _, k := range keys {
		slot, err := nodes[0].C.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if int(slot) != router.SlotString(k) {
			t.Fatalf("%q: CLUSTER KEYSLOT %d, router %d", k, slot, router.SlotString(k))
		}
		owner, ok := m.MasterOf(int(slot))
		if !ok {
			t.Fatalf("%q: slot %d has no owner", k, slot)
		}
		for _, mm := range masters {
			err := byAddr(nodes, mm.Addr).C.Get(ctx, k).Err()
			if mm.Addr == owner.Addr {
				if err != nil && !errors.Is(err, redis.Nil) {
					t.Fatalf("%q (slot %d) on its owner %s: %v", k, slot, owner.Addr, err)
				}
				continue
			}
			if want := fmt.Sprintf("MOVED %d %s", slot, owner.Addr); err == nil || err.Error() != want {
				t.Fatalf("%q on %s: %v, want %s", k, mm.Addr, err, want)
			}
		}
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node cluster")
	}
	start := time.Now()
	nodes := startCluster(t, 3, 1)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	healthy := func(m *Map) error {
		if len(m.Shards) != 3 {
			return fmt.Errorf("%d shards: %v", len(m.Shards), m)
		}
		for _, s := range m.Shards {
			if len(s.Replicas) != 1 {
				return fmt.Errorf("shard of %s has %d replicas", s.Master.Addr, len(s.Replicas))
			}
		}
		return nil
	}

	// Replication offsets move, and replicas stop being "loading", once
	// something is written.
	for _, n := range nodes {
		n.C.Set(ctx, "{"+router.TagForSlot(0)+"}", "x", 0)
		n.C.Set(ctx, "{"+router.TagForSlot(8000)+"}", "x", 0)
		n.C.Set(ctx, "{"+router.TagForSlot(16000)+"}", "x", 0)
	}
	var m *Map
	t.Run("discover", func(t *testing.T) {
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err = Discover(ctx, append([]string{"127.0.0.1:1"}, addrs(nodes)...), nil)
			if err != nil {
				t.Fatal(err)
			}
			settled := true
			for _, s := range m.Shards {
				for _, n := range append([]Node{s.Master}, s.Replicas...) {
					settled = settled && n.Offset > 0 && n.Health == "online"
				}
			}
			if settled || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if m.Via != "CLUSTER SHARDS" || m.Seed != nodes[0].Addr || m.Epoch <= 0 {
			t.Errorf("Via %q Seed %q Epoch %d", m.Via, m.Seed, m.Epoch)
		}
		if err := healthy(m); err != nil {
			t.Fatal(err)
		}
		if u := m.Unowned(); len(u) != 0 {
			t.Fatalf("unowned %v", u)
		}
		seen := map[string]bool{}
		for _, s := range m.Shards {
			for _, n := range append([]Node{s.Master}, s.Replicas...) {
				tn := byAddr(nodes, n.Addr)
				if tn == nil || seen[n.Addr] {
					t.Fatalf("node %+v: unknown or twice", n)
				}
				seen[n.Addr] = true
				id, _ := tn.C.Do(ctx, "CLUSTER", "MYID").Text()
				role, _ := tn.C.Do(ctx, "ROLE").Slice()
				if id != n.ID || (role[0] == "master") != n.Master || n.Health != "online" {
					t.Errorf("node %+v: server says id %s role %v", n, id, role[0])
				}
				if n.Offset <= 0 {
					t.Errorf("node %+v: no replication offset", n)
				}
			}
		}
		t.Log(m)
	})
	if m == nil {
		t.FailNow()
	}

	t.Run("ways agree", func(t *testing.T) {
		got := waitAgree(t, nodes, 10*time.Second, healthy)
		if err := sameShape(m, got); err != nil {
			t.Fatal(err)
		}
		// RESP3 answers (maps) read the same.
		got, err := Discover(ctx, addrs(nodes), func(addr string) *redis.Options {
			return &redis.Options{Addr: addr, Protocol: 3, DisableIdentity: true}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := sameShape(m, got); err != nil || got.Via != "CLUSTER SHARDS" {
			t.Fatalf("RESP3 via %s: %v", got.Via, err)
		}
	})

	t.Run("owners", func(t *testing.T) { checkOwners(t, nodes, m) })

	t.Run("acl fallbacks", func(t *testing.T) {
		// A user that may not run CLUSTER SHARDS (or SLOTS): Discover falls back.
		for _, n := range nodes {
			for _, u := range []string{"noshards", "noslots"} {
				rule := "-cluster|shards"
				if u == "noslots" {
					rule = "-cluster|shards -cluster|slots"
				}
				args := []any{"ACL", "SETUSER", u, "on", ">pw", "~*", "+@all"}
				for _, r := range strings.Fields(rule) {
					args = append(args, r)
				}
				if err := n.C.Do(ctx, args...).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		for u, via := range map[string]string{"noshards": "CLUSTER SLOTS", "noslots": "CLUSTER NODES"} {
			got, err := Discover(ctx, addrs(nodes), func(addr string) *redis.Options {
				return &redis.Options{Addr: addr, Username: u, Password: "pw", Protocol: 2, DisableIdentity: true}
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.Via != via {
				t.Errorf("user %s: via %s, want %s", u, got.Via, via)
			}
			if err := sameShape(m, got); err != nil {
				t.Errorf("user %s: %v", u, err)
			}
		}
	})

	t.Run("failover", func(t *testing.T) {
		old := m.Shards[0]
		promoted := old.Replicas[0]
		c := byAddr(nodes, promoted.Addr).C
		if err := c.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
			t.Fatal(err)
		}
		m = waitAgree(t, nodes, 15*time.Second, func(m *Map) error {
			if err := healthy(m); err != nil {
				return err
			}
			s := m.Shards[0]
			if s.Master.ID != promoted.ID || s.Master.Addr != promoted.Addr || s.Replicas[0].ID != old.Master.ID ||
				!slices.Equal(s.Slots, old.Slots) {
				return fmt.Errorf("not failed over yet: %v", m)
			}
			return nil
		})
		waitHealthy(t, nodes, 15*time.Second)
		checkOwners(t, nodes, m)
	})

	t.Run("reshard", func(t *testing.T) {
		before := m
		from, to := before.Shards[1].Master, before.Shards[2].Master
		// A key in the first slot that will move, to see it move with it.
		moved := "{" + router.TagForSlot(before.Shards[1].Slots[0][0]) + "}:moved"
		if err := byAddr(nodes, from.Addr).C.Set(ctx, moved, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		redisCLI(t, "--cluster", "reshard", nodes[0].Addr, "--cluster-from", from.ID, "--cluster-to", to.ID,
			"--cluster-slots", "100", "--cluster-yes")
		m = waitAgree(t, nodes, 15*time.Second, func(m *Map) error {
			if err := healthy(m); err != nil {
				return err
			}
			changed := 0
			for slot := range SlotCount {
				a, _ := before.MasterOf(slot)
				b, _ := m.MasterOf(slot)
				if a.Addr != b.Addr {
					if a.Addr != from.Addr || b.Addr != to.Addr {
						return fmt.Errorf("slot %d moved from %s to %s", slot, a.Addr, b.Addr)
					}
					changed++
				}
			}
			if changed != 100 {
				return fmt.Errorf("%d slots moved", changed)
			}
			return nil
		})
		if mo, _ := m.MasterOf(router.SlotString(moved)); mo.Addr != to.Addr {
			t.Errorf("slot of %q is served by %s, want %s", moved, mo.Addr, to.Addr)
		}
		if v, err := byAddr(nodes, to.Addr).C.Get(ctx, moved).Result(); v != "v" {
			t.Errorf("GET %s on %s: %q %v", moved, to.Addr, v, err)
		}
		if before.Equal(m) || m.Equal(before) {
			t.Error("Equal after a reshard")
		}
		checkOwners(t, nodes, m)
		t.Log(m)
	})

	t.Run("failed replica", func(t *testing.T) {
		gone := m.Shards[2].Replicas[0]
		byAddr(nodes, gone.Addr).Stop()
		var live []*testNode
		for _, n := range nodes {
			if n.Addr != gone.Addr {
				live = append(live, n)
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for _, w := range allWays {
			for {
				got, err := discover(ctx, []string{live[0].Addr}, nil, []way{w})
				if err != nil {
					t.Fatal(err)
				}
				ok := got.Equal(m) && len(got.Shards[2].Replicas) == 0
				if w.name == "CLUSTER SLOTS" {
					ok = ok && len(got.Excluded) == 0 // failed replicas are not listed
				} else {
					ok = ok && len(got.Excluded) == 1 && got.Excluded[0].ID == gone.ID && got.Excluded[0].Health == "fail"
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					nodesText, _ := live[0].C.ClusterNodes(ctx).Result()
					shards, _ := live[0].C.Do(ctx, "CLUSTER", "SHARDS").Slice()
					t.Fatalf("via %s: %v excluded %+v (gone %+v)\n%s\n%v", w.name, got, got.Excluded, gone, nodesText, shards)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	t.Run("is cluster", func(t *testing.T) {
		ok, err := ctl.IsCluster(ctx, nodes[0].C)
		if err != nil || !ok {
			t.Errorf("IsCluster: %v %v", ok, err)
		}
	})
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func TestDiscoverErrors(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	plain := startNode(t, false)
	ok, err := ctl.IsCluster(ctx, plain.C)
	if err != nil || ok {
		t.Errorf("IsCluster on a plain server: %v %v", ok, err)
	}

	_, err = Discover(ctx, []string{"127.0.0.1:1", "no-port", plain.Addr}, nil)
	var de *DiscoverError
	if !errors.As(err, &de) || len(de.Errs) != 3 {
		t.Fatalf("error %v", err)
	}
	if !errors.Is(err, ErrNotCluster) {
		t.Errorf("%v does not wrap ErrNotCluster", err)
	}
	msg := err.Error()
	for _, want := range []string{"127.0.0.1:1: ", "no-port: ", plain.Addr + ": not a cluster node", "topology: no seed answered"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("%q is not one line", msg)
	}
	if _, err := Discover(ctx, nil, nil); err == nil || err.Error() != "topology: no seed address given" {
		t.Errorf("no seeds: %v", err)
	}
}

func TestFromNodes(t *testing.T) {
	text := `07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [10923->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006 slave,fail 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1426238317741 6 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca :30001@31001 myself,master - 0 0 1 connected 0-5459 5460
aaaa :0@0 master,noaddr - 0 0 0 disconnected
bbbb ::1:30009@40009 slave,fail? 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 0 0 connected
`
	m, err := fromNodes(text, seedInfo{host: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.String(); got != "10.0.0.1:30001[0-5460]+1 127.0.0.1:30002[5461-10922]+2 127.0.0.1:30003[10923-16383]+0 excluded:2" {
		t.Errorf("map %s", got)
	}
	if r := m.Shards[1].Replicas; r[1].Addr != "[::1]:30009" || r[1].Health != "pfail" || r[0].MasterID != m.Shards[1].Master.ID {
		t.Errorf("replicas %+v", r)
	}
	if m.Excluded[0].Health != "noaddr" || m.Excluded[1].Health != "fail" {
		t.Errorf("excluded %+v", m.Excluded)
	}
	if _, err := fromNodes("x 1.2.3.4:1@2 master - 0 0 0 connected 5-3", seedInfo{}); err == nil {
		t.Error("bad range accepted")
	}
	if _, err := fromNodes("x y", seedInfo{}); err == nil {
		t.Error("short line accepted")
	}
}

func TestFromShards(t *testing.T) {
	shards := []redis.ClusterShard{
		{Slots: []redis.SlotRange{{Start: 100, End: 200}, {Start: 0, End: 99}}, Nodes: []redis.Node{
			{ID: "m1", Endpoint: "10.0.0.1", IP: "10.0.0.1", Port: 7000, TLSPort: 8000, Role: "master", ReplicationOffset: 5, Health: "online"},
			{ID: "r1", Endpoint: "?", IP: "10.0.0.2", Port: 7000, Role: "replica", Health: "loading"},
			{ID: "r2", Endpoint: "?", Port: 7000, Role: "replica", Health: "online"},
		}},
		{Slots: []redis.SlotRange{{Start: 300, End: 400}}, Nodes: []redis.Node{
			{ID: "m2", Endpoint: "10.0.0.3", Port: 7000, Role: "master", Health: "fail"},
			{ID: "r3", Endpoint: "10.0.0.4", Port: 7000, Role: "replica", Health: "online"},
		}},
		{Nodes: []redis.Node{{ID: "m4", Endpoint: "host4", Port: 7000, Role: "master", Health: "online"}}},
	}
	m := fromShards(shards, seedInfo{host: "seed"})
	if got := m.String(); got != "10.0.0.1:7000[0-200]+1 host4:7000[]+0 excluded:3" {
		t.Errorf("map %s", got)
	}
	if r := m.Shards[0].Replicas; r[0].Addr != "10.0.0.2:7000" || r[0].MasterID != "m1" || r[0].Health != "loading" {
		t.Errorf("replicas %+v", r)
	}
	if ms := m.Masters(); len(ms) != 1 || ms[0].ID != "m1" || ms[0].Offset != 5 {
		t.Errorf("masters %+v", ms)
	}
	if u := m.Unowned(); !slices.Equal(u, [][2]int{{201, 16383}}) {
		t.Errorf("unowned %v", u)
	}
	if _, ok := m.Owner(350); ok {
		t.Error("slot of a failed master has an owner")
	}
	if i, ok := m.Owner(150); !ok || i != 0 {
		t.Error("slot 150")
	}
	if m := fromShards(shards, seedInfo{tls: true}); m.Shards[0].Master.Addr != "10.0.0.1:8000" {
		t.Errorf("TLS: %s", m.Shards[0].Master.Addr)
	}
}

func TestFromSlots(t *testing.T) {
	slots := []redis.ClusterSlot{
		{Start: 0, End: 10, Nodes: []redis.ClusterNode{{ID: "m1", Addr: ":7000"}, {ID: "r1", Addr: "10.0.0.2:7000"}}},
		{Start: 20, End: 30, Nodes: []redis.ClusterNode{{ID: "m1", Addr: ":7000"}, {ID: "r1", Addr: "10.0.0.2:7000"}}},
		{Start: 11, End: 19, Nodes: []redis.ClusterNode{{ID: "m2", Addr: "?:7000"}}},
	}
	m := fromSlots(slots, seedInfo{host: "seed"})
	if got := m.String(); got != "seed:7000[0-10,20-30]+1 excluded:1" {
		t.Errorf("map %s", got)
	}
}

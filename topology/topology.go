// Package topology finds the shape of a Redis Cluster: which master serves
// each hash slot, its replicas, and the nodes that are down. It asks a seed
// node with CLUSTER SHARDS (Redis 7.0+), falling back to CLUSTER SLOTS and
// then CLUSTER NODES where a server is older or refuses the newer command.
package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/resp"
)

// SlotCount is the number of hash slots of a Redis Cluster.
const SlotCount = 16384

// Node is one cluster node as the cluster describes it.
type Node struct {
	ID   string
	Addr string // host:port for clients, as the node announces it
	// Master is true for a master; a replica has MasterID, its master's ID.
	Master   bool
	MasterID string
	// Offset is the replication offset when known (CLUSTER SHARDS), else 0.
	Offset int64
	// Health is CLUSTER SHARDS's "online", "fail" or "loading" (Redis
	// 7.0-7.4 say "fail" where the documentation says "failed"; both count
	// as failed); from CLUSTER NODES "online", "pfail" (suspected, still
	// used) or "fail"; "" when the answer does not say (CLUSTER SLOTS). A
	// node without an address has "noaddr", one still joining "handshake".
	Health string
}

// Shard is a master, its replicas and the slots it serves.
type Shard struct {
	Master   Node
	Replicas []Node   // ordered by address
	Slots    [][2]int // inclusive ranges, ascending, adjacent ranges merged
}

// Map is the cluster's slot → master assignment at one moment.
type Map struct {
	// Shards are ordered by their first slot; masters serving no slot come
	// last, ordered by address.
	Shards []Shard
	// Excluded are the nodes the cluster reports but that cannot be used:
	// failed, without an address, still in handshake, and replicas of a
	// master so left out. The slots of an excluded master have no owner.
	Excluded []Node
	// Epoch is cluster_current_epoch of the node that answered (0 when its
	// CLUSTER INFO could not be read). Failovers and slot moves raise it.
	Epoch int64
	// Seed is the seed that answered, Via the command it answered:
	// "CLUSTER SHARDS", "CLUSTER SLOTS" or "CLUSTER NODES".
	Seed, Via string

	owner [SlotCount]int16 // index into Shards; -1 for none
}

// Owner returns the index in Shards of the shard serving slot; ok is false
// when no usable master serves it (or slot is out of range).
func (m *Map) Owner(slot int) (shard int, ok bool) {
	if slot < 0 || slot >= SlotCount {
		return -1, false
	}
	if i := m.owner[slot]; i >= 0 {
		return int(i), true
	}
	return -1, false
}

// MasterOf returns the master serving slot.
func (m *Map) MasterOf(slot int) (Node, bool) {
	i, ok := m.Owner(slot)
	if !ok {
		return Node{}, false
	}
	return m.Shards[i].Master, true
}

// Masters returns the masters that serve at least one slot, in shard order.
func (m *Map) Masters() []Node {
	var out []Node
	for _, s := range m.Shards {
		if len(s.Slots) > 0 {
			out = append(out, s.Master)
		}
	}
	return out
}

// Unowned returns the slot ranges no usable master serves (none when the
// cluster is healthy).
func (m *Map) Unowned() [][2]int {
	var out [][2]int
	for s := 0; s < SlotCount; s++ {
		if m.owner[s] >= 0 {
			continue
		}
		e := s
		for e+1 < SlotCount && m.owner[e+1] < 0 {
			e++
		}
		out = append(out, [2]int{s, e})
		s = e
	}
	return out
}

// Equal reports whether m and o assign every slot to the same master
// address (or both to none). Replicas, health, offsets and epochs are not
// compared.
func (m *Map) Equal(o *Map) bool {
	if m == nil || o == nil {
		return m == o
	}
	for s := range SlotCount {
		a, b := m.owner[s], o.owner[s]
		if (a < 0) != (b < 0) {
			return false
		}
		if a >= 0 && m.Shards[a].Master.Addr != o.Shards[b].Master.Addr {
			return false
		}
	}
	return true
}

// String is a one-line summary: each master's address and slot ranges.
func (m *Map) String() string {
	var b strings.Builder
	for i, s := range m.Shards {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(s.Master.Addr)
		b.WriteString("[")
		for j, r := range s.Slots {
			if j > 0 {
				b.WriteString(",")
			}
			if r[0] == r[1] {
				fmt.Fprintf(&b, "%d", r[0])
			} else {
				fmt.Fprintf(&b, "%d-%d", r[0], r[1])
			}
		}
		fmt.Fprintf(&b, "]+%d", len(s.Replicas))
	}
	if len(m.Excluded) > 0 {
		fmt.Fprintf(&b, " excluded:%d", len(m.Excluded))
	}
	return b.String()
}

// ErrNotCluster is wrapped by the error of a seed that is not a cluster node.
var ErrNotCluster = errors.New("not a cluster node (cluster support disabled)")

// DiscoverError is the error of Discover when no seed answered.
type DiscoverError struct {
	Seeds []string
	Errs  []error // Errs[i] is the error of Seeds[i]
}

func (e *DiscoverError) Error() string {
	if len(e.Seeds) == 0 {
		return "topology: no seed address given"
	}
	var b strings.Builder
	b.WriteString("topology: no seed answered: ")
	for i, s := range e.Seeds {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", s, e.Errs[i])
	}
	return b.String()
}

func (e *DiscoverError) Unwrap() []error { return e.Errs }

// way is one command Discover can read the topology with.
type way struct {
	name string
	read func(ctx context.Context, c *redis.Client, at seedInfo) (*Map, error)
}

var allWays = []way{
	{"CLUSTER SHARDS", readShards},
	{"CLUSTER SLOTS", readSlots},
	{"CLUSTER NODES", readNodes},
}

// seedInfo is what address parsing needs to know of the seed.
type seedInfo struct {
	host string // the seed's host, for nodes that announce no address
	tls  bool   // the client speaks TLS: prefer a node's TLS port
}

// Discover reads the cluster topology from the first seed (host:port) that
// answers. opt gives the client options for an address (credentials, TLS,
// timeouts, the connection's name); nil means plain TCP, RESP2, 5 s
// timeouts, named ferry-ctl-0. On each seed it tries CLUSTER SHARDS, then
// CLUSTER SLOTS, then CLUSTER NODES, moving on when the server refuses a
// command (unknown, renamed, ACL) but not when the seed cannot be reached.
// When no seed answers, the error is a *DiscoverError naming each seed's
// error; a seed that is not a cluster node gives an error wrapping
// ErrNotCluster.
func Discover(ctx context.Context, seeds []string, opt func(addr string) *redis.Options) (*Map, error) {
	return discover(ctx, seeds, opt, allWays)
}

func discover(ctx context.Context, seeds []string, opt func(addr string) *redis.Options, ways []way) (*Map, error) {
	de := &DiscoverError{}
	for _, seed := range seeds {
		m, err := discoverAt(ctx, seed, opt, ways)
		if err == nil {
			return m, nil
		}
		de.Seeds = append(de.Seeds, seed)
		de.Errs = append(de.Errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, de
}

func discoverAt(ctx context.Context, seed string, opt func(addr string) *redis.Options, ways []way) (*Map, error) {
	o := options(seed, opt)
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("bad address: %w", err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	at := seedInfo{host: host, tls: o.TLSConfig != nil}
	var refused []string
	for _, w := range ways {
		m, err := w.read(ctx, c, at)
		if err == nil {
			m.Seed, m.Via = seed, w.name
			if info, err := c.ClusterInfo(ctx).Result(); err == nil {
				m.Epoch, _ = strconv.ParseInt(ctl.InfoField(info, "cluster_current_epoch"), 10, 64)
			}
			return m, nil
		}
		if isReplyError(err) && strings.Contains(err.Error(), "cluster support disabled") {
			return nil, ErrNotCluster
		}
		if unreachable(ctx, err) {
			return nil, err // the next seed may do better
		}
		// Refused (unknown or renamed command, ACL), or an answer we
		// could not read: the next command may do better.
		refused = append(refused, fmt.Sprintf("%s: %v", w.name, err))
	}
	return nil, fmt.Errorf("every topology command refused: %s", strings.Join(refused, "; "))
}

// options are opt's options for addr (copied), or ferry's defaults.
func options(addr string, opt func(addr string) *redis.Options) *redis.Options {
	var o redis.Options
	if opt != nil {
		if p := opt(addr); p != nil {
			o = *p
		}
	} else {
		o = redis.Options{
			Protocol:        2,
			DisableIdentity: true,
			DialTimeout:     5 * time.Second,
			Dialer:          dial.Guarded(5*time.Second, nil, resp.ControlLimits()),
			ReadTimeout:     5 * time.Second,
			WriteTimeout:    5 * time.Second,
			PoolSize:        1,
			MaxRetries:      1,
			DialerRetries:   1,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
			OnConnect: func(ctx context.Context, cn *redis.Conn) error {
				cn.ClientSetName(ctx, "ferry-ctl-0") // only helps operators: ignore a refusal
				return nil
			},
		}
	}
	if o.Addr == "" {
		o.Addr = addr
	}
	return &o
}

// isReplyError: the server answered with an error (as opposed to a network
// failure or a timeout).
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil)
}

// unreachable: the seed cannot be talked to (network, timeout, context).
func unreachable(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() != nil || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, redis.ErrClosed)
}

// joinAddr makes host:port, standing in the seed's host for a node that
// announces none. ok is false for an unknown endpoint ("?") or no port.
func joinAddr(host string, port int64, at seedInfo) (string, bool) {
	if host == "?" || port <= 0 {
		return "", false
	}
	if host == "" {
		host = at.host
	}
	return net.JoinHostPort(host, strconv.FormatInt(port, 10)), true
}

// readShards reads CLUSTER SHARDS: per shard its slot ranges and its nodes
// (id, endpoint, ip, port, tls-port, role, replication-offset, health).
func readShards(ctx context.Context, c *redis.Client, at seedInfo) (*Map, error) {
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	return fromShards(shards, at), nil
}

func fromShards(shards []redis.ClusterShard, at seedInfo) *Map {
	var raw []Shard
	var excluded []Node
	for _, sh := range shards {
		var nodes []Node
		masterAt := -1
		for _, n := range sh.Nodes {
			host := n.Endpoint
			if host == "" || host == "?" {
				host = cmp.Or(n.IP, host)
			}
			port := n.Port
			if port == 0 || at.tls && n.TLSPort > 0 {
				port = n.TLSPort
			}
			node := Node{ID: n.ID, Master: n.Role == "master", Offset: n.ReplicationOffset, Health: n.Health}
			addr, ok := joinAddr(host, port, at)
			node.Addr = addr
			if !ok {
				node.Health = "noaddr"
			}
			if node.Master && masterAt < 0 && usable(node) {
				masterAt = len(nodes)
			}
			nodes = append(nodes, node)
		}
		if masterAt < 0 {
			excluded = append(excluded, nodes...)
			continue
		}
		s := Shard{Master: nodes[masterAt]}
		for i, n := range nodes {
			switch {
			case i == masterAt:
			case !usable(n) || n.Master:
				// A failed old master stays in its shard's list; a second
				// live master in one shard is a view in flux: leave it out.
				excluded = append(excluded, n)
			default:
				n.MasterID = s.Master.ID
				s.Replicas = append(s.Replicas, n)
			}
		}
		for _, r := range sh.Slots {
			s.Slots = append(s.Slots, [2]int{int(r.Start), int(r.End)})
		}
		raw = append(raw, s)
	}
	return assemble(raw, excluded)
}

func usable(n Node) bool {
	switch n.Health {
	case "fail", "failed", "noaddr", "handshake":
		return false
	}
	return n.Addr != ""
}

// readSlots reads CLUSTER SLOTS: per slot range its master then its
// replicas (failed replicas are not listed; health is not given).
func readSlots(ctx context.Context, c *redis.Client, at seedInfo) (*Map, error) {
	//lint:ignore SA1019 CLUSTER SLOTS is the fallback for servers older than 7.0
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	return fromSlots(slots, at), nil
}

func fromSlots(slots []redis.ClusterSlot, at seedInfo) *Map {
	byMaster := map[string]int{} // master ID (or address) → index in raw
	var raw []Shard
	var excluded []Node
	seen := map[string]bool{}
	for _, sl := range slots {
		if len(sl.Nodes) == 0 {
			continue
		}
		var nodes []Node
		for i, n := range sl.Nodes {
			node := Node{ID: n.ID, Master: i == 0}
			host, port, err := net.SplitHostPort(n.Addr)
			p, _ := strconv.ParseInt(port, 10, 64)
			addr, ok := joinAddr(host, p, at)
			if err != nil || !ok {
				node.Health = "noaddr"
			}
			node.Addr = addr
			nodes = append(nodes, node)
		}
		m := nodes[0]
		key := cmp.Or(m.ID, m.Addr)
		if !usable(m) {
			for _, n := range nodes {
				if !seen[cmp.Or(n.ID, n.Addr)] {
					seen[cmp.Or(n.ID, n.Addr)] = true
					excluded = append(excluded, n)
				}
			}
			continue
		}
		i, ok := byMaster[key]
		if !ok {
			i = len(raw)
			byMaster[key] = i
			raw = append(raw, Shard{Master: m})
			for _, r := range nodes[1:] {
				r.MasterID = m.ID
				if usable(r) {
					raw[i].Replicas = append(raw[i].Replicas, r)
				} else {
					excluded = append(excluded, r)
				}
			}
		}
		raw[i].Slots = append(raw[i].Slots, [2]int{int(sl.Start), int(sl.End)})
	}
	return assemble(raw, excluded)
}

// readNodes reads CLUSTER NODES, one line per node:
//
//	<id> <ip:port@cport[,hostname]> <flags> <master-id|-> <ping> <pong> <config-epoch> <link> <slot|from-to>...
func readNodes(ctx context.Context, c *redis.Client, at seedInfo) (*Map, error) {
	text, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	return fromNodes(text, at)
}

func fromNodes(text string, at seedInfo) (*Map, error) {
	type line struct {
		node  Node
		slots [][2]int
	}
	var lines []line
	for l := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES: short line %q", l)
		}
		n := Node{ID: f[0], Health: "online"}
		flags := strings.Split(f[2], ",")
		n.Master = slices.Contains(flags, "master")
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		switch {
		case slices.Contains(flags, "fail"):
			n.Health = "fail"
		case slices.Contains(flags, "noaddr"):
			n.Health = "noaddr"
		case slices.Contains(flags, "handshake"):
			n.Health = "handshake"
		case slices.Contains(flags, "fail?"):
			n.Health = "pfail"
		}
		addr, _, _ := strings.Cut(f[1], ",") // drop ",hostname"
		addr, _, _ = strings.Cut(addr, "@")  // drop "@cport"
		if i := strings.LastIndexByte(addr, ':'); i >= 0 {
			host := strings.Trim(addr[:i], "[]")
			port, _ := strconv.ParseInt(addr[i+1:], 10, 64)
			if a, ok := joinAddr(host, port, at); ok {
				n.Addr = a
			}
		}
		if n.Addr == "" {
			n.Health = "noaddr"
		}
		var slots [][2]int
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being imported or migrated: still its owner's
			}
			from, to, isRange := strings.Cut(s, "-")
			a, err1 := strconv.Atoi(from)
			b, err2 := a, error(nil)
			if isRange {
				b, err2 = strconv.Atoi(to)
			}
			if err1 != nil || err2 != nil || a < 0 || b < a || b >= SlotCount {
				return nil, fmt.Errorf("CLUSTER NODES: bad slot %q of %s", s, n.ID)
			}
			slots = append(slots, [2]int{a, b})
		}
		lines = append(lines, line{n, slots})
	}
	var raw []Shard
	var excluded []Node
	masters := map[string]int{}
	for _, l := range lines {
		if !l.node.Master {
			continue
		}
		if !usable(l.node) {
			excluded = append(excluded, l.node)
			continue
		}
		masters[l.node.ID] = len(raw)
		raw = append(raw, Shard{Master: l.node, Slots: l.slots})
	}
	for _, l := range lines {
		if l.node.Master {
			continue
		}
		i, ok := masters[l.node.MasterID]
		if !ok || !usable(l.node) {
			excluded = append(excluded, l.node)
			continue
		}
		raw[i].Replicas = append(raw[i].Replicas, l.node)
	}
	return assemble(raw, excluded), nil
}

// assemble builds a Map: the first shard to claim a slot owns it, each
// shard's ranges are rebuilt from what it owns, shards are ordered by first
// slot and replicas by address.
func assemble(raw []Shard, excluded []Node) *Map {
	var claim [SlotCount]int16
	for i := range claim {
		claim[i] = -1
	}
	for i, s := range raw {
		for _, r := range s.Slots {
			for slot := max(r[0], 0); slot <= r[1] && slot < SlotCount; slot++ {
				if claim[slot] < 0 {
					claim[slot] = int16(i)
				}
			}
		}
	}
	first := make([]int, len(raw))
	for i := range raw {
		raw[i].Slots = nil
		first[i] = SlotCount
	}
	for slot := 0; slot < SlotCount; slot++ {
		i := claim[slot]
		if i < 0 {
			continue
		}
		s := &raw[i]
		if n := len(s.Slots); n > 0 && s.Slots[n-1][1] == slot-1 {
			s.Slots[n-1][1] = slot
		} else {
			s.Slots = append(s.Slots, [2]int{slot, slot})
		}
		first[i] = min(first[i], slot)
	}
	order := make([]int, len(raw))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(first[a], first[b]), strings.Compare(raw[a].Master.Addr, raw[b].Master.Addr))
	})
	m := &Map{Shards: make([]Shard, len(raw)), Excluded: excluded}
	newIndex := make([]int16, len(raw))
	for to, from := range order {
		m.Shards[to] = raw[from]
		newIndex[from] = int16(to)
		slices.SortFunc(m.Shards[to].Replicas, func(a, b Node) int { return strings.Compare(a.Addr, b.Addr) })
	}
	for slot, i := range claim {
		m.owner[slot] = -1
		if i >= 0 {
			m.owner[slot] = newIndex[i]
		}
	}
	return m
}

// MergeSeeds adds every node of m (masters and replicas) to seeds, so that
// the next discovery can start from any of them.
func MergeSeeds(seeds []string, m *Map) []string {
	seen := map[string]bool{}
	for _, s := range seeds {
		seen[s] = true
	}
	for _, sh := range m.Shards {
		for _, n := range append([]Node{sh.Master}, sh.Replicas...) {
			if !seen[n.Addr] {
				seen[n.Addr] = true
				seeds = append(seeds, n.Addr)
			}
		}
	}
	return seeds
}

// Package source finds what ferry reads: the shards of the source
// deployment — the master of a standalone server (found among several
// addresses or through Sentinel), or the masters of a cluster with their
// slots — and, for each, the node to read it from now (its master, or with
// read_from = "replica" its most advanced replica in sync). Discovery runs
// again on every reconnect, so a failover is followed.
package source

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/topology"
)

// Config is what source discovery needs of the job's settings.
type Config struct {
	Endpoint conf.Endpoint
	// Shards is this process's share of a cluster source (shards I/N).
	Shards conf.ShardSet
}

// Shard is one replication stream of the source: the master of a standalone
// deployment, or one master of a cluster with its slots. Its functions may
// be called from any goroutine.
type Shard struct {
	Name  string   // ferry-reader-<i>
	Slots [][2]int // cluster: the shard's slots when ferry found it; nil: all
	Home  int      // cluster: a slot of the shard, to find it again after a failover; -1 otherwise
	// Resolve says which node to read the shard from now: its master, or
	// with read_from = "replica" its most advanced replica.
	Resolve func(ctx context.Context) (dial.Options, error)
	Fixed   bool // one address, nothing to resolve on reconnect
	// Master is the shard's master now, wherever ferry reads from (cutover
	// pauses it).
	Master func(ctx context.Context) (dial.Options, error)
}

// Owns reports whether a key belongs to the shard (for the sweep after the
// shard alone resynced).
func (s *Shard) Owns(key string) bool {
	if s.Slots == nil {
		return true
	}
	slot := router.SlotString(key)
	for _, r := range s.Slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// Source is what ferry reads: one shard for a standalone source, one per
// master for a cluster (this process's share of them, with shards I/N).
type Source struct {
	Cluster bool
	Shards  []*Shard
	// Foreign are the slots of the shards other processes take (shards
	// I/N): a key moving in from one of them is a reshard across
	// processes, which this one cannot order.
	Foreign [][2]int
}

// Open finds the source's shards. A cluster is detected with INFO cluster;
// a sentinel:// address is asked for its master; several addresses of a
// standalone deployment are searched for the one that is master now.
func Open(ctx context.Context, cfg Config) (*Source, error) {
	e := cfg.Endpoint
	replica := e.ReadFrom == conf.ReadFromReplica
	opts := func(addr string) (dial.Options, error) { return ctl.DialOptions(e, addr) }
	if e.Scheme == "sentinel" {
		if err := oneShard(cfg.Shards); err != nil {
			return nil, err
		}
		sh := &Shard{Name: "ferry-reader-0", Home: -1}
		sh.Master = func(ctx context.Context) (dial.Options, error) {
			addr, err := ctl.SentinelMaster(ctx, e)
			if err != nil {
				return dial.Options{}, err
			}
			return opts(addr)
		}
		sh.Resolve = func(ctx context.Context) (dial.Options, error) {
			addr, err := ctl.SentinelMaster(ctx, e)
			if err != nil {
				return dial.Options{}, err
			}
			if replica {
				if addr, err = bestReplica(ctx, opts, addr); err != nil {
					return dial.Options{}, err
				}
			}
			return opts(addr)
		}
		if _, err := sh.Resolve(ctx); err != nil {
			return nil, fmt.Errorf("source %w", err)
		}
		return &Source{Shards: []*Shard{sh}}, nil
	}

	first, err := opts(e.Hosts[0])
	if err != nil {
		return nil, err
	}
	c := ctl.New(first)
	cl, err := ctl.IsCluster(ctx, c)
	c.Close()
	if err != nil && len(e.Hosts) == 1 {
		return nil, fmt.Errorf("source %w", ctl.Describe(first.Addr, err))
	}
	if cl {
		return openCluster(ctx, cfg, replica)
	}
	if err := oneShard(cfg.Shards); err != nil {
		return nil, err
	}
	sh := &Shard{Name: "ferry-reader-0", Home: -1}
	hosts := e.Hosts
	sh.Master = func(ctx context.Context) (dial.Options, error) {
		if len(hosts) == 1 {
			return first, nil
		}
		addr, err := findMaster(ctx, opts, hosts)
		if err != nil {
			return dial.Options{}, err
		}
		return opts(addr)
	}
	sh.Resolve = func(ctx context.Context) (dial.Options, error) {
		addr := hosts[0]
		if len(hosts) > 1 {
			var err error
			if addr, err = findMaster(ctx, opts, hosts); err != nil {
				return dial.Options{}, err
			}
		}
		if replica {
			var err error
			if addr, err = bestReplica(ctx, opts, addr); err != nil {
				return dial.Options{}, err
			}
		}
		return opts(addr)
	}
	if len(hosts) == 1 && !replica {
		sh.Resolve = func(context.Context) (dial.Options, error) { return first, nil }
		sh.Fixed = true
	}
	return &Source{Shards: []*Shard{sh}}, nil
}

// oneShard refuses shards I/N (N > 1) for a source that is one shard.
func oneShard(set conf.ShardSet) error {
	if set.All() {
		return nil
	}
	return fault.PermanentErr("", "", "remove shards (or set it to 0/1)",
		fmt.Errorf("shards %s: the source is not a cluster: it is one shard, which one process reads", set))
}

func openCluster(ctx context.Context, cfg Config, replica bool) (*Source, error) {
	e := cfg.Endpoint
	opts := func(addr string) (dial.Options, error) { return ctl.DialOptions(e, addr) }
	// Every node ever seen is a seed for later discoveries: the configured
	// address may be the master that just died.
	var seedMu sync.Mutex
	seeds := append([]string(nil), e.Hosts...)
	discover := func(ctx context.Context) (*topology.Map, error) {
		seedMu.Lock()
		list := append([]string(nil), seeds...)
		seedMu.Unlock()
		m, err := topology.Discover(ctx, list, func(addr string) *redis.Options {
			o, _ := opts(addr)
			return ctl.Options(o, "ferry-ctl-0", 0)
		})
		if err == nil {
			seedMu.Lock()
			seeds = topology.MergeSeeds(seeds, m)
			seedMu.Unlock()
		}
		return m, err
	}
	m, err := discover(ctx)
	if err != nil {
		return nil, fmt.Errorf("source cluster: %w", err)
	}
	src := &Source{Cluster: true}
	// shards I/N: this process's share, in the order all processes agree on.
	all := byFirstSlot(m.Shards)
	for k, sh := range all {
		if !cfg.Shards.Takes(k) {
			src.Foreign = append(src.Foreign, sh.Slots...)
			continue
		}
		s := &Shard{Name: fmt.Sprintf("ferry-reader-%d", len(src.Shards)), Slots: sh.Slots, Home: sh.Slots[0][0]}
		// The shard now: whichever master serves its home slot.
		now := func(ctx context.Context) (topology.Shard, error) {
			m, err := discover(ctx)
			if err != nil {
				return topology.Shard{}, err
			}
			k, ok := m.Owner(s.Home)
			if !ok {
				return topology.Shard{}, fmt.Errorf("source cluster: slot %d has no master (failover in progress?)", s.Home)
			}
			return m.Shards[k], nil
		}
		s.Master = func(ctx context.Context) (dial.Options, error) {
			sh, err := now(ctx)
			if err != nil {
				return dial.Options{}, err
			}
			return opts(sh.Master.Addr)
		}
		s.Resolve = func(ctx context.Context) (dial.Options, error) {
			sh, err := now(ctx)
			if err != nil {
				return dial.Options{}, err
			}
			addr := sh.Master.Addr
			if replica {
				// The replica with the highest offset, compared as numbers;
				// only one whose link to the master is up is in sync.
				best := int64(-1)
				for _, r := range sh.Replicas {
					if off, up := replicaOffset(ctx, opts, r.Addr); up && off > best {
						best, addr = off, r.Addr
					}
				}
				if best < 0 {
					return dial.Options{}, fmt.Errorf("source cluster: the shard of slot %d has no replica in sync to read from (read_from = \"replica\")", s.Home)
				}
			}
			return opts(addr)
		}
		src.Shards = append(src.Shards, s)
	}
	if len(src.Shards) == 0 {
		return nil, fault.PermanentErr("", "", "run fewer processes than the source has shards",
			fmt.Errorf("shards %s: the source cluster has %d shards, none of them this process's", cfg.Shards, len(all)))
	}
	return src, nil
}

// replicaOffset reads a replica's offset and whether its link is up.
func replicaOffset(ctx context.Context, opts func(string) (dial.Options, error), addr string) (int64, bool) {
	o, err := opts(addr)
	if err != nil {
		return 0, false
	}
	c := ctl.New(o)
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil || ctl.InfoField(info, "role") != "slave" || ctl.InfoField(info, "master_link_status") != "up" {
		return 0, false
	}
	off, err := strconv.ParseInt(ctl.InfoField(info, "slave_repl_offset"), 10, 64)
	return off, err == nil
}

// bestReplica picks the in-sync replica of master with the highest offset.
func bestReplica(ctx context.Context, opts func(string) (dial.Options, error), master string) (string, error) {
	o, err := opts(master)
	if err != nil {
		return "", err
	}
	c := ctl.New(o)
	info, err := c.Info(ctx, "replication").Result()
	c.Close()
	if err != nil {
		return "", ctl.Describe(master, err)
	}
	best, addr := int64(-1), ""
	for i := 0; ; i++ {
		v := ctl.InfoField(info, "slave"+strconv.Itoa(i))
		if v == "" {
			break
		}
		f := map[string]string{}
		for _, kv := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(kv, "="); ok {
				f[k] = val
			}
		}
		if f["state"] != "online" || f["port"] == "0" {
			continue // ferry's own links show up here too, with port 0
		}
		cand := net.JoinHostPort(f["ip"], f["port"])
		if off, up := replicaOffset(ctx, opts, cand); up && off > best {
			best, addr = off, cand
		}
	}
	if addr == "" {
		return "", fmt.Errorf("%s has no replica in sync to read from (read_from = \"replica\")", master)
	}
	return addr, nil
}

// findMaster returns the address among hosts whose role is master.
func findMaster(ctx context.Context, opts func(string) (dial.Options, error), hosts []string) (string, error) {
	var errs []string
	for _, h := range hosts {
		o, err := opts(h)
		if err != nil {
			return "", err
		}
		c := ctl.New(o)
		info, err := c.Info(ctx, "replication").Result()
		c.Close()
		if err != nil {
			errs = append(errs, ctl.Describe(h, err).Error())
			continue
		}
		if ctl.InfoField(info, "role") == "master" {
			return h, nil
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("no master among %s (%s)", strings.Join(hosts, ", "), strings.Join(errs, "; "))
	}
	return "", fmt.Errorf("no master among %s", strings.Join(hosts, ", "))
}

// ReplIDs reads the replication ids a node continues: its own and the one
// it inherited in a failover (with the last offset of that history).
func ReplIDs(ctx context.Context, o dial.Options) (id, id2 string, off2 int64, err error) {
	c := ctl.New(o)
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return "", "", 0, ctl.Describe(o.Addr, err)
	}
	off2, _ = strconv.ParseInt(ctl.InfoField(info, "second_repl_offset"), 10, 64)
	return ctl.InfoField(info, "master_replid"), ctl.InfoField(info, "master_replid2"), off2, nil
}

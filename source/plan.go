package source

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/topology"
)

// byFirstSlot is the order every process of a split sync (shards I/N)
// numbers a source cluster's shards in: by their lowest slot, so that all
// agree, and a failover (a new address, the same slots) moves nothing
// between processes. Shards without slots are left out.
func byFirstSlot(shards []topology.Shard) []topology.Shard {
	out := slices.DeleteFunc(slices.Clone(shards), func(sh topology.Shard) bool { return len(sh.Slots) == 0 })
	slices.SortFunc(out, func(a, b topology.Shard) int { return a.Slots[0][0] - b.Slots[0][0] })
	return out
}

// Plan reads the source cluster of cfg and returns, for each of processes
// processes (shards I/processes), the source shards it takes.
func Plan(ctx context.Context, cfg Config, processes int) ([][]topology.Shard, error) {
	e := cfg.Endpoint
	if len(e.Hosts) == 0 {
		return nil, fmt.Errorf("no source address")
	}
	first, err := ctl.DialOptions(e, e.Hosts[0])
	if err != nil {
		return nil, err
	}
	cc := ctl.New(first)
	cl, err := ctl.IsCluster(ctx, cc)
	cc.Close()
	if err != nil {
		return nil, fmt.Errorf("source %w", ctl.Describe(first.Addr, err))
	}
	if !cl {
		return nil, fmt.Errorf("the source %s is not a cluster: it is one shard, which one process reads", first.Addr)
	}
	m, err := topology.Discover(ctx, e.Hosts, func(addr string) *redis.Options {
		o, _ := ctl.DialOptions(e, addr)
		return ctl.Options(o, "ferry-ctl-0", 0)
	})
	if err != nil {
		return nil, fmt.Errorf("source cluster: %w", err)
	}
	out := make([][]topology.Shard, processes)
	for k, sh := range byFirstSlot(m.Shards) {
		out[k%processes] = append(out[k%processes], sh)
	}
	return out, nil
}

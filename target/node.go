package target

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/writer"
)

// Node is one target master as the control plane sees it. Addr and Ctl
// change when a cluster master fails over and its writer follows.
type Node struct {
	Addr dial.Options
	Ctl  *redis.Client
	// RDBVersion is the RDB version the node writes and so can RESTORE;
	// MaxBulk its proto-max-bulk-len.
	RDBVersion int
	MaxBulk    int64
	// LeaseKey is the job's lease on this master.
	LeaseKey string
}

// OpenNode opens a control connection to a target node and checks that it
// answers.
func OpenNode(ctx context.Context, o dial.Options) (*Node, error) {
	n := &Node{Addr: o, Ctl: ctl.New(o)}
	if err := n.Ctl.Ping(ctx).Err(); err != nil {
		n.Ctl.Close()
		return nil, fmt.Errorf("target %w", ctl.Describe(o.Addr, err))
	}
	return n, nil
}

// Close closes the control connection.
func (n *Node) Close() { n.Ctl.Close() }

// redial points the control connection at another address (failover).
func (n *Node) redial(o dial.Options) {
	old := n.Ctl
	n.Addr = o
	n.Ctl = ctl.New(o)
	old.Close()
}

// probe finds the node's RDB version exactly — by DUMPing a probe key and
// reading the version from the payload's footer — and its proto-max-bulk-len.
func (n *Node) probe(ctx context.Context, key string) error {
	if err := n.Ctl.Set(ctx, key, "x", time.Minute).Err(); err != nil {
		// The first write of a job: a user that may not SET learns here
		// which permission to grant.
		return fault.New("target "+n.Addr.Addr, "SET", fmt.Errorf("write probe key: %w", err))
	}
	dump, err := n.Ctl.Dump(ctx, key).Result()
	n.Ctl.Del(ctx, key)
	if err != nil || len(dump) < 10 {
		// DUMP forbidden: fall back to the server version.
		n.RDBVersion = n.rdbVersionFromInfo(ctx)
	} else {
		f := dump[len(dump)-10:]
		n.RDBVersion = int(binary.LittleEndian.Uint16([]byte(f[:2])))
	}
	n.MaxBulk = 512 << 20
	if v, err := n.Ctl.ConfigGet(ctx, "proto-max-bulk-len").Result(); err == nil {
		if s, ok := v["proto-max-bulk-len"]; ok {
			if b, err := strconv.ParseInt(s, 10, 64); err == nil && b > 0 {
				n.MaxBulk = b
			}
		}
	}
	return nil
}

// rdbVersionFromInfo maps redis_version to the RDB version it writes.
func (n *Node) rdbVersionFromInfo(ctx context.Context) int {
	info, err := n.Ctl.Info(ctx, "server").Result()
	if err != nil {
		return 0
	}
	return ctl.RDBVersion(ctl.InfoField(info, "redis_version"))
}

// Keyspace returns the number of keys per db (INFO keyspace).
func Keyspace(ctx context.Context, c *redis.Client) (map[int]int64, error) {
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, err
	}
	return ctl.Keyspace(info, "keys"), nil
}

// ForeignKeys counts the keys of a node that are not ferry's own, per db.
// Large dbs are not scanned: more keys than ferry could own means foreign.
func (n *Node) ForeignKeys(ctx context.Context) (map[int]int64, error) {
	ks, err := Keyspace(ctx, n.Ctl)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", n.Addr.Addr, err)
	}
	out := map[int]int64{}
	for db, cnt := range ks {
		if cnt == 0 {
			continue
		}
		if cnt > 1000 {
			out[db] = cnt
			continue
		}
		c := redis.NewClient(ctl.Options(n.Addr, "ferry-ctl-0", db))
		own := int64(0)
		iter := c.Scan(ctx, 0, writer.OwnPrefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			own++
		}
		err := iter.Err()
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("target %s: scan db %d: %w", n.Addr.Addr, db, err)
		}
		if cnt-own > 0 {
			out[db] = cnt - own
		}
	}
	return out, nil
}

// Sweep deletes, in every db of the node, the keys that are neither ferry's
// own nor in keep. It runs after a full resync has been applied and before
// the stream resumes, so the target then holds exactly the new snapshot:
// keys deleted on the source while ferry could not follow do not survive.
func (n *Node) Sweep(ctx context.Context, keep func(db int, key []byte) bool, owned func(db int, key string) bool) (int64, error) {
	ks, err := Keyspace(ctx, n.Ctl)
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", n.Addr.Addr, err)
	}
	var deleted int64
	for db := range ks {
		c := redis.NewClient(ctl.Options(n.Addr, "ferry-ctl-0", db))
		var stale []string
		// One UNLINK a key, pipelined: a cluster node refuses one that
		// names keys of different slots (CROSSSLOT).
		flush := func() error {
			if len(stale) == 0 {
				return nil
			}
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range stale {
					p.Unlink(ctx, k)
				}
				return nil
			})
			stale = stale[:0]
			for _, cmd := range cmds {
				if n, err := cmd.(*redis.IntCmd).Result(); err == nil {
					deleted += n
				}
			}
			return err
		}
		iter := c.Scan(ctx, 0, "", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			if strings.HasPrefix(k, writer.OwnPrefix) || !owned(db, k) || keep(db, []byte(k)) {
				continue
			}
			stale = append(stale, k)
			if len(stale) >= 500 {
				if err := flush(); err != nil {
					c.Close()
					return deleted, fmt.Errorf("sweep %s db %d: %w", n.Addr.Addr, db, err)
				}
			}
		}
		err := iter.Err()
		if err == nil {
			err = flush()
		}
		c.Close()
		if err != nil {
			return deleted, fmt.Errorf("sweep %s db %d: %w", n.Addr.Addr, db, err)
		}
	}
	return deleted, nil
}

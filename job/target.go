package job

import (
	"bytes"
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
)

// ownPrefix marks keys that belong to ferry itself on a target.
const ownPrefix = "__ferry:"

// ownKey reports whether key has the name of one of job's own keys on a
// target — its marker (__ferry:<job>:pos), a cluster slot or stream marker
// (__ferry:{tag}:<job>[:sN]), its probe — so that a source key of that name
// would be overwritten by ferry and later deleted. Other keys under
// __ferry: (another job's markers on a source that is itself a target) are
// carried like any key.
func ownKey(job string, key []byte) bool {
	rest, ok := bytes.CutPrefix(key, []byte(ownPrefix))
	if !ok {
		return false
	}
	if len(rest) > 0 && rest[0] == '{' {
		i := bytes.IndexByte(rest, '}')
		if i < 0 || i+1 >= len(rest) || rest[i+1] != ':' {
			return false
		}
		rest = rest[i+2:]
	}
	name, more := bytes.CutPrefix(rest, []byte(job))
	return more && (len(name) == 0 || name[0] == ':')
}

// ownKeyError is the refusal of a source key that has the name of one of the
// job's own keys.
func ownKeyError(job string, db int, key []byte) error {
	return fault.PermanentErr("", "", "rename the key on the source, run the job under another name (job), or leave the key out with a key filter",
		fmt.Errorf("source key %q (db %d) has the name of a key ferry keeps for job %q on the target: copied, it would be overwritten and then deleted", clip(key), db, job))
}

// node is one target master as the control plane sees it.
type node struct {
	addr     dial.Options
	ctl      *redis.Client
	rdbVer   int
	maxBulk  int64
	leaseKey string // the job's lease on this master (lease.go)
}

func openNode(ctx context.Context, o dial.Options, job string) (*node, error) {
	n := &node{addr: o, ctl: ctl.New(o)}
	if err := n.ctl.Ping(ctx).Err(); err != nil {
		n.ctl.Close()
		return nil, fmt.Errorf("target %w", ctl.Describe(o.Addr, err))
	}
	return n, nil
}

func (n *node) close() { n.ctl.Close() }

// redial points the control connection at another address (failover).
func (n *node) redial(o dial.Options) {
	old := n.ctl
	n.addr = o
	n.ctl = ctl.New(o)
	old.Close()
}

// probe finds the node's RDB version exactly — by DUMPing a probe key and
// reading the version from the payload's footer — and its proto-max-bulk-len.
func (n *node) probe(ctx context.Context, key string) error {
	if err := n.ctl.Set(ctx, key, "x", time.Minute).Err(); err != nil {
		return fmt.Errorf("target %s: write probe key: %w", n.addr.Addr, err)
	}
	dump, err := n.ctl.Dump(ctx, key).Result()
	n.ctl.Del(ctx, key)
	if err != nil || len(dump) < 10 {
		// DUMP forbidden: fall back to the server version.
		n.rdbVer = n.rdbVersionFromInfo(ctx)
	} else {
		f := dump[len(dump)-10:]
		n.rdbVer = int(binary.LittleEndian.Uint16([]byte(f[:2])))
	}
	n.maxBulk = 512 << 20
	if v, err := n.ctl.ConfigGet(ctx, "proto-max-bulk-len").Result(); err == nil {
		if s, ok := v["proto-max-bulk-len"]; ok {
			if b, err := strconv.ParseInt(s, 10, 64); err == nil && b > 0 {
				n.maxBulk = b
			}
		}
	}
	return nil
}

// rdbVersionFromInfo maps redis_version to the RDB version it writes.
func (n *node) rdbVersionFromInfo(ctx context.Context) int {
	info, err := n.ctl.Info(ctx, "server").Result()
	if err != nil {
		return 0
	}
	return ctl.RDBVersion(ctl.InfoField(info, "redis_version"))
}

// keyspace returns the number of keys per db (INFO keyspace).
func keyspace(ctx context.Context, c *redis.Client) (map[int]int64, error) {
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, err
	}
	return ctl.Keyspace(info, "keys"), nil
}

// foreignKeys counts the keys of a node that are not ferry's own, per db.
// Large dbs are not scanned: more keys than ferry could own means foreign.
func (n *node) foreignKeys(ctx context.Context) (map[int]int64, error) {
	ks, err := keyspace(ctx, n.ctl)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", n.addr.Addr, err)
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
		c := redis.NewClient(ctl.Options(n.addr, "ferry-ctl-0", db))
		own := int64(0)
		iter := c.Scan(ctx, 0, ownPrefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			own++
		}
		err := iter.Err()
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("target %s: scan db %d: %w", n.addr.Addr, db, err)
		}
		if cnt-own > 0 {
			out[db] = cnt - own
		}
	}
	return out, nil
}

// sweep deletes, in every db of the node, the keys that are neither ferry's
// own nor in keep. It runs after a full resync has been applied and before
// the stream resumes, so the target then holds exactly the new snapshot:
// keys deleted on the source while ferry could not follow do not survive.
func (n *node) sweep(ctx context.Context, keep *keySet, owned func(db int, key string) bool) (int64, error) {
	ks, err := keyspace(ctx, n.ctl)
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", n.addr.Addr, err)
	}
	var deleted int64
	for db := range ks {
		c := redis.NewClient(ctl.Options(n.addr, "ferry-ctl-0", db))
		var stale []string
		flush := func() error {
			if len(stale) == 0 {
				return nil
			}
			err := c.Unlink(ctx, stale...).Err()
			deleted += int64(len(stale))
			stale = stale[:0]
			return err
		}
		iter := c.Scan(ctx, 0, "", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			if strings.HasPrefix(k, ownPrefix) || !owned(db, k) || keep.has(db, []byte(k)) {
				continue
			}
			stale = append(stale, k)
			if len(stale) >= 500 {
				if err := flush(); err != nil {
					c.Close()
					return deleted, fmt.Errorf("sweep %s db %d: %w", n.addr.Addr, db, err)
				}
			}
		}
		err := iter.Err()
		if err == nil {
			err = flush()
		}
		c.Close()
		if err != nil {
			return deleted, fmt.Errorf("sweep %s db %d: %w", n.addr.Addr, db, err)
		}
	}
	return deleted, nil
}

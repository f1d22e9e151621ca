package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/rdb"
)

// Capabilities: what the source holds that the target cannot, found before
// the first write so that a refusal leaves the target untouched (and, with
// target_nonempty = "flush", not flushed). Today that is one thing: hashes
// with per-field TTLs (Redis 7.4+, RDB 12) going to an older target. The
// applier still refuses such a hash when it meets one (a live source may
// gain its first one after this check); this check only moves the common
// case to before anything is written.

// targetHoldsFieldTTLs reports whether every master of the target can hold
// per-field hash TTLs: RDB 12 or later, and HPEXPIREAT in its command table.
func (j *job) targetHoldsFieldTTLs(tgt target) bool {
	ver := 1 << 30
	for _, n := range tgt.nodes() {
		ver = min(ver, n.rdbVer)
	}
	if ver > 0 && ver < 12 {
		return false
	}
	c, _ := j.cmds.table.Parse([][]byte{[]byte("HPEXPIREAT"), []byte("k"), []byte("0"), []byte("FIELDS"), []byte("1"), []byte("f")})
	return j.cmds.known.Knows(&c)
}

// checkCapabilities refuses a source with hashes whose fields have TTLs
// when the target cannot hold them and on_unsupported is "refuse". src is
// nil for a file import.
func (j *job) checkCapabilities(ctx context.Context, tgt target, src *source) error {
	if j.c.OnUnsupported == conf.UnsupportedDrop || j.targetHoldsFieldTTLs(tgt) {
		return nil
	}
	var n int64
	var where string
	switch {
	case j.c.RDB != "":
		var err error
		if n, err = rdbFieldTTLHashes(ctx, j.c.RDB, j.c.JobDir()); err != nil {
			return nil // the import reports a file it cannot read
		}
		where = "the RDB file " + j.c.RDB
	case src != nil:
		n = j.sourceFieldTTLHashes(ctx, src)
		where = "the source"
	}
	if n == 0 {
		return nil
	}
	return fault.PermanentErr("", "", `migrate into Redis 7.4+ (or Valkey 9+), or set on_unsupported = "drop" to copy these hashes without their field TTLs (counted)`,
		fmt.Errorf("%s holds %d hash(es) with per-field TTLs, which the target cannot hold (RDB < 12 or no HPEXPIREAT); nothing was written", where, n))
}

// sourceFieldTTLHashes sums subexpiry of INFO keyspace (Redis 7.4+: hashes
// with field TTLs) over the source's shards. A shard that cannot be asked
// counts 0: the applier still refuses the first such hash it meets.
func (j *job) sourceFieldTTLHashes(ctx context.Context, src *source) int64 {
	var n int64
	for _, sh := range src.shards {
		o, err := sh.resolve(ctx)
		if err != nil {
			continue
		}
		c := newCtl(o)
		info, err := c.Info(ctx, "keyspace").Result()
		c.Close()
		if err != nil {
			continue
		}
		n += keyspaceSum(info, "subexpiry")
	}
	return n
}

// keyspaceSum sums one field over the dbs of an INFO keyspace reply
// ("db0:keys=3,expires=0,avg_ttl=0,subexpiry=2"): keys, or subexpiry
// (Redis 7.4+: hashes with field TTLs).
func keyspaceSum(info, field string) int64 {
	var n int64
	for _, line := range strings.Split(info, "\n") {
		_, kv, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(kv, ",") {
			if v, ok := strings.CutPrefix(f, field+"="); ok {
				if x, err := strconv.ParseInt(v, 10, 64); err == nil {
					n += x
				}
			}
		}
	}
	return n
}

// sourceKeys is a source server's key count over its dbs, -1 when it
// cannot be asked: the estimate behind a diskless snapshot's percentage.
func sourceKeys(ctx context.Context, o dial.Options) int64 {
	c := newCtl(o)
	defer c.Close()
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return -1
	}
	return keyspaceSum(info, "keys")
}

// rdbFieldTTLHashes counts the hashes with per-field TTLs in an RDB file.
// Only an RDB 12+ file can hold one, so an older file costs one header read.
func rdbFieldTTLHashes(ctx context.Context, path, spillDir string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rr := rdb.NewReader(f, rdb.Options{SpillDir: spillDir})
	defer rr.Close()
	var n int64
	for i := 0; ; i++ {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if rr.Version() < 12 {
			rec.Release()
			return 0, nil
		}
		if rec.Kind == rdb.KindKey && rdb.HasFieldTTLs(rec.Type) {
			n++
		}
		rec.Release()
		if i%4096 == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

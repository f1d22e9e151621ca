package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/rdb"
)

// Capabilities: what the source holds that the target cannot, found before
// the first write so that a refusal leaves the target untouched (and, with
// target_nonempty = "flush", not flushed): hashes with per-field TTLs
// (Redis 7.4+, RDB 12) going to an older target, and function libraries
// going to a target without functions (Redis < 7.0). The applier still
// refuses such a value when it meets one (a live source may gain its first
// one after this check); this check moves the common case to before
// anything is written.

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

// targetHoldsFunctions reports whether the target has functions (FUNCTION
// came with Redis 7.0).
func (j *job) targetHoldsFunctions() bool {
	c, _ := j.cmds.table.Parse([][]byte{[]byte("FUNCTION"), []byte("LOAD"), []byte("x")})
	return j.cmds.known.Knows(&c)
}

// checkCapabilities refuses a source that holds what the target cannot —
// hashes whose fields have TTLs, function libraries — when on_unsupported
// is "refuse", with one line counting each. src is nil for a file import.
func (j *job) checkCapabilities(ctx context.Context, tgt target, src *source) error {
	if j.c.OnUnsupported == conf.UnsupportedDrop {
		return nil
	}
	fieldTTLs, functions := !j.targetHoldsFieldTTLs(tgt), !j.targetHoldsFunctions()
	if !fieldTTLs && !functions {
		return nil
	}
	var hashes, libs int64
	var where string
	switch {
	case j.c.RDB != "":
		var err error
		if hashes, libs, err = rdbUnsupported(ctx, j.c.RDB, j.c.JobDir()); err != nil {
			return nil // the import reports a file it cannot read
		}
		where = "the RDB file " + j.c.RDB
	case src != nil:
		if fieldTTLs {
			hashes = j.sourceFieldTTLHashes(ctx, src)
		}
		if functions {
			libs = j.sourceFunctions(ctx, src)
		}
		where = "the source"
	}
	var what []string
	if fieldTTLs && hashes > 0 {
		what = append(what, fmt.Sprintf("%d hash(es) with per-field TTLs (the target has RDB < 12 or no HPEXPIREAT)", hashes))
	}
	if functions && libs > 0 {
		what = append(what, fmt.Sprintf("%d function libraries (the target has no FUNCTION: Redis < 7.0)", libs))
	}
	if len(what) == 0 {
		return nil
	}
	return fault.PermanentErr("", "", `migrate into a target that holds them, or set on_unsupported = "drop" to copy the data without them (counted)`,
		fmt.Errorf("%s holds what the target cannot hold: %s; nothing was written", where, strings.Join(what, ", ")))
}

// sourceFunctions counts the source's function libraries (FUNCTION LIST on
// its first shard: functions are the same on every master). A source that
// cannot be asked counts 0; the applier still refuses the first library.
func (j *job) sourceFunctions(ctx context.Context, src *source) int64 {
	if len(src.shards) == 0 {
		return 0
	}
	o, err := src.shards[0].resolve(ctx)
	if err != nil {
		return 0
	}
	c := ctl.New(o)
	defer c.Close()
	libs, err := c.Do(ctx, "FUNCTION", "LIST").Slice()
	if err != nil {
		return 0
	}
	return int64(len(libs))
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
		c := ctl.New(o)
		info, err := c.Info(ctx, "keyspace").Result()
		c.Close()
		if err != nil {
			continue
		}
		n += ctl.Sum(ctl.Keyspace(info, "subexpiry"))
	}
	return n
}

// sourceKeys is a source server's key count over its dbs, -1 when it
// cannot be asked: the estimate behind a diskless snapshot's percentage.
func sourceKeys(ctx context.Context, o dial.Options) int64 {
	c := ctl.New(o)
	defer c.Close()
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return -1
	}
	return ctl.Sum(ctl.Keyspace(info, "keys"))
}

// rdbUnsupported counts the hashes with per-field TTLs and the function
// libraries in an RDB file. Functions came with RDB 10, field TTLs with
// RDB 12: an older file costs one header read.
func rdbUnsupported(ctx context.Context, path, spillDir string) (hashes, libs int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	rr := rdb.NewReader(f, rdb.Options{SpillDir: spillDir})
	defer rr.Close()
	for i := 0; ; i++ {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return hashes, libs, nil
		}
		if err != nil {
			return hashes, libs, err
		}
		if rr.Version() < 10 {
			rec.Release()
			return 0, 0, nil
		}
		switch {
		case rec.Kind == rdb.KindKey && rdb.HasFieldTTLs(rec.Type):
			hashes++
		case rec.Kind == rdb.KindFunction:
			libs++
		}
		rec.Release()
		if i%4096 == 0 && ctx.Err() != nil {
			return hashes, libs, ctx.Err()
		}
	}
}

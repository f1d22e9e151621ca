package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/apply"
	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/source"
	"github.com/ferry-dev/ferry/target"
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
func (j *job) targetHoldsFieldTTLs(tgt target.Target) bool {
	ver := 1 << 30
	for _, n := range tgt.Nodes() {
		ver = min(ver, n.RDBVersion)
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

// targetHoldsModules reports whether the target may hold module values:
// it has modules loaded, or cannot say (MODULE LIST forbidden). A module
// value's type does not name its module, so a target with some module is
// given the benefit of the doubt; its refusal, if any, names the key.
func (j *job) targetHoldsModules(ctx context.Context, tgt target.Target) bool {
	ns := tgt.Nodes()
	if len(ns) == 0 {
		return true
	}
	mods, err := moduleNames(ctx, ns[0].Ctl)
	return err != nil || len(mods) > 0
}

// moduleNames lists the modules a server has loaded (MODULE LIST).
func moduleNames(ctx context.Context, c *redis.Client) ([]string, error) {
	v, err := c.Do(ctx, "MODULE", "LIST").Slice()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range v {
		// RESP2: a flat [name, x, ver, y, …] per module.
		if kv, ok := m.([]any); ok {
			for i := 0; i+1 < len(kv); i += 2 {
				if k, _ := kv[i].(string); k == "name" {
					n, _ := kv[i+1].(string)
					names = append(names, n)
				}
			}
		}
	}
	return names, nil
}

// checkCapabilities refuses a source that holds what the target cannot —
// hashes whose fields have TTLs, function libraries, module values — when
// on_unsupported is "refuse", with one line counting each. src is nil for a
// file import.
func (j *job) checkCapabilities(ctx context.Context, tgt target.Target, src *source.Source) error {
	if j.c.OnUnsupported == conf.UnsupportedDrop {
		return nil
	}
	fieldTTLs, functions, modules := !j.targetHoldsFieldTTLs(tgt), !j.targetHoldsFunctions(), !j.holdsModules
	if !fieldTTLs && !functions && !modules {
		return nil
	}
	var u unsupported
	var where string
	switch {
	case j.c.RDB != "":
		// A file is read twice only for what a file of its version can
		// hold: functions came with RDB 10, field TTLs with RDB 12. Module
		// values alone (no modules on the target: the common case) are
		// not worth a second read of every import; the applier refuses
		// the first one it meets.
		minVersion := 0
		switch {
		case functions:
			minVersion = 10
		case fieldTTLs:
			minVersion = 12
		default:
			return nil
		}
		var err error
		if u, err = rdbUnsupported(ctx, j.c.RDB, j.c.JobDir(), minVersion); err != nil {
			return nil // the import reports a file it cannot read
		}
		where = "the RDB file " + j.c.RDB
	case src != nil:
		if fieldTTLs {
			u.hashes = j.sourceFieldTTLHashes(ctx, src)
		}
		if functions {
			u.libs = j.sourceFunctions(ctx, src)
		}
		if modules {
			u.modules = j.sourceModules(ctx, src)
		}
		where = "the source"
	}
	var what []string
	if fieldTTLs && u.hashes > 0 {
		what = append(what, fmt.Sprintf("%d hash(es) with per-field TTLs (the target has RDB < 12 or no HPEXPIREAT)", u.hashes))
	}
	if functions && u.libs > 0 {
		what = append(what, fmt.Sprintf("%d function libraries (the target has no FUNCTION: Redis < 7.0)", u.libs))
	}
	if modules && len(u.modules) > 0 {
		var ms []string
		for _, name := range slices.Sorted(maps.Keys(u.modules)) {
			if n := u.modules[name]; n > 0 {
				ms = append(ms, fmt.Sprintf("%d value(s) of module type %s", n, name))
			} else {
				ms = append(ms, "keys of module "+name)
			}
		}
		what = append(what, strings.Join(ms, ", ")+" (the target has no modules loaded)")
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
func (j *job) sourceFunctions(ctx context.Context, src *source.Source) int64 {
	if len(src.Shards) == 0 {
		return 0
	}
	o, err := src.Shards[0].Resolve(ctx)
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
func (j *job) sourceFieldTTLHashes(ctx context.Context, src *source.Source) int64 {
	var n int64
	for _, sh := range src.Shards {
		o, err := sh.Resolve(ctx)
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

// unsupported counts what a source holds that some targets cannot.
type unsupported struct {
	hashes, libs int64
	modules      map[string]int64 // module type (or, from a live source, module name: 0) → values
}

// rdbUnsupported counts the hashes with per-field TTLs, the function
// libraries and the module values in an RDB file, reading it once; a file
// older than minVersion costs one header read.
func rdbUnsupported(ctx context.Context, path, spillDir string, minVersion int) (unsupported, error) {
	u := unsupported{modules: map[string]int64{}}
	f, err := os.Open(path)
	if err != nil {
		return u, err
	}
	defer f.Close()
	rr := rdb.NewReader(f, rdb.Options{SpillDir: spillDir})
	defer rr.Close()
	for i := 0; ; i++ {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return u, nil
		}
		if err != nil {
			return u, err
		}
		if rr.Version() < minVersion {
			rec.Release()
			return unsupported{}, nil
		}
		switch {
		case rec.Kind == rdb.KindKey && rdb.HasFieldTTLs(rec.Type):
			u.hashes++
		case rec.Kind == rdb.KindKey && apply.IsModule(rec.Type):
			u.modules[rec.ModuleName()]++
		case rec.Kind == rdb.KindFunction:
			u.libs++
		}
		rec.Release()
		if i%4096 == 0 && ctx.Err() != nil {
			return u, ctx.Err()
		}
	}
}

// sourceModules names the modules the source has loaded (MODULE LIST of
// its first shard), with no count: a live source does not say how many
// keys of each type it holds.
func (j *job) sourceModules(ctx context.Context, src *source.Source) map[string]int64 {
	if len(src.Shards) == 0 {
		return nil
	}
	o, err := src.Shards[0].Resolve(ctx)
	if err != nil {
		return nil
	}
	c := ctl.New(o)
	defer c.Close()
	names, err := moduleNames(ctx, c)
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for _, n := range names {
		out[n] = 0
	}
	return out
}

package shake

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/ferry-dev/ferry/conf"
)

// Note is one RedisShake setting that was not translated, or whose ferry
// equivalent behaves differently: Key is its path in the RedisShake file
// ("filter.function"), Msg says why and what to do instead.
type Note struct {
	Key string
	Msg string
}

func (n Note) String() string { return n.Key + ": " + n.Msg }

// Result is a translated file.
type Result struct {
	// TOML is the ferry job file.
	TOML []byte
	// Notes are what was not translated, in the order of the RedisShake
	// file's sections; the job file repeats them as comments.
	Notes []Note
}

// The reader sections, in the order RedisShake looks for them: the first
// one present is used.
var readers = []string{"sync_reader", "scan_reader", "rdb_reader", "aof_reader"}

var knownSections = append(slices.Clone(readers), "redis_writer", "filter", "advanced", "module")

// Translate translates the RedisShake v4 file data (name is used in
// messages and gives the job its name) into a ferry job file. It returns
// an *Error when data is not a RedisShake v4 config that can be translated:
// not TOML, no reader or no [redis_writer], a value of the wrong type.
func Translate(data []byte, name string) (Result, error) {
	raw, err := parse(data, name)
	if err != nil {
		return Result{}, err
	}
	t := &translator{file: name, raw: raw}
	t.top.header = ""
	t.source.header, t.target.header = "source", "target"
	t.filter.header = "filter"
	if err := t.run(); err != nil {
		return Result{}, err
	}
	return Result{TOML: t.render(), Notes: t.notes}, nil
}

type line struct{ key, value, from string }

type table struct {
	header string
	lines  []line
}

// set writes key = value (value already TOML), from the RedisShake key
// from; a later set of the same key replaces it.
func (tb *table) set(key, value, from string) {
	for i := range tb.lines {
		if tb.lines[i].key == key {
			tb.lines[i] = line{key, value, from}
			return
		}
	}
	tb.lines = append(tb.lines, line{key, value, from})
}

type translator struct {
	file  string
	raw   map[string]any
	notes []Note
	err   error

	top, source, target, filter table

	reader   string // the reader section used
	scanDBs  []int  // scan_reader.dbs
	awsPSync bool

	blockCmds     []string // filter.block_commands, from block_command and block_command_group
	blockCmdsFrom []string
}

// fail records the first error: the file cannot be translated.
func (t *translator) fail(key, format string, args ...any) {
	if t.err == nil {
		t.err = &Error{File: t.file, Msg: key + ": " + fmt.Sprintf(format, args...)}
	}
}

func (t *translator) note(key, format string, args ...any) {
	t.notes = append(t.notes, Note{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (t *translator) run() error {
	for _, k := range []string{"job", "name", "source", "target", "defaults", "rdb", "aof"} {
		if _, ok := t.raw[k]; ok {
			return &Error{File: t.file, Msg: fmt.Sprintf("has %q, a ferry setting: this is a ferry job file already (check it with ferry config check -c)", k)}
		}
	}
	for _, r := range readers {
		if _, ok := t.raw[r]; ok && t.reader == "" {
			t.reader = r
		}
	}
	if t.reader == "" {
		return &Error{File: t.file, Msg: "no reader section ([sync_reader], [scan_reader], [rdb_reader] or [aof_reader]): not a RedisShake v4 config"}
	}
	if _, ok := t.raw["redis_writer"]; !ok {
		return &Error{File: t.file, Msg: "no [redis_writer] section: ferry writes to a Redis deployment, and RedisShake v4 needs one too"}
	}
	for _, k := range keysOf(t.raw) {
		if slices.Contains(knownSections, k) {
			continue
		}
		msg := "not a RedisShake v4 section: ignored"
		if c := suggest(k, knownSections); c != "" {
			msg += fmt.Sprintf(" (did you mean [%s]?)", c)
		} else if strings.HasSuffix(k, "_writer") {
			msg = "not translated: ferry writes only to Redis ([redis_writer])"
		}
		t.note(k, "%s", msg)
	}
	if stem := strings.TrimSuffix(filepath.Base(t.file), filepath.Ext(t.file)); jobNameRE.MatchString(stem) {
		t.top.set("name", quote(stem), "")
	}
	adv := t.section("advanced") // read first: aws_psync changes the reader
	t.awsPSync = strings.TrimSpace(adv.str("aws_psync")) != "" && t.reader == "sync_reader"

	t.readerSection()
	for _, r := range readers {
		if _, ok := t.raw[r]; ok && r != t.reader {
			t.note(r, "ignored: RedisShake uses only [%s] when the file has several readers", t.reader)
		}
	}
	t.writer()
	t.filterSection()
	t.advanced(adv)
	t.module()
	return t.err
}

var jobNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func (t *translator) readerSection() {
	s := t.section(t.reader)
	if !s.present() {
		return
	}
	switch t.reader {
	case "sync_reader":
		t.endpoint(s, &t.source, "source")
		reader := "psync"
		if t.awsPSync {
			reader = "auto"
		}
		t.source.set("reader", quote(reader), "sync_reader")
		if s.boolean("prefer_replica", false) {
			t.source.set("read_from", quote("replica"), "sync_reader.prefer_replica")
		}
		rdb, aof := s.boolean("sync_rdb", true), s.boolean("sync_aof", true)
		switch {
		case !rdb && !aof:
			t.note("sync_reader.sync_rdb", "not translated: with sync_rdb and sync_aof both false RedisShake copies nothing; ferry copies the snapshot, then the stream")
		case !rdb:
			t.note("sync_reader.sync_rdb", "not translated: ferry always copies the snapshot before the stream (a target that already holds the data: target_nonempty = \"overwrite\")")
		case !aof:
			t.note("sync_reader.sync_aof", "not translated as a key: RedisShake stops after the snapshot; run this job with ferry migrate, which exits once the target has caught up")
		}
		if s.boolean("try_diskless", false) {
			t.note("sync_reader.try_diskless", "not needed: ferry reads the snapshot as the source sends it, from disk or diskless (the source's repl-diskless-sync decides)")
		}
	case "scan_reader":
		t.endpoint(s, &t.source, "source")
		t.source.set("reader", quote("scan"), "scan_reader")
		t.scanDBs = s.ints("dbs")
		if s.has("dbs") && len(t.scanDBs) > 0 {
			t.filter.set("dbs", intList(t.scanDBs), "scan_reader.dbs")
		}
		if !s.boolean("scan", true) {
			t.note("scan_reader.scan", "not translated: ferry's scan reader always copies every key first (SCAN) before it follows the changes")
		}
		if !s.boolean("ksn", false) {
			t.note("scan_reader.ksn", "not translated: RedisShake with ksn = false scans once and stops, while ferry's scan reader always follows changes through keyspace notifications (notify-keyspace-events \"KEA\"); run this job with ferry migrate to stop once caught up")
		}
		if s.has("count") {
			s.integer("count", 1)
			t.note("scan_reader.count", "not translated: ferry scans with COUNT 1000 and pipelined DUMPs; max_ops_per_second limits the rate of the copy")
		}
		if s.boolean("prefer_replica", false) {
			t.source.set("read_from", quote("replica"), "scan_reader.prefer_replica")
		}
	case "rdb_reader":
		p := s.str("filepath")
		if strings.TrimSpace(p) == "" {
			t.fail("rdb_reader.filepath", "required: the RDB file to import")
			return
		}
		t.top.set("rdb", quote(ferryString(p)), "rdb_reader.filepath")
	case "aof_reader":
		p := s.str("filepath")
		if strings.TrimSpace(p) == "" {
			t.fail("aof_reader.filepath", "required: the AOF to import")
			return
		}
		t.top.set("aof", quote(ferryString(p)), "aof_reader.filepath")
		if ts := s.integer("timestamp", 0); ts != 0 {
			t.note("aof_reader.timestamp", "not translated: ferry applies the whole AOF (no point-in-time stop); cut the AOF at that point first")
		}
	}
	s.done()
}

func (t *translator) writer() {
	s := t.section("redis_writer")
	if !s.present() {
		return
	}
	sentinel := s.boolean("sentinel", false)
	master := s.str("master")
	t.endpoint(s, &t.target, "target")
	if sentinel {
		addr := strings.TrimPrefix(s.str("address"), "redis://")
		t.target.set("addr", quote("sentinel://"+ferryString(addr)+"/"+ferryString(master)), "redis_writer.address, master")
		t.note("redis_writer.sentinel", "not translated: this build of ferry writes to a master's address, not through sentinels (config check refuses sentinel:// for the target): set target.addr to the master's redis://host:port")
	} else if master != "" {
		t.note("redis_writer.master", "ignored: used only with sentinel = true")
	}
	if s.boolean("off_reply", false) {
		t.note("redis_writer.off_reply", "not translated: ferry needs the target's replies to fence its batches (exactly-once); it pipelines instead")
	}
	s.done()
}

// endpoint translates cluster, address, username, password and tls into
// the endpoint tb of side ("source", "target").
func (t *translator) endpoint(s *section, tb *table, side string) {
	s.boolean("cluster", false) // ferry finds out itself
	tlsOn := s.boolean("tls", false)
	addr := strings.TrimSpace(s.str("address"))
	if addr == "" {
		t.fail(s.key("address"), "required: the %s's host:port", side)
		return
	}
	if !strings.Contains(addr, "://") {
		scheme := "redis://"
		if tlsOn {
			scheme = "rediss://"
		}
		addr = scheme + addr
	} else if tlsOn && strings.HasPrefix(addr, "redis://") {
		addr = "rediss://" + strings.TrimPrefix(addr, "redis://")
	}
	if !hasRef(addr) {
		if _, err := conf.ParseAddr(addr); err != nil {
			t.fail(s.key("address"), "%s", strings.TrimPrefix(strings.TrimPrefix(err.Error(), "config: "), "addr: "))
			return
		}
	}
	tb.set("addr", quote(ferryString(addr)), s.key("address"))
	if tlsOn {
		t.note(s.key("tls"), "translated to rediss://, but ferry verifies the %s's certificate (RedisShake does not): set %s.tls.ca_file to its CA, or insecure_skip_verify = true to skip the check as RedisShake did", side, side)
	}
	if u := s.str("username"); u != "" {
		tb.set("username", quote(ferryString(u)), s.key("username"))
	}
	if pw := s.str("password"); pw != "" {
		if hasRef(pw) {
			tb.set("password", quote(ferryString(pw)), s.key("password"))
		} else {
			env := "FERRY_" + strings.ToUpper(side) + "_PASSWORD"
			tb.set("password", quote("${"+env+"}"), s.key("password")+" (not copied)")
			t.note(s.key("password"), "not copied into the job file: it reads $%s; export it before running ferry (or set %s.password_file)", env, side)
		}
	}
}

// commandGroups are RedisShake's command groups that name a data type, as
// ferry's key types.
var commandGroups = map[string]string{
	"STRING": "string", "LIST": "list", "SET": "set", "SORTED_SET": "zset", "HASH": "hash", "STREAM": "stream",
}

// groupCommands are the commands of the groups that ferry can block by
// name: those that reach a replication stream.
var groupCommands = map[string][]string{
	"SCRIPTING": {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro", "function", "script"},
	"PUBSUB":    {"publish", "spublish"},
}

var ferryCommandRE = regexp.MustCompile(`^[a-z0-9_|.:-]+$`)

func (t *translator) filterSection() {
	s := t.section("filter")
	if !s.present() {
		return
	}
	t.keyRules(s)

	allowDB, blockDB := s.ints("allow_db"), s.ints("block_db")
	dbs := allowDB
	from := "filter.allow_db"
	if len(t.scanDBs) > 0 {
		if len(allowDB) > 0 {
			dbs = intersect(t.scanDBs, allowDB)
			from = "scan_reader.dbs, filter.allow_db"
		} else {
			dbs, from = t.scanDBs, "scan_reader.dbs"
		}
	}
	if len(dbs) > 0 {
		kept := slices.DeleteFunc(slices.Clone(dbs), func(db int) bool { return slices.Contains(blockDB, db) })
		if len(kept) == 0 {
			t.fail("filter.allow_db", "every allowed db is also blocked (block_db, or not in scan_reader.dbs): the job would copy nothing")
			return
		}
		if len(kept) < len(dbs) {
			from += ", filter.block_db"
		}
		t.filter.set("dbs", intList(kept), from)
	} else if len(blockDB) > 0 {
		t.filter.set("block_dbs", intList(blockDB), "filter.block_db")
	}

	t.commands(s, "allow_command", "commands")
	t.commands(s, "block_command", "block_commands")
	t.groups(s, "allow_command_group", true)
	t.groups(s, "block_command_group", false)
	if len(t.blockCmds) > 0 {
		t.filter.set("block_commands", quoteList(t.blockCmds), strings.Join(t.blockCmdsFrom, ", "))
	}
	if f := s.str("function"); strings.TrimSpace(f) != "" {
		t.note("filter.function", "not translated: ferry has no Lua hook, so the data is copied without the script's changes; express what it did with [filter] rules or db_map where they can, or transform the data before or after the copy")
	}
	s.done()
}

// keyRules translates the key name rules. RedisShake copies a key that
// matches any of the allow rules (exact key, prefix, suffix, regex) and
// none of the block rules; ferry's prefixes and regex lists combine with
// AND, so a mix of allow kinds becomes one regex list.
func (t *translator) keyRules(s *section) {
	keys, prefixes, suffixes, regexes := s.strs("allow_keys"), s.strs("allow_key_prefix"), s.strs("allow_key_suffix"), s.strs("allow_key_regex")
	bkeys, bprefixes, bsuffixes, bregexes := s.strs("block_keys"), s.strs("block_key_prefix"), s.strs("block_key_suffix"), s.strs("block_key_regex")
	for _, l := range []struct {
		key string
		v   []string
	}{{"allow_key_regex", regexes}, {"block_key_regex", bregexes}} {
		for _, r := range l.v {
			if hasRef(r) {
				continue
			}
			if _, err := regexp.Compile(r); err != nil {
				t.fail("filter."+l.key, "%q is not a valid regular expression: %v", r, err)
				return
			}
		}
	}

	// Allow rules. An empty prefix, suffix or regex matches every key: the
	// allow rules then allow everything.
	if slices.Contains(prefixes, "") || slices.Contains(suffixes, "") || slices.Contains(regexes, "") {
		if len(keys)+len(prefixes)+len(suffixes)+len(regexes) > 0 {
			t.note("filter.allow_key_prefix", "an empty prefix, suffix or regex allows every key: no key allow rule written")
		}
	} else {
		kinds := 0
		for _, l := range [][]string{keys, prefixes, suffixes, regexes} {
			if len(l) > 0 {
				kinds++
			}
		}
		switch {
		case kinds == 1 && len(prefixes) > 0:
			t.filter.set("prefixes", quoteList(mapStrings(prefixes, ferryString)), "filter.allow_key_prefix")
		case kinds == 1 && len(regexes) > 0:
			t.filter.set("regex", quoteList(mapStrings(regexes, ferryString)), "filter.allow_key_regex")
		case kinds > 0:
			var rs []string
			var from []string
			for _, k := range keys {
				rs = append(rs, quoteRegex("^", k, "$"))
			}
			for _, p := range prefixes {
				rs = append(rs, quoteRegex("^", p, ""))
			}
			for _, x := range suffixes {
				rs = append(rs, quoteRegex("", x, "$"))
			}
			rs = append(rs, mapStrings(regexes, ferryString)...)
			for _, l := range []struct {
				k string
				v []string
			}{{"allow_keys", keys}, {"allow_key_prefix", prefixes}, {"allow_key_suffix", suffixes}, {"allow_key_regex", regexes}} {
				if len(l.v) > 0 {
					from = append(from, "filter."+l.k)
				}
			}
			t.filter.set("regex", quoteList(rs), strings.Join(from, ", ")+" (as regular expressions: ferry's rule kinds combine with AND)")
		}
	}

	// Block rules: a key matching any is skipped, in ferry as in RedisShake.
	if slices.Contains(bprefixes, "") || slices.Contains(bsuffixes, "") || slices.Contains(bregexes, "") {
		t.fail("filter.block_key_prefix", "an empty prefix, suffix or regex blocks every key: the job would copy nothing")
		return
	}
	if len(bprefixes) > 0 {
		t.filter.set("block_prefixes", quoteList(mapStrings(bprefixes, ferryString)), "filter.block_key_prefix")
	}
	var brs []string
	var bfrom []string
	for _, k := range bkeys {
		brs = append(brs, quoteRegex("^", k, "$"))
	}
	for _, x := range bsuffixes {
		brs = append(brs, quoteRegex("", x, "$"))
	}
	brs = append(brs, mapStrings(bregexes, ferryString)...)
	for _, l := range []struct {
		k string
		v []string
	}{{"block_keys", bkeys}, {"block_key_suffix", bsuffixes}, {"block_key_regex", bregexes}} {
		if len(l.v) > 0 {
			bfrom = append(bfrom, "filter."+l.k)
		}
	}
	if len(brs) > 0 {
		t.filter.set("block_regex", quoteList(brs), strings.Join(bfrom, ", "))
	}
}

// commands translates allow_command or block_command into ferry's list.
// RedisShake names a subcommand CONTAINER-SUB ("XGROUP-CREATE"), ferry
// "xgroup|create".
func (t *translator) commands(s *section, key, ferryKey string) {
	var out []string
	for _, c := range s.strs(key) {
		n := strings.ToLower(strings.TrimSpace(c))
		n = strings.Join(strings.Fields(strings.ReplaceAll(n, "-", " ")), "|")
		if !ferryCommandRE.MatchString(n) || strings.Count(n, "|") > 1 {
			t.note("filter."+key, "%q not translated: not a command name", c)
			continue
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return
	}
	if ferryKey == "block_commands" {
		t.blockCmds = append(t.blockCmds, out...)
		t.blockCmdsFrom = append(t.blockCmdsFrom, "filter."+key)
		return
	}
	t.filter.set(ferryKey, quoteList(out), "filter."+key)
	if key == "allow_command" {
		t.note("filter.allow_command", "translated to filter.commands, which ferry applies to the replication stream only: the snapshot is copied whole (select keys with dbs, prefixes, regex or types)")
	}
}

// groups translates the command groups that ferry can express: data types
// as key types, SCRIPTING and PUBSUB as command names (block only).
func (t *translator) groups(s *section, key string, allow bool) {
	var types, cmds []string
	for _, g := range s.strs(key) {
		name := strings.ToUpper(strings.TrimSpace(g))
		if typ, ok := commandGroups[name]; ok {
			types = append(types, typ)
			continue
		}
		if c, ok := groupCommands[name]; ok && !allow {
			cmds = append(cmds, c...)
			continue
		}
		if allow {
			t.note("filter."+key, "%q not translated: ferry selects by key type (filter.types: string list set zset hash stream) and command name (filter.commands), not by command group; without it the job copies more than RedisShake did", g)
		} else {
			t.note("filter."+key, "%q not translated: ferry filters commands by name: list the ones to drop in filter.block_commands", g)
		}
	}
	if len(types) > 0 {
		k := "types"
		if !allow {
			k = "block_types"
		}
		t.filter.set(k, quoteList(types), "filter."+key+" (as key types, snapshot and stream)")
	}
	if len(cmds) > 0 {
		t.blockCmds = append(t.blockCmds, cmds...)
		t.blockCmdsFrom = append(t.blockCmdsFrom, "filter."+key)
	}
}

func (t *translator) advanced(s *section) {
	if !s.present() {
		return
	}
	if d := s.str("dir"); strings.TrimSpace(d) != "" {
		t.top.set("data_dir", quote(ferryString(d)), "advanced.dir")
	}
	if n := s.integer("ncpu", 0); n != 0 {
		t.note("advanced.ncpu", "not translated: set the environment variable GOMAXPROCS=%d for ferry instead", n)
	}
	pprofPort, statusPort := s.integer("pprof_port", 0), s.integer("status_port", 0)
	for _, p := range []struct {
		k string
		v int64
	}{{"pprof_port", pprofPort}, {"status_port", statusPort}} {
		if p.v < 0 || p.v > 65535 {
			t.fail("advanced."+p.k, "%d is not a port", p.v)
			return
		}
	}
	switch {
	case statusPort != 0:
		t.top.set("status_addr", quote(fmt.Sprintf("127.0.0.1:%d", statusPort)), "advanced.status_port")
		t.note("advanced.status_port", "translated to status_addr = \"127.0.0.1:%d\" (JSON at /status, Prometheus at /metrics): RedisShake served every interface; write \":%d\" to serve the network", statusPort, statusPort)
	case pprofPort != 0:
		t.top.set("status_addr", quote(fmt.Sprintf("127.0.0.1:%d", pprofPort)), "advanced.pprof_port")
	case s.has("status_port"):
		t.top.set("status_addr", quote("off"), "advanced.status_port = 0")
	}
	if pprofPort != 0 {
		t.top.set("pprof", "true", "advanced.pprof_port")
		if statusPort != 0 && statusPort != pprofPort {
			t.note("advanced.pprof_port", "ferry serves Go profiles on the status address: /debug/pprof/ on 127.0.0.1:%d, not on port %d", statusPort, pprofPort)
		}
	}
	if f := s.str("log_file"); strings.TrimSpace(f) != "" {
		t.note("advanced.log_file", "not translated: ferry logs to stderr; redirect it (2>>%s) or let the service manager keep it", f)
	}
	if l := strings.ToLower(strings.TrimSpace(s.str("log_level"))); l != "" {
		if slices.Contains(conf.LogLevels, l) {
			t.top.set("log_level", quote(l), "advanced.log_level")
		} else {
			t.note("advanced.log_level", "%q not translated: ferry's levels are %s", l, strings.Join(conf.LogLevels, ", "))
		}
	}
	if s.has("log_interval") {
		n := s.integer("log_interval", 5)
		if n < 0 {
			n = 0
		}
		t.top.set("progress_interval", quote(fmt.Sprintf("%ds", n)), "advanced.log_interval")
	}
	t.restoreBehavior(s)
	if n := s.integer("pipeline_count_limit", 1024); s.has("pipeline_count_limit") && n != 1024 {
		if n >= 1 && n <= 1<<20 {
			t.top.set("batch_max_ops", fmt.Sprint(n), "advanced.pipeline_count_limit")
		} else {
			t.note("advanced.pipeline_count_limit", "%d not translated: batch_max_ops must be 1 or more", n)
		}
	}
	if n := s.integer("target_redis_client_max_querybuf_len", 0); s.has("target_redis_client_max_querybuf_len") && n > 0 {
		// ferry keeps what it has in flight to a target master well below
		// the target's query buffer limit: half of it, at most the default.
		if half := n / 2; half < 16*conf.MiB {
			if half < conf.MiB {
				t.top.set("batch_max_bytes", fmt.Sprint(max(half, 1)), "advanced.target_redis_client_max_querybuf_len / 2")
			}
			t.top.set("max_inflight_bytes", fmt.Sprint(max(half, 1)), "advanced.target_redis_client_max_querybuf_len / 2")
		}
	}
	if s.has("target_redis_proto_max_bulk_len") {
		switch n := s.integer("target_redis_proto_max_bulk_len", 512000000); {
		case n == 0:
			t.top.set("restore", quote("never"), "advanced.target_redis_proto_max_bulk_len = 0")
		case n != 512000000:
			t.note("advanced.target_redis_proto_max_bulk_len", "not translated: ferry writes a snapshot key as one RESTORE whatever its size (restore = \"auto\"); the target's proto-max-bulk-len must hold the largest value, or set restore = \"never\" to write values as plain commands")
		}
	}
	if s.str("aws_psync") != "" && !t.awsPSync {
		t.note("advanced.aws_psync", "ignored: used only with [sync_reader], as in RedisShake")
	}
	if t.awsPSync {
		t.note("advanced.aws_psync", "not translated: ferry cannot send ElastiCache's renamed PSYNC; reader = \"auto\" falls back to the scan reader (SCAN + keyspace notifications) when the source refuses PSYNC")
	}
	s.done()
}

// restoreBehavior translates rdb_restore_command_behavior and
// empty_db_before_sync into target_nonempty.
func (t *translator) restoreBehavior(s *section) {
	b := strings.ToLower(strings.TrimSpace(s.str("rdb_restore_command_behavior")))
	if s.boolean("empty_db_before_sync", false) {
		t.top.set("target_nonempty", quote("flush"), "advanced.empty_db_before_sync")
		return
	}
	switch b {
	case "":
	case "panic":
		t.top.set("target_nonempty", quote("refuse"), "advanced.rdb_restore_command_behavior = \"panic\" (ferry stops before writing anything)")
	case "rewrite":
		t.top.set("target_nonempty", quote("overwrite"), "advanced.rdb_restore_command_behavior = \"rewrite\"")
	case "skip", "ignore":
		t.top.set("target_nonempty", quote("refuse"), "advanced.rdb_restore_command_behavior = \""+b+"\" (no ferry equivalent)")
		t.note("advanced.rdb_restore_command_behavior", "%q not translated: ferry cannot keep the target's value of a key that exists on both sides; target_nonempty = \"refuse\" stops before writing into a target that holds keys (\"overwrite\" replaces them, \"flush\" empties the target first)", b)
	default:
		t.note("advanced.rdb_restore_command_behavior", "%q not translated: not one of panic, rewrite, skip", b)
	}
}

func (t *translator) module() {
	s := t.section("module")
	if !s.present() {
		return
	}
	if v := s.integer("target_mbbloom_version", 0); v != 0 {
		t.note("module.target_mbbloom_version", "not translated: ferry copies module keys (RedisBloom, …) as RESTORE payloads, unchanged: the target must load the source's module version or a newer one")
	}
	s.done()
}

func mapStrings(l []string, f func(string) string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = f(s)
	}
	return out
}

func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// render writes the job file.
func (t *translator) render() []byte {
	var b strings.Builder
	base := filepath.Base(t.file)
	fmt.Fprintf(&b, "# ferry job file translated by 'ferry config import' from %s (RedisShake v4).\n", base)
	b.WriteString("# Each setting names the RedisShake key it comes from. Check it with\n#   ferry config check -c FILE\n")
	switch t.reader {
	case "rdb_reader", "aof_reader":
		b.WriteString("# and import the file with\n#   ferry sync -c FILE       (it ends when the file is applied)\n")
	default:
		b.WriteString("# and run it with\n#   ferry sync -c FILE       (until stopped; a restart resumes)\n#   ferry migrate -c FILE    (exits once the target has caught up)\n")
	}
	if len(t.notes) > 0 {
		b.WriteString("#\n# Not translated, or different in ferry (ferry config import printed these too):\n")
		for _, n := range t.notes {
			fmt.Fprintf(&b, "#   %s\n", oneLine(n.String()))
		}
	}
	for _, tb := range []*table{&t.top, &t.source, &t.target, &t.filter} {
		if len(tb.lines) == 0 {
			continue
		}
		b.WriteString("\n")
		if tb.header != "" {
			fmt.Fprintf(&b, "[%s]\n", tb.header)
		}
		width := 0
		for _, l := range tb.lines {
			width = max(width, len(l.key)+3+len(l.value))
		}
		for _, l := range tb.lines {
			kv := l.key + " = " + l.value
			if l.from == "" {
				b.WriteString(kv + "\n")
				continue
			}
			pad := width - len(kv)
			if pad > 40 {
				pad = 0
			}
			fmt.Fprintf(&b, "%s%s  # %s\n", kv, strings.Repeat(" ", pad), oneLine(l.from))
		}
	}
	return []byte(b.String())
}

// Package shake translates a RedisShake v4 configuration (shake.toml) into
// a ferry job file, for users switching from RedisShake.
//
// Every key of RedisShake's documented format is either translated or
// named in a note that says why not and what to do instead: nothing is
// dropped in silence. Passwords are not copied into the job file (it is
// printed, and often committed): the job file reads them from
// FERRY_SOURCE_PASSWORD / FERRY_TARGET_PASSWORD, and a note says so.
//
// The translation is text: a TOML job file that conf.ParseJob reads. The
// caller checks it (ferry config import runs the validation of config
// check on it).
package shake

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Result is a translation.
type Result struct {
	// Job is the ferry job file (TOML).
	Job string
	// Notes are the keys not translated, or translated with a difference,
	// one line each: "section.key: why, and what to do instead".
	Notes []string
}

// ErrNoReader: the file names no reader section.
var ErrNoReader = errors.New("no reader: RedisShake needs one of [sync_reader], [scan_reader], [rdb_reader], [aof_reader]")

// Translate reads a shake.toml (name is for messages).
func Translate(data []byte, name string) (Result, error) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	t := &translation{in: m}
	if err := t.run(); err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	return Result{Job: t.out.String(), Notes: t.notes}, nil
}

type translation struct {
	in    map[string]any
	out   strings.Builder
	top   []string // job-level lines, before any [table]
	src   []string // [source] lines
	dst   []string // [target] lines
	flt   []string // [filter] lines
	notes []string
}

func (t *translation) note(key, format string, args ...any) {
	t.notes = append(t.notes, key+": "+fmt.Sprintf(format, args...))
}

func (t *translation) section(name string) map[string]any {
	s, _ := t.in[name].(map[string]any)
	return s
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func truthy(v any) bool { b, _ := v.(bool); return b }

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func list(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, e := range a {
		out = append(out, str(e))
	}
	return out
}

func quoted(s string) string { return strconv.Quote(s) }

func quotedList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = quoted(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func intList(xs []string) string { return "[" + strings.Join(xs, ", ") + "]" }

var readers = []string{"sync_reader", "scan_reader", "rdb_reader", "aof_reader"}

var known = map[string][]string{
	"sync_reader":  {"cluster", "address", "username", "password", "tls", "sync_rdb", "sync_aof", "prefer_replica", "try_diskless"},
	"scan_reader":  {"cluster", "address", "username", "password", "tls", "dbs", "scan", "ksn", "count"},
	"rdb_reader":   {"filepath"},
	"aof_reader":   {"filepath", "timestamp"},
	"redis_writer": {"cluster", "sentinel", "master", "address", "username", "password", "tls", "off_reply"},
	"filter": {"allow_keys", "allow_key_prefix", "allow_key_suffix", "allow_key_regex", "block_keys", "block_key_prefix",
		"block_key_suffix", "block_key_regex", "allow_db", "block_db", "allow_command", "block_command",
		"allow_command_group", "block_command_group", "function"},
	"advanced": {"dir", "ncpu", "pprof_port", "status_port", "log_file", "log_level", "log_interval", "log_rotation",
		"log_max_size", "log_max_age", "log_max_backups", "log_compress", "rdb_restore_command_behavior",
		"pipeline_count_limit", "target_redis_client_max_querybuf_len", "target_redis_proto_max_bulk_len",
		"aws_psync", "empty_db_before_sync"},
	"module": {"target_mbbloom_version"},
}

func (t *translation) run() error {
	// Unknown sections and keys are named, not guessed at.
	for _, sec := range sortedKeys(t.in) {
		keys, ok := known[sec]
		if !ok {
			t.note(sec, "not a RedisShake v4 section ferry knows: left out")
			continue
		}
		s := t.section(sec)
		for _, k := range sortedKeys(s) {
			if !slices.Contains(keys, k) {
				t.note(sec+"."+k, "not a key of [%s] in RedisShake v4: left out", sec)
			}
		}
	}
	var present []string
	for _, r := range readers {
		if t.section(r) != nil {
			present = append(present, "["+r+"]")
		}
	}
	switch len(present) {
	case 0:
		return ErrNoReader
	case 1:
	default:
		return fmt.Errorf("%s: RedisShake runs one reader; so does a ferry job (write one job file per reader)", strings.Join(present, " and "))
	}
	w := t.section("redis_writer")
	if w == nil {
		return errors.New("no [redis_writer]: the target is required")
	}
	t.reader()
	t.writer(w)
	t.filter()
	t.advanced()
	if t.section("module") != nil {
		t.note("module.target_mbbloom_version", "ferry restores module values as the source dumps them (RESTORE); a target with another RedisBloom version refuses them, named")
	}
	t.write()
	return nil
}

func (t *translation) endpoint(sec string, s map[string]any, lines *[]string, side string) {
	addr := str(s["address"])
	if addr == "" {
		t.note(sec+".address", "empty: set the %s's address in the job file", side)
	}
	scheme := "redis"
	if truthy(s["tls"]) {
		scheme = "rediss"
	}
	if side == "target" && truthy(s["sentinel"]) {
		master := str(s["master"])
		*lines = append(*lines, "addr = "+quoted("sentinel://"+addr+"/"+master))
		t.note(sec+".sentinel", "a sentinel target is asked for its master by ferry only at start: ferry follows a target master's failover through the cluster protocol, not through sentinels; prefer the master's address")
	} else {
		*lines = append(*lines, "addr = "+quoted(scheme+"://"+addr))
	}
	if u := str(s["username"]); u != "" {
		*lines = append(*lines, "username = "+quoted(u))
	}
	if s["password"] != nil && str(s["password"]) != "" {
		env := "FERRY_" + strings.ToUpper(side) + "_PASSWORD"
		*lines = append(*lines, "password = "+quoted("${"+env+"}"))
		t.note(sec+".password", "not copied into the job file: export %s (or use password_file)", env)
	}
	if truthy(s["cluster"]) {
		t.note(sec+".cluster", "not needed: ferry finds out whether the %s is a cluster (INFO cluster)", side)
	}
}

func (t *translation) reader() {
	if s := t.section("sync_reader"); s != nil {
		t.endpoint("sync_reader", s, &t.src, "source")
		t.src = append(t.src, `reader = "psync"`)
		if truthy(s["prefer_replica"]) {
			t.src = append(t.src, `read_from = "replica"`)
		}
		if v, ok := s["sync_rdb"]; ok && !truthy(v) {
			t.note("sync_reader.sync_rdb", "false is not translated: ferry always applies the snapshot before the stream (it cannot follow a stream without the state it starts from)")
		}
		if v, ok := s["sync_aof"]; ok && !truthy(v) {
			t.note("sync_reader.sync_aof", "false: use ferry migrate, which ends once the target has caught up, or ferry sync --rdb with a saved dump.rdb")
		}
		if truthy(s["try_diskless"]) {
			t.note("sync_reader.try_diskless", "not needed: ferry reads a disk-based or a diskless snapshot, whichever the source sends")
		}
		return
	}
	if s := t.section("scan_reader"); s != nil {
		t.endpoint("scan_reader", s, &t.src, "source")
		t.src = append(t.src, `reader = "scan"`)
		if dbs := list(s["dbs"]); len(dbs) > 0 {
			t.flt = append(t.flt, "dbs = "+intList(dbs))
		}
		if v, ok := s["ksn"]; !ok || !truthy(v) {
			t.note("scan_reader.ksn", "ferry's scan reader always follows changes through keyspace notifications; for a one-time copy without them run ferry migrate (it ends after the scan and the changes during it)")
		}
		if v, ok := s["scan"]; ok && !truthy(v) {
			t.note("scan_reader.scan", "false (notifications only) is not translated: ferry scans first, then follows the notifications")
		}
		if _, ok := s["count"]; ok {
			t.note("scan_reader.count", "ferry sizes its SCAN batches itself")
		}
		return
	}
	if s := t.section("rdb_reader"); s != nil {
		t.top = append(t.top, "rdb = "+quoted(str(s["filepath"])))
		return
	}
	s := t.section("aof_reader")
	t.top = append(t.top, "aof = "+quoted(str(s["filepath"])))
	if num(s["timestamp"]) != 0 {
		t.note("aof_reader.timestamp", "not translated: ferry imports the whole AOF (no point-in-time recovery); cut the file at the command you want")
	}
}

func (t *translation) writer(s map[string]any) {
	t.endpoint("redis_writer", s, &t.dst, "target")
	if truthy(s["off_reply"]) {
		t.note("redis_writer.off_reply", "not translated: ferry reads every reply (it is how it knows what the target applied, exactly once)")
	}
}

// exact is a regex that matches key k and nothing else.
func exact(k string) string { return "^" + regexp.QuoteMeta(k) + "$" }

func (t *translation) filter() {
	s := t.section("filter")
	if s == nil {
		return
	}
	var allowRe, blockRe []string
	for _, k := range list(s["allow_keys"]) {
		allowRe = append(allowRe, exact(k))
	}
	for _, k := range list(s["allow_key_suffix"]) {
		allowRe = append(allowRe, regexp.QuoteMeta(k)+"$")
	}
	allowRe = append(allowRe, list(s["allow_key_regex"])...)
	for _, k := range list(s["block_keys"]) {
		blockRe = append(blockRe, exact(k))
	}
	for _, k := range list(s["block_key_suffix"]) {
		blockRe = append(blockRe, regexp.QuoteMeta(k)+"$")
	}
	blockRe = append(blockRe, list(s["block_key_regex"])...)
	add := func(key string, vals []string, render func([]string) string) {
		if len(vals) > 0 {
			t.flt = append(t.flt, key+" = "+render(vals))
		}
	}
	add("prefixes", list(s["allow_key_prefix"]), quotedList)
	add("block_prefixes", list(s["block_key_prefix"]), quotedList)
	add("regex", allowRe, quotedList)
	add("block_regex", blockRe, quotedList)
	if dbs := list(s["allow_db"]); len(dbs) > 0 && !slices.ContainsFunc(t.flt, func(l string) bool { return strings.HasPrefix(l, "dbs = ") }) {
		add("dbs", dbs, intList)
	}
	add("block_dbs", list(s["block_db"]), intList)
	add("commands", lower(list(s["allow_command"])), quotedList)
	add("block_commands", lower(list(s["block_command"])), quotedList)
	for _, k := range []string{"allow_command_group", "block_command_group"} {
		if g := list(s[k]); len(g) > 0 {
			t.note("filter."+k, "command groups (%s) are not translated: list the commands in filter.%s", strings.Join(g, ", "),
				map[string]string{"allow_command_group": "commands", "block_command_group": "block_commands"}[k])
		}
	}
	if f := strings.TrimSpace(str(s["function"])); f != "" && s["function"] != nil {
		t.note("filter.function", "a Lua function cannot be translated: express it with the key, db and command filters, or transform the data before or after the copy")
	}
}

func lower(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strings.ToLower(x)
	}
	return out
}

func (t *translation) advanced() {
	s := t.section("advanced")
	if s == nil {
		return
	}
	if d := str(s["dir"]); d != "" && s["dir"] != nil {
		t.top = append(t.top, "data_dir = "+quoted(d))
	}
	if p := num(s["status_port"]); p > 0 {
		t.top = append(t.top, "status_addr = "+quoted(fmt.Sprintf("127.0.0.1:%d", p)))
		t.note("advanced.status_port", "ferry serves /status and /metrics on 127.0.0.1:%d (loopback); set status_addr to another interface to reach it from elsewhere", p)
	}
	if p := num(s["pprof_port"]); p > 0 {
		t.top = append(t.top, "pprof = true")
		t.note("advanced.pprof_port", "ferry serves profiles at /debug/pprof/ on the status address, not on a port of their own")
	}
	if l := strings.ToLower(str(s["log_level"])); s["log_level"] != nil {
		switch l {
		case "debug", "info", "warn", "error":
			t.top = append(t.top, "log_level = "+quoted(l))
		default:
			t.note("advanced.log_level", "%q is not one of debug, info, warn, error: left at info", l)
		}
	}
	if n := num(s["log_interval"]); n > 0 {
		t.top = append(t.top, "progress_interval = "+quoted(fmt.Sprintf("%ds", n)))
	}
	for _, k := range []string{"log_file", "log_rotation", "log_max_size", "log_max_age", "log_max_backups", "log_compress"} {
		if _, ok := s[k]; ok {
			t.note("advanced."+k, "ferry logs to stderr (JSON with log_format = \"json\"); files and rotation are the service manager's (journald, the container runtime)")
		}
	}
	if _, ok := s["ncpu"]; ok {
		t.note("advanced.ncpu", "ferry uses what GOMAXPROCS gives it (the container's CPU limit)")
	}
	switch b := str(s["rdb_restore_command_behavior"]); {
	case s["rdb_restore_command_behavior"] == nil:
	case b == "panic":
		t.top = append(t.top, `target_nonempty = "refuse"`)
		t.note("advanced.rdb_restore_command_behavior", "to fail at the first key that exists: ferry refuses, before writing anything, a target that already holds keys (target_nonempty = \"refuse\")")
	case b == "rewrite":
		t.top = append(t.top, `target_nonempty = "overwrite"`)
	case b == "skip":
		t.top = append(t.top, `target_nonempty = "overwrite"`)
		t.note("advanced.rdb_restore_command_behavior", "skip (keep the target's value of a key that exists) is not translated: ferry overwrites it (target_nonempty = \"overwrite\"); filter the keys out to keep them")
	default:
		t.note("advanced.rdb_restore_command_behavior", "%q is not panic, rewrite or skip: left out", b)
	}
	if truthy(s["empty_db_before_sync"]) {
		t.top = slices.DeleteFunc(t.top, func(l string) bool { return strings.HasPrefix(l, "target_nonempty = ") })
		t.top = append(t.top, `target_nonempty = "flush"`)
	}
	if n := num(s["pipeline_count_limit"]); n > 0 {
		t.top = append(t.top, fmt.Sprintf("batch_max_ops = %d", n))
	}
	for _, k := range []string{"target_redis_client_max_querybuf_len", "target_redis_proto_max_bulk_len"} {
		if _, ok := s[k]; ok {
			t.note("advanced."+k, "not needed: ferry reads the target's proto-max-bulk-len (CONFIG GET) and rewrites a value too big for one command as several")
		}
	}
	if a := str(s["aws_psync"]); a != "" && s["aws_psync"] != nil {
		t.note("advanced.aws_psync", "ElastiCache's renamed PSYNC is not translated: ferry's reader = \"auto\" reads a source that refuses PSYNC by scanning (see the README's scan reader)")
	}
}

func (t *translation) write() {
	b := &t.out
	b.WriteString("# Translated from a RedisShake v4 configuration by ferry config import.\n")
	b.WriteString("# Check it with: ferry config check -c <this file>\n\n")
	for _, l := range t.top {
		b.WriteString(l + "\n")
	}
	for _, sec := range []struct {
		name  string
		lines []string
	}{{"source", t.src}, {"target", t.dst}, {"filter", t.flt}} {
		if len(sec.lines) == 0 {
			continue
		}
		b.WriteString("\n[" + sec.name + "]\n")
		for _, l := range sec.lines {
			b.WriteString(l + "\n")
		}
	}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package conf

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// LoadJob reads a single-job file over Default(). It checks the TOML
// syntax, unknown keys, value types, ${ENV} references and every value on
// its own (enums, ranges, address syntax); it does not require a source or
// a target, read password_file or TLS files: call Validate after applying
// command-line flags.
func LoadJob(path string) (Job, error) {
	data, err := readConfig(path)
	if err != nil {
		return Job{}, err
	}
	return ParseJob(data, path)
}

// ParseJob is LoadJob on the contents of a file; name is used in messages.
func ParseJob(data []byte, name string) (Job, error) {
	m, err := parseTOML(data, name)
	if err != nil {
		return Job{}, err
	}
	if _, ok := m["job"].([]map[string]any); ok || m["defaults"] != nil || m["max_parallel"] != nil {
		return Job{}, errf(name, "this is a batch file ([[job]] tables, [defaults], max_parallel): run it with ferry run -c")
	}
	d := &decoder{file: name}
	j := Default()
	d.job(m, jobOpts{nameKey: "job"}, &j)
	if err := d.result(); err != nil {
		return Job{}, err
	}
	j.Warnings = d.warnings
	if err := j.validate(false); err != nil {
		return Job{}, err
	}
	return j, nil
}

// Batch is a batch file: several jobs run by ferry run.
type Batch struct {
	MaxParallel int  // jobs run at once; default 4
	FailFast    bool // stop all jobs when one fails
	// Process-wide settings, taken from [defaults] (a [[job]] may not set
	// them): one status server and one log for the whole run.
	StatusAddr string
	Pprof      bool
	LogLevel   string
	LogFormat  string
	CPU        CPUScheduling
	Jobs       []BatchJob // in file order
}

// BatchJob is one [[job]] of a batch file, merged over [defaults] and
// validated. Mode == Job.Mode.
type BatchJob struct {
	Mode Mode
	Job  Job
}

// DefaultMaxParallel is Batch.MaxParallel when the file does not set it.
const DefaultMaxParallel = 4

// LoadBatch reads and validates a batch file: top-level max_parallel and
// fail_fast, a [defaults] table with any job setting, and [[job]] tables,
// each a job (name, mode and any job setting) merged over [defaults];
// nested tables ([job.source], [job.source.tls], [job.filter]) merge field
// by field, arrays and db_map replace. Every job is validated (as Validate
// does); errors name the job: "config: job[orders].restore: ...".
func LoadBatch(path string) (Batch, error) {
	data, err := readConfig(path)
	if err != nil {
		return Batch{}, err
	}
	return ParseBatch(data, path)
}

// IsBatch reports whether the file at path is a batch file ([[job]] tables
// or a [defaults] table) rather than a job file. A file that cannot be read
// or parsed is not a batch file: loading it as a job says what is wrong.
func IsBatch(path string) bool {
	data, err := readConfig(path)
	if err != nil {
		return false
	}
	m, err := parseTOML(data, path)
	if err != nil {
		return false
	}
	_, jobs := m["job"].([]map[string]any)
	_, defaults := m["defaults"].(map[string]any)
	return jobs || defaults
}

// processWide are the job settings that a batch file takes from [defaults] only.
var processWide = []string{"status_addr", "pprof", "log_level", "log_format", "cpu_scheduling"}

// ParseBatch is LoadBatch on the contents of a file; name is used in messages.
func ParseBatch(data []byte, name string) (Batch, error) {
	m, err := parseTOML(data, name)
	if err != nil {
		return Batch{}, err
	}
	if _, ok := m["job"].(string); ok || m["name"] != nil {
		return Batch{}, errf(name, "this is a single-job file (name = \"...\" at the top), not a batch file with [[job]] tables: run it with ferry sync|migrate|verify -c")
	}
	d := &decoder{file: name}
	b := Batch{MaxParallel: DefaultMaxParallel}
	top := d.table(m, "", "", kindBatch)
	top.integer("max_parallel", &b.MaxParallel)
	top.boolean("fail_fast", &b.FailFast)
	defaults := map[string]any{}
	if t := top.sub("defaults"); t != nil {
		defaults = t.m // checked below, as a job
	}
	var raw []map[string]any
	if v, ok := top.get("job"); ok {
		if raw, ok = v.([]map[string]any); !ok {
			top.fail("job", "must be [[job]] tables")
		}
	}
	for _, k := range jobKeys() {
		if _, ok := top.hints[k]; !ok {
			top.hints[k] = "job settings of a batch file go in [defaults] or in a [[job]] table"
		}
	}
	top.finish()
	if err := d.result(); err != nil {
		return Batch{}, err
	}
	if len(raw) == 0 {
		return Batch{}, errf(name, "no [[job]] tables: a batch file needs at least one")
	}
	if b.MaxParallel < 1 {
		return Batch{}, errf("max_parallel", "must be 1 or more, not %d", b.MaxParallel)
	}

	// Each table on its own, for unknown keys and types at their own path.
	normalizeEndpoints(defaults)
	dj := Default()
	d.job(defaults, jobOpts{path: "defaults", header: "defaults", allowMode: true}, &dj)
	if err := d.result(); err != nil {
		return Batch{}, err
	}
	if err := dj.validate(false); err != nil {
		return Batch{}, prefixed("defaults", err)
	}
	labels := make([]string, len(raw))
	for i, jm := range raw {
		labels[i] = fmt.Sprintf("job[#%d]", i+1)
		if n, ok := jm["name"].(string); ok && nameRE.MatchString(n) {
			labels[i] = "job[" + n + "]"
		}
		normalizeEndpoints(jm)
		tmp := Default()
		d.job(jm, jobOpts{path: labels[i], header: "job", nameKey: "name", allowMode: true, processWide: true}, &tmp)
	}
	if err := d.result(); err != nil {
		return Batch{}, err
	}

	seen := map[string]bool{}
	for i, jm := range raw {
		label := labels[i]
		if _, ok := jm["name"]; !ok {
			return Batch{}, errf(label+".name", "required: every [[job]] needs a unique name")
		}
		d := &decoder{file: name}
		j := Default()
		d.job(merge(defaults, jm, true), jobOpts{path: label, header: "job", nameKey: "name", allowMode: true}, &j)
		if err := d.result(); err != nil {
			return Batch{}, err
		}
		if !nameRE.MatchString(j.Name) {
			return Batch{}, errf(label+".name", "%s is not a valid job name (%s)", echo(j.Name), nameRule)
		}
		if seen[j.Name] {
			return Batch{}, errf(label+".name", "%q is the name of an earlier job: names must be unique", j.Name)
		}
		seen[j.Name] = true
		if strings.TrimSpace(string(j.Mode)) == "" {
			return Batch{}, errf(label+".mode", "required: one of %s (in the [[job]] or in [defaults])", joinEnum(Modes))
		}
		if err := j.Validate(); err != nil {
			return Batch{}, prefixed(label, err)
		}
		b.Jobs = append(b.Jobs, BatchJob{Mode: j.Mode, Job: j})
	}
	first := b.Jobs[0].Job
	b.StatusAddr, b.Pprof, b.LogLevel, b.LogFormat = first.StatusAddr, first.Pprof, first.LogLevel, first.LogFormat
	b.CPU = first.CPUScheduling
	return b, nil
}

// parseTOML parses data into a generic map. Syntax errors keep line and
// column; their text is scrubbed of values where a value may be a secret.
func parseTOML(data []byte, name string) (map[string]any, error) {
	if err := checkBounds(data, name); err != nil {
		return nil, err
	}
	var m map[string]any
	_, err := toml.Decode(string(data), &m)
	if err == nil {
		if m == nil {
			m = map[string]any{}
		}
		return m, nil
	}
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return nil, &Error{Field: name, Msg: err.Error(), Err: err}
	}
	pos := fmt.Sprintf("%d:%d", pe.Position.Line, pe.Position.Col)
	if name != "" {
		pos = name + ":" + pos
	}
	last := pe.LastKey
	if i := strings.LastIndexByte(last, '.'); i >= 0 {
		last = last[i+1:]
	}
	switch last {
	case "", "password", "sentinel_password", "addr", "addrs", "source", "target":
		msg := scrubRE.ReplaceAllString(pe.Message, "$1 <not shown>")
		if last != "" {
			msg += " (quote strings: " + last + ` = "...")`
		}
		return nil, &Error{Field: pos, Msg: msg}
	}
	return nil, &Error{Field: pos, Msg: pe.Message, Err: pe}
}

var scrubRE = regexp.MustCompile(`(found|got|string|with) ("[^"]*"|'[^']*')`)

// normalizeEndpoints turns the shorthand source = "addr" into a table, so
// that a batch job's address merges with [defaults.source] settings.
func normalizeEndpoints(m map[string]any) {
	for _, k := range []string{"source", "target"} {
		if s, ok := m[k].(string); ok {
			m[k] = map[string]any{"addr": s}
		}
	}
}

// merge returns base with over laid on it; tables merge key by key
// (db_map at the top level is replaced whole).
func merge(base, over map[string]any, top bool) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 && !(top && k == "db_map") {
			out[k] = merge(bm, om, false)
		} else {
			out[k] = v
		}
	}
	return out
}

func keysOf(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

type jobOpts struct {
	path, header string // "" for a single-job file; "job[x]"/"job" or "defaults"/"defaults" in a batch
	nameKey      string // "job" in a single-job file, "name" in [[job]], "" in [defaults]
	allowMode    bool
	processWide  bool // a [[job]] table: status_addr, log_level, log_format belong to [defaults]
}

// job decodes a job table over j and reports its unknown keys.
func (d *decoder) job(m map[string]any, o jobOpts, j *Job) *table {
	t := d.table(m, o.path, o.header, kindJob)
	if o.processWide {
		for _, k := range processWide {
			if _, ok := m[k]; ok {
				t.fail(k, "applies to the whole batch run: set it in [defaults], not per job")
			}
		}
	}
	switch o.nameKey {
	case "job":
		// name, as in batch files; job is how single-job files spelled it
		// before: still read, with a warning.
		t.str("name", &j.Name)
		if _, old := m["job"].(string); old {
			if _, both := m["name"]; both {
				t.fail("job", `the job's name is set twice: keep name = "..." (job is its old spelling)`)
			}
			t.str("job", &j.Name)
			d.warnings = append(d.warnings, fmt.Sprintf(`%s: job = "..." is the old spelling of the job's name: write name = "..." (as in batch files); job still works`, d.file))
		}
		t.hints["mode"] = "a single-job file has no mode: the command (ferry migrate, sync, verify) gives it; mode is for [[job]] tables of a batch file run by ferry run"
		for _, k := range []string{"max_parallel", "fail_fast", "defaults"} {
			t.hints[k] = "a batch-file key: batch files are run by ferry run"
		}
	case "name":
		t.str("name", &j.Name)
		t.hints["job"] = `the job's name is name = "..."`
	default:
		t.hints["name"] = `a name belongs in each [[job]], not in [defaults]`
		t.hints["job"] = t.hints["name"]
	}
	if o.allowMode {
		enum(t, "mode", &j.Mode)
	}
	t.str("data_dir", &j.DataDir)
	t.str("rdb", &j.RDB)
	t.str("aof", &j.AOF)
	t.endpoint("source", &j.Source, true)
	t.endpoint("target", &j.Target, false)
	enum(t, "target_nonempty", &j.TargetNonempty)
	enum(t, "restore", &j.Restore)
	enum(t, "fence", &j.Fence)
	t.boolean("fold", &j.Fold)
	enum(t, "on_error", &j.OnError)
	enum(t, "on_unsupported", &j.OnUnsupported)
	t.duration("keepalive_interval", &j.KeepaliveInterval)
	t.duration("max_conn_age", &j.MaxConnAge)
	t.dbMap("db_map", &j.DBMap)
	t.integer("batch_max_ops", &j.BatchMaxOps)
	t.size("batch_max_bytes", &j.BatchMaxBytes)
	t.size("max_inflight_bytes", &j.MaxInflightBytes)
	t.size("spool_memory", &j.SpoolMemory)
	t.size("spool_max_disk", &j.SpoolMaxDisk)
	t.size("max_bulk_len", &j.MaxBulkLen)
	t.str("status_addr", &j.StatusAddr)
	t.boolean("pprof", &j.Pprof)
	t.str("log_level", &j.LogLevel)
	t.str("log_format", &j.LogFormat)
	enum(t, "cpu_scheduling", &j.CPUScheduling)
	t.duration("progress_interval", &j.ProgressInterval)
	t.integer("max_ops_per_second", &j.MaxOpsPerSecond)
	t.size("max_bytes_per_second", &j.MaxBytesPerSecond)
	t.duration("cutover_pause_max", &j.CutoverPauseMax)
	t.duration("retry_timeout", &j.RetryTimeout)
	var shards string
	t.str("shards", &shards)
	if shards != "" {
		if v, err := ParseShards(shards); err != nil {
			t.fail("shards", "%s", err)
		} else {
			j.Shards = v
		}
	}
	t.duration("stop_timeout", &j.StopTimeout)
	t.duration("lease_ttl", &j.LeaseTTL)
	t.boolean("takeover", &j.Takeover)
	t.str("cutover_hook", &j.CutoverHook)
	t.strs("cutover_hook_env", &j.CutoverHookEnv)
	t.duration("cutover_hook_timeout", &j.CutoverHookTimeout)
	if v, ok := t.get("filter"); ok {
		if fm, ok := v.(map[string]any); ok {
			ft := t.child("filter", fm, kindFilter)
			f := &j.Filter
			ft.ints("dbs", &f.DBs)
			ft.ints("block_dbs", &f.BlockDBs)
			ft.strs("prefixes", &f.Prefixes)
			ft.strs("block_prefixes", &f.BlockPrefixes)
			ft.strs("regex", &f.Regex)
			ft.strs("block_regex", &f.BlockRegex)
			ft.strs("types", &f.Types)
			ft.strs("block_types", &f.BlockTypes)
			ft.strs("commands", &f.Commands)
			ft.strs("block_commands", &f.BlockCommands)
			ft.finish()
		} else {
			t.fail("filter", "must be a table ([filter]), not %s", typeName(v))
		}
	}
	t.finish()
	return t
}

func (t *table) endpoint(k string, e *Endpoint, source bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	switch x := v.(type) {
	case string:
		if s, ok := t.expanded(k, v, "a string"); ok {
			e.Addr = s
		}
	case map[string]any:
		et := t.child(k, x, kindEndpoint)
		et.str("addr", &e.Addr)
		et.strs("addrs", &e.Addrs)
		et.str("username", &e.Username)
		et.str("password", &e.Password)
		et.str("password_file", &e.PasswordFile)
		et.str("sentinel_username", &e.SentinelUsername)
		et.str("sentinel_password", &e.SentinelPassword)
		if source {
			enum(et, "read_from", &e.ReadFrom)
			enum(et, "reader", &e.Reader)
			et.size("scan_big_value", &e.ScanBigValue)
		} else {
			et.hints["read_from"] = "read_from applies only to the source"
			et.hints["reader"] = "reader applies only to the source"
			et.hints["scan_big_value"] = "scan_big_value applies only to the source"
		}
		et.duration("dial_timeout", &e.DialTimeout)
		if tv, ok := et.get("tls"); ok {
			if tm, ok := tv.(map[string]any); ok {
				tt := et.child("tls", tm, kindTLS)
				tt.boolean("enabled", &e.TLS.Enabled)
				tt.str("ca_file", &e.TLS.CAFile)
				tt.str("cert_file", &e.TLS.CertFile)
				tt.str("key_file", &e.TLS.KeyFile)
				tt.str("server_name", &e.TLS.ServerName)
				tt.boolean("insecure_skip_verify", &e.TLS.InsecureSkipVerify)
				tt.finish()
			} else {
				et.fail("tls", "must be a table ([%s.tls]), not %s", et.header, typeName(tv))
			}
		}
		et.finish()
	default:
		t.fail(k, `must be an address string (%s = "redis://host:6379") or a table ([%s]), not %s`, k, join(t.header, k), typeName(v))
	}
}

// jobKeys are the keys of a job table (those of a single-job file).
func jobKeys() []string {
	t := (&decoder{}).job(map[string]any{}, jobOpts{nameKey: "job"}, &Job{})
	return t.known
}

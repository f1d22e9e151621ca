package conf

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// nameRE: a job name is a directory name under data_dir and a label in
// status and logs: it starts with a letter or digit (so never "." or
// ".."), and holds no path separator.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// envNameRE is a variable name cutover_hook_env may pass through.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

const nameRule = "1 to 64 of a-z A-Z 0-9 _ . -, starting with a letter or digit"

// maxEcho is how much of a refused value an error message shows.
const maxEcho = 40

// echo quotes s for an error message, cut to its first maxEcho bytes.
func echo(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxEcho]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// Validate checks the whole job after command-line flags were applied, and
// completes it:
//   - enum values are lower-cased; status_addr "off" becomes "";
//   - Scheme, Hosts, SentinelMaster, DB are derived again from Addr and Addrs;
//   - Username and Password take the user info of the address, and
//     password_file is read (content, one trailing newline trimmed) into
//     Password; TLS.Enabled is set for rediss://;
//   - filter types and commands are lower-cased.
//
// It requires a target, and either rdb or a source (verify: a source and no
// rdb); it checks that password files, the RDB file and TLS files can be
// read. Validate may be called again: it is idempotent. The first problem
// is returned as an *Error.
func (j *Job) Validate() error { return j.validate(true) }

// validate(false) checks each value on its own (what LoadJob checks);
// validate(true) checks everything.
func (j *Job) validate(full bool) error {
	if !nameRE.MatchString(j.Name) {
		return errf("job", "%s is not a valid job name (%s)", echo(j.Name), nameRule)
	}
	for i, n := range j.CutoverHookEnv {
		if !envNameRE.MatchString(n) {
			return errf(fmt.Sprintf("cutover_hook_env[%d]", i), "%s is not a variable name (A-Z a-z 0-9 _, not starting with a digit)", echo(n))
		}
	}
	if j.Mode != "" {
		if err := oneOf("mode", &j.Mode, Modes); err != nil {
			return err
		}
	}
	if strings.TrimSpace(j.DataDir) == "" {
		return errf("data_dir", "must not be empty")
	}
	if full {
		if err := j.checkPresence(); err != nil {
			return err
		}
	}
	if j.Source.IsSet() {
		if err := j.Source.check(true, full); err != nil {
			return prefixed("source", err)
		}
	}
	if j.Target.IsSet() {
		if err := j.Target.check(false, full); err != nil {
			return prefixed("target", err)
		}
	}
	if full && j.Source.IsSet() && j.Target.IsSet() {
		if h := sameDeployment(j.Source, j.Target); h != "" {
			return errf("target", "%s is also the source: ferry cannot copy a deployment into itself", h)
		}
	}
	for _, check := range []func() error{
		func() error { return oneOf("target_nonempty", &j.TargetNonempty, NonemptyModes) },
		func() error { return oneOf("restore", &j.Restore, RestoreModes) },
		func() error { return oneOf("fence", &j.Fence, FenceModes) },
		func() error { return oneOf("on_error", &j.OnError, OnErrorModes) },
		func() error { return oneOf("on_unsupported", &j.OnUnsupported, OnUnsupportedModes) },
	} {
		if err := check(); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		field    string
		v        time.Duration
		positive bool
	}{
		{"keepalive_interval", j.KeepaliveInterval, true},
		{"max_conn_age", j.MaxConnAge, false},
		{"progress_interval", j.ProgressInterval, false},
		{"cutover_pause_max", j.CutoverPauseMax, true},
		{"cutover_hook_timeout", j.CutoverHookTimeout, false},
		{"retry_timeout", j.RetryTimeout, false},
		{"stop_timeout", j.StopTimeout, true},
		{"lease_ttl", j.LeaseTTL, true},
	} {
		if err := checkDuration(d.field, d.v, d.positive); err != nil {
			return err
		}
	}
	if err := j.Shards.resolveOrdinal(hostname()); err != nil {
		return errf("shards", "%v", err)
	}
	if !j.Shards.All() && j.Import() {
		return errf("shards", "splits a live cluster source between processes; an RDB or AOF file is one shard")
	}
	if j.LeaseTTL < time.Second {
		return errf("lease_ttl", "must be at least 1s (it is renewed every third of it)")
	}
	if err := j.checkDBMap(); err != nil {
		return err
	}
	if j.BatchMaxOps < 1 {
		return errf("batch_max_ops", "must be 1 or more, not %d", j.BatchMaxOps)
	}
	for _, s := range []struct {
		field    string
		v        int64
		positive bool
	}{
		{"batch_max_bytes", j.BatchMaxBytes, true},
		{"max_inflight_bytes", j.MaxInflightBytes, true},
		{"spool_memory", j.SpoolMemory, true},
		{"spool_max_disk", j.SpoolMaxDisk, false},
		{"max_bulk_len", j.MaxBulkLen, true},
		{"max_bytes_per_second", j.MaxBytesPerSecond, false},
	} {
		if s.v < 0 {
			return errf(s.field, "must not be negative")
		}
		if s.positive && s.v == 0 {
			return errf(s.field, "must be more than 0")
		}
	}
	if full && j.MaxInflightBytes < j.BatchMaxBytes {
		return errf("max_inflight_bytes", "%s is less than batch_max_bytes %s: a batch would never fit", FormatSize(j.MaxInflightBytes), FormatSize(j.BatchMaxBytes))
	}
	if j.MaxOpsPerSecond < 0 {
		return errf("max_ops_per_second", "must not be negative (0 = unlimited)")
	}
	if err := j.checkStatusAddr(); err != nil {
		return err
	}
	if err := oneOf("log_level", &j.LogLevel, LogLevels); err != nil {
		return err
	}
	if err := oneOf("log_format", &j.LogFormat, LogFormats); err != nil {
		return err
	}
	if err := oneOf("cpu_scheduling", &j.CPUScheduling, CPUSchedulingModes); err != nil {
		return err
	}
	if err := j.Filter.check(); err != nil {
		return prefixed("filter", err)
	}
	return nil
}

func (j *Job) checkPresence() error {
	src := j.Source.IsSet()
	if err := j.checkAOF(src); err != nil {
		return err
	}
	if j.Mode == ModeVerify {
		if j.RDB != "" {
			return errf("rdb", "not used by verify, which compares a live source with the target")
		}
		if !src {
			return errf("source", "required: verify compares the source with the target")
		}
	} else {
		if j.RDB != "" && src {
			return errf("rdb", "rdb and source exclude each other: import a file or read a live source, not both")
		}
		if j.RDB == "" && j.AOF == "" && !src {
			return errf("source", `required (or rdb = "path/to/dump.rdb" to import a file)`)
		}
	}
	if !j.Target.IsSet() {
		return errf("target", `required (target = "redis://host:6379")`)
	}
	if j.RDB != "" {
		st, err := os.Stat(j.RDB)
		if err != nil {
			return &Error{Field: "rdb", Msg: err.Error(), Err: err}
		}
		if st.IsDir() {
			return errf("rdb", "%s is a directory, not an RDB file", j.RDB)
		}
	}
	return nil
}

// joinEnum lists allowed values for a message: "a, b, c".
func joinEnum[T ~string](allowed []T) string {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

func oneOf[T ~string](field string, v *T, allowed []T) error {
	s, err := Choose(string(*v), allowed)
	if err != nil {
		return errf(field, "%v", err)
	}
	*v = s
	return nil
}

// Choose returns v as one of allowed, compared case-insensitively without
// surrounding blanks, or an error listing allowed: config keys and the flags
// that override them accept the same spellings and say so the same way.
func Choose[T ~string](v string, allowed []T) (T, error) {
	s := T(strings.ToLower(strings.TrimSpace(v)))
	if slices.Contains(allowed, s) {
		return s, nil
	}
	return "", fmt.Errorf("%q is not one of %s", v, joinEnum(allowed))
}

func checkDuration(field string, d time.Duration, positive bool) error {
	switch {
	case d < 0:
		return errf(field, "must not be negative")
	case positive && d == 0:
		return errf(field, "must be more than 0")
	}
	return nil
}

func (j *Job) checkDBMap() error {
	keys := make([]int, 0, len(j.DBMap))
	for k := range j.DBMap {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		if k < 0 {
			return errf("db_map", "source db %d is not a database number (0 or more)", k)
		}
		if v := j.DBMap[k]; v < 0 {
			return errf("db_map", "target db %d (for source db %d) is not a database number (0 or more)", v, k)
		}
	}
	return nil
}

func (j *Job) checkStatusAddr() error {
	s := strings.TrimSpace(j.StatusAddr)
	if s == "" || strings.EqualFold(s, "off") {
		j.StatusAddr = ""
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 || strings.ContainsAny(host, " /") {
		return errf("status_addr", `%q is not host:port (e.g. "127.0.0.1:9121" or ":9121"; "" or "off" disables it)`, j.StatusAddr)
	}
	j.StatusAddr = s
	return nil
}

// check validates an endpoint whose Addr is set. Errors have fields
// relative to the endpoint ("addr", "tls.ca_file").
func (e *Endpoint) check(source, full bool) error {
	p, err := ParseAddr(e.Addr)
	if err != nil {
		return err
	}
	e.Scheme, e.SentinelMaster, e.DB = p.Scheme, p.SentinelMaster, p.DB
	hosts := p.Hosts
	for i, a := range e.Addrs {
		h, err := parseSeed(a, p.Scheme)
		if err != nil {
			return errf(fmt.Sprintf("addrs[%d]", i), "%v", err)
		}
		hosts = appendNew(hosts, h)
	}
	e.Hosts = hosts

	if p.Username != "" && e.Username != "" && p.Username != e.Username {
		return errf("username", "given both in addr and as username (ambiguous): keep one")
	}
	if p.Password != "" {
		if e.PasswordFile != "" {
			return errf("password_file", "addr already has a password (ambiguous): keep one")
		}
		if e.Password != "" && (!full || e.Password != p.Password) {
			return errf("password", "given both in addr and as password (ambiguous): keep one")
		}
	}
	if !full && e.Password != "" && e.PasswordFile != "" {
		return errf("password", "password and password_file are both set (ambiguous): keep one")
	}
	if source {
		if e.ReadFrom == "" {
			e.ReadFrom = "master"
		}
		if err := oneOf("read_from", &e.ReadFrom, ReadFromModes); err != nil {
			return err
		}
		if e.Reader == "" {
			e.Reader = "auto"
		}
		if err := oneOf("reader", &e.Reader, ReaderModes); err != nil {
			return err
		}
		if e.ScanBigValue < 0 {
			return errf("scan_big_value", "must not be negative (0 = read every value with one DUMP)")
		}
	} else if e.ReadFrom != "" {
		return errf("read_from", "applies only to the source")
	} else if e.Reader != "" {
		return errf("reader", "applies only to the source")
	} else if e.ScanBigValue != 0 {
		return errf("scan_big_value", "applies only to the source")
	}
	if e.DialTimeout <= 0 {
		return errf("dial_timeout", "must be more than 0")
	}
	if p.Scheme == "rediss" {
		e.TLS.Enabled = true
	}
	if !full {
		return nil
	}

	if p.Scheme != "sentinel" {
		if e.SentinelUsername != "" {
			return errf("sentinel_username", "only for sentinel:// addresses")
		}
		if e.SentinelPassword != "" {
			return errf("sentinel_password", "only for sentinel:// addresses")
		}
	}
	if p.Username != "" {
		e.Username = p.Username
	}
	if p.Password != "" {
		e.Password = p.Password
	}
	if e.PasswordFile != "" {
		b, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return &Error{Field: "password_file", Msg: "cannot read: " + err.Error(), Err: err}
		}
		pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if pw == "" {
			return errf("password_file", "%s is empty", e.PasswordFile)
		}
		if e.Password != "" && e.Password != pw {
			return errf("password", "password and password_file are both set (ambiguous): keep one")
		}
		e.Password = pw
	}
	if !e.TLSOn() {
		t := e.TLS
		for _, f := range []struct {
			name string
			set  bool
		}{{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""}, {"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify}} {
			if f.set {
				return errf("tls."+f.name, "is set but TLS is off (use rediss:// or tls.enabled = true)")
			}
		}
	} else if _, err := e.TLSConfig(); err != nil {
		return err
	}
	return nil
}

// sameDeployment returns a host that source and target share, if they
// name the same deployment (for sentinel: also the same master).
func sameDeployment(s, t Endpoint) string {
	if (s.Scheme == "sentinel") != (t.Scheme == "sentinel") || s.SentinelMaster != t.SentinelMaster {
		return ""
	}
	for _, h := range s.Hosts {
		for _, g := range t.Hosts {
			if h == g {
				return h
			}
		}
	}
	return ""
}

var commandRE = regexp.MustCompile(`^[a-z0-9_|.:-]+$`)

func (f *Filter) check() error {
	blocked := map[int]bool{}
	for _, db := range f.BlockDBs {
		if db < 0 {
			return errf("block_dbs", "%d is not a database number (0 or more)", db)
		}
		blocked[db] = true
	}
	for _, db := range f.DBs {
		if db < 0 {
			return errf("dbs", "%d is not a database number (0 or more)", db)
		}
		if blocked[db] {
			return errf("block_dbs", "db %d is both in dbs and in block_dbs", db)
		}
	}
	for _, l := range []struct {
		field string
		v     []string
	}{{"prefixes", f.Prefixes}, {"block_prefixes", f.BlockPrefixes}} {
		for _, p := range l.v {
			if p == "" {
				return errf(l.field, `"" matches every key: leave the list empty instead`)
			}
		}
	}
	for _, l := range []struct {
		field string
		v     []string
	}{{"regex", f.Regex}, {"block_regex", f.BlockRegex}} {
		for _, r := range l.v {
			if _, err := regexp.Compile(r); err != nil {
				return &Error{Field: l.field, Msg: fmt.Sprintf("%q is not a valid regular expression (Go RE2 syntax): %v", r, err), Err: err}
			}
		}
	}
	for _, l := range []struct {
		field string
		v     []string
	}{{"types", f.Types}, {"block_types", f.BlockTypes}} {
		for i := range l.v {
			if err := oneOf(l.field, &l.v[i], KeyTypes); err != nil {
				return err
			}
		}
	}
	for _, l := range []struct {
		field string
		v     []string
	}{{"commands", f.Commands}, {"block_commands", f.BlockCommands}} {
		for i, c := range l.v {
			s := strings.ToLower(strings.TrimSpace(c))
			if !commandRE.MatchString(s) {
				return errf(l.field, "%q is not a command name", c)
			}
			l.v[i] = s
		}
	}
	return nil
}

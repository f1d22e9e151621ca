package conf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

const redacted = "***"

// String returns the job as a TOML single-job file, every setting spelled
// out, with passwords replaced by "***" (in addresses too). The mode, which
// a single-job file does not hold, is a comment. Without secrets, LoadJob
// reads it back to the same job.
func (j Job) String() string {
	var b strings.Builder
	w := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	if j.Mode != "" {
		fmt.Fprintf(&b, "# mode: %s\n", j.Mode)
	}
	w("name", quote(j.Name))
	w("data_dir", quote(j.DataDir))
	w("rdb", quote(j.RDB))
	if j.AOF != "" {
		w("aof", quote(j.AOF))
	}
	w("target_nonempty", quote(string(j.TargetNonempty)))
	w("restore", quote(string(j.Restore)))
	w("fence", quote(string(j.Fence)))
	w("fold", strconv.FormatBool(j.Fold))
	w("on_error", quote(string(j.OnError)))
	w("on_unsupported", quote(string(j.OnUnsupported)))
	w("keepalive_interval", dur(j.KeepaliveInterval))
	w("max_conn_age", dur(j.MaxConnAge))
	w("db_map", dbMapString(j.DBMap))
	w("batch_max_ops", strconv.Itoa(j.BatchMaxOps))
	w("batch_max_bytes", quote(FormatSize(j.BatchMaxBytes)))
	w("max_inflight_bytes", quote(FormatSize(j.MaxInflightBytes)))
	w("spool_memory", quote(FormatSize(j.SpoolMemory)))
	w("spool_max_disk", quote(FormatSize(j.SpoolMaxDisk)))
	w("max_bulk_len", quote(FormatSize(j.MaxBulkLen)))
	status := j.StatusAddr
	if status == "" {
		status = "off"
	}
	w("status_addr", quote(status))
	w("pprof", strconv.FormatBool(j.Pprof))
	w("log_level", quote(j.LogLevel))
	w("log_format", quote(j.LogFormat))
	w("cpu_scheduling", quote(string(j.CPUScheduling)))
	w("progress_interval", dur(j.ProgressInterval))
	w("max_ops_per_second", strconv.Itoa(j.MaxOpsPerSecond))
	w("max_bytes_per_second", quote(FormatSize(j.MaxBytesPerSecond)))
	w("cutover_pause_max", dur(j.CutoverPauseMax))
	w("retry_timeout", dur(j.RetryTimeout))
	w("shards", quote(j.Shards.String()))
	w("stop_timeout", dur(j.StopTimeout))
	w("lease_ttl", dur(j.LeaseTTL))
	w("takeover", strconv.FormatBool(j.Takeover))
	w("cutover_hook", quote(j.CutoverHook))
	w("cutover_hook_env", strList(j.CutoverHookEnv))
	w("cutover_hook_timeout", dur(j.CutoverHookTimeout))
	if j.Source.IsSet() {
		j.Source.write(&b, "source", true)
	}
	if j.Target.IsSet() {
		j.Target.write(&b, "target", false)
	}
	f := j.Filter
	b.WriteString("\n[filter]\n")
	w("dbs", intList(f.DBs))
	w("block_dbs", intList(f.BlockDBs))
	w("prefixes", strList(f.Prefixes))
	w("block_prefixes", strList(f.BlockPrefixes))
	w("regex", strList(f.Regex))
	w("block_regex", strList(f.BlockRegex))
	w("types", strList(f.Types))
	w("block_types", strList(f.BlockTypes))
	w("commands", strList(f.Commands))
	w("block_commands", strList(f.BlockCommands))
	return b.String()
}

func (e Endpoint) write(b *strings.Builder, name string, source bool) {
	w := func(k, v string) { fmt.Fprintf(b, "%s = %s\n", k, v) }
	secret := func(s string) string {
		if s == "" {
			return quote("")
		}
		return quote(redacted)
	}
	fmt.Fprintf(b, "\n[%s]\n", name)
	w("addr", quote(e.Redacted()))
	addrs := make([]string, len(e.Addrs))
	for i, a := range e.Addrs {
		addrs[i] = redactAddr(a)
	}
	w("addrs", strList(addrs))
	w("username", quote(e.Username))
	p, _ := ParseAddr(e.Addr)
	switch {
	case p.Password != "":
		b.WriteString("# password: in addr\n")
	case e.PasswordFile != "":
		b.WriteString("# password: from password_file\n")
	default:
		w("password", secret(e.Password))
	}
	w("password_file", quote(e.PasswordFile))
	if e.Scheme == "sentinel" || e.SentinelUsername != "" || e.SentinelPassword != "" {
		w("sentinel_username", quote(e.SentinelUsername))
		w("sentinel_password", secret(e.SentinelPassword))
	}
	if source {
		w("read_from", quote(string(e.ReadFrom)))
		w("reader", quote(string(e.Reader)))
		w("scan_big_value", quote(FormatSize(e.ScanBigValue)))
	}
	w("dial_timeout", dur(e.DialTimeout))
	fmt.Fprintf(b, "\n[%s.tls]\n", name)
	w("enabled", strconv.FormatBool(e.TLSOn()))
	w("ca_file", quote(e.TLS.CAFile))
	w("cert_file", quote(e.TLS.CertFile))
	w("key_file", quote(e.TLS.KeyFile))
	w("server_name", quote(e.TLS.ServerName))
	w("insecure_skip_verify", strconv.FormatBool(e.TLS.InsecureSkipVerify))
}

func dur(d time.Duration) string { return quote(d.String()) }

// TOMLString, TOMLStrings and TOMLInts write values the way String does,
// for other writers of job files (conf/shake).
func TOMLString(s string) string    { return quote(s) }
func TOMLStrings(l []string) string { return strList(l) }
func TOMLInts(l []int) string       { return intList(l) }

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func strList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func intList(l []int) string {
	q := make([]string, len(l))
	for i, n := range l {
		q[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func dbMapString(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q = %d", strconv.Itoa(k), m[k])
	}
	if len(parts) == 0 {
		return "{}"
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

package conf

import (
	"strings"
	"testing"
	"time"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "B_2": "beta", "DOLLAR": "$x${A}"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "alpha", ""},
		{"x${A}y${B_2}z", "xalphaybetaz", ""},
		{"${A:-d}", "alpha", ""},
		{"${UNSET:-d}", "d", ""},
		{"${EMPTY:-d}", "d", ""},
		{"${EMPTY}", "", ""},
		{"${UNSET:-}", "", ""},
		{"${UNSET:-${A}}", "alpha", ""},
		{"${UNSET:-${UNSET2:-deep}}", "deep", ""},
		{"${UNSET:-a:-b}", "a:-b", ""},
		{"${UNSET:-{x}}", "{x}", ""}, // the first } closes: default "{x", then "}"
		{"$$", "$", ""},
		{"$${A}", "${A}", ""},
		{"$$$${A}", "$${A}", ""},
		{"a$b", "a$b", ""},
		{"$", "$", ""},
		{"end$", "end$", ""},
		{"${DOLLAR}", "$x${A}", ""}, // values are not expanded again
		{"p$ss${A}", "p$ssalpha", ""},
		{"${UNSET}", "", `environment variable "UNSET" is not set (use ${UNSET:-default} for a default)`},
		{"x${UNSET:-${NOPE}}", "", `environment variable "NOPE" is not set`},
		{"${A", "", `unterminated ${ (write $$ for a literal $)`},
		{"${UNSET:-${A}", "", `unterminated ${`},
		{"${}", "", `bad variable reference ${...}: want ${NAME} or ${NAME:-default}, NAME of letters, digits and _`},
		{"${1A}", "", `bad variable reference`},
		{"${A-B}", "", `bad variable reference`},
		{"${ A }", "", `bad variable reference ${...}: no spaces allowed around the name`},
	}
	for _, c := range cases {
		got, err := expand(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("expand(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestEnvInConfig(t *testing.T) {
	t.Setenv("FERRY_T_SRC", "redis://10.1.1.1:7000")
	t.Setenv("FERRY_T_PASS", "env-pa$$word")
	t.Setenv("FERRY_T_OPS", "128")
	t.Setenv("FERRY_T_TLS", "true")
	j := mustLoad(t, `job = "${FERRY_T_JOB:-orders}"
source = "${FERRY_T_SRC}"
batch_max_ops = "${FERRY_T_OPS}"
batch_max_bytes = "${FERRY_T_BYTES:-2MiB}"
keepalive_interval = "${FERRY_T_KA:-10}"
cutover_hook = "echo $$HOME $HOME"
db_map = { "1" = "${FERRY_T_DB:-0}" }
[target]
addr = "rediss://${FERRY_T_HOST:-10.2.2.2}:${FERRY_T_PORT:-6380}"
password = "${FERRY_T_PASS}"
[target.tls]
enabled = "${FERRY_T_TLS}"
[filter]
prefixes = ["${FERRY_T_PREFIX:-user:}"]
dbs = ["${FERRY_T_DB:-0}"]
`)
	if j.Name != "orders" || j.Source.Hosts[0] != "10.1.1.1:7000" || j.BatchMaxOps != 128 ||
		j.BatchMaxBytes != 2*MiB || j.KeepaliveInterval != 10*time.Second || j.CutoverHook != "echo $HOME $HOME" ||
		j.DBMap[1] != 0 || j.Target.Hosts[0] != "10.2.2.2:6380" || j.Target.Password != "env-pa$$word" ||
		!j.Target.TLS.Enabled || j.Filter.Prefixes[0] != "user:" || j.Filter.DBs[0] != 0 {
		t.Fatalf("env expansion: %s", j.String())
	}
	_, err := load(t, "source = \"s\"\n[target]\naddr = \"t\"\npassword = \"${FERRY_T_UNSET_PASS}\"\n")
	wantErr(t, err, `config: target.password: environment variable "FERRY_T_UNSET_PASS" is not set (use ${FERRY_T_UNSET_PASS:-default} for a default)`)
	// Keys are not expanded; an unknown ${...} key is just unknown.
	_, err = load(t, base+"\"${X}\" = 1\n")
	wantErr(t, err, `unknown key "${X}"`)
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1", 1}, {"1048576", 1 << 20}, {"1B", 1}, {"1b", 1},
		{"1KB", 1000}, {"1kb", 1000}, {"1Kb", 1000}, {"1MB", 1e6}, {"1GB", 1e9}, {"2TB", 2e12},
		{"1KiB", 1024}, {"1kib", 1024}, {"1MiB", 1 << 20}, {"64MiB", 64 << 20}, {"1GiB", 1 << 30}, {"1TiB", 1 << 40},
		{"1.5GiB", 3 << 29}, {"0.5KB", 500}, {".5KiB", 512}, {" 64 MiB ", 64 << 20}, {"8EiB", -1},
	} {
		got, err := ParseSize(c.in)
		if c.want < 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", `bad size ""`},
		{"MiB", `bad size "MiB"`},
		{"1M", `bad size "1M" (use a number of bytes or a number with a unit: KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. "64MiB")`},
		{"1 MiB extra", `bad size`},
		{"1.2.3MB", `bad size "1.2.3MB"`},
		{"1e6", `bad size "1e6"`},
		{"-5", `size "-5" must not be negative`},
		{"9223372036854775807KiB", `size "9223372036854775807KiB" is too large`},
		{"99999999999999999999", `is too large`},
		{"9999999999TiB", `is too large`},
		{"99999999999.5TiB", `is too large`},
	} {
		_, err := ParseSize(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSize(%q) error %v, want %q", c.in, err, c.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0"}, {1, "1"}, {1000, "1KB"}, {1024, "1KiB"}, {1 << 20, "1MiB"}, {64 << 20, "64MiB"},
		{3 << 29, "1536MiB"}, {1 << 30, "1GiB"}, {1 << 40, "1TiB"}, {5e6, "5MB"}, {2e12, "2TB"}, {12345, "12345"},
	} {
		if got := FormatSize(c.in); got != c.want {
			t.Errorf("FormatSize(%d) = %q, want %q", c.in, got, c.want)
		}
		if back, err := ParseSize(FormatSize(c.in)); err != nil || back != c.in {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", c.in, back, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0}, {"0s", 0}, {"30s", 30 * time.Second}, {"1m30s", 90 * time.Second}, {"500ms", 500 * time.Millisecond},
		{"2h", 2 * time.Hour}, {"30", 30 * time.Second}, {"1.5", 1500 * time.Millisecond}, {" 5s ", 5 * time.Second},
	} {
		got, err := ParseDuration(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", `bad duration ""`},
		{"5 minutes", `bad duration "5 minutes" (use a Go duration like "500ms", "30s", "1m30s", "2h", or a number of seconds)`},
		{"1d", `bad duration "1d"`},
		{"1e3", `bad duration "1e3"`},
		{"NaN", `bad duration "NaN"`},
		{"Inf", `bad duration "Inf"`},
		{"-1s", `duration "-1s" must not be negative`},
		{"-1", `duration "-1" must not be negative`},
		{"99999999999999999999", `duration "99999999999999999999" is too large`},
		{"9999999999999h", `bad duration "9999999999999h"`},
	} {
		_, err := ParseDuration(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseDuration(%q) error %v, want %q", c.in, err, c.want)
		}
	}
}

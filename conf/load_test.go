package conf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestUnknownKeys(t *testing.T) {
	cases := []struct{ name, toml, want string }{
		{"typo", "taget_nonempty = \"flush\"", `config: job.toml: unknown key "taget_nonempty" (did you mean target_nonempty?)`},
		{"dash", "batch-max-ops = 1", `unknown key "batch-max-ops" (did you mean batch_max_ops?)`},
		{"case", "Restore = \"auto\"", `unknown key "Restore" (did you mean restore?)`},
		{"far", "zzz = 1", `config: job.toml: unknown key "zzz"`},
		{"nested typo", "[source]\naddr = \"s\"\npasword = \"x\"", `config: job.toml: unknown key "source.pasword" (did you mean source.password?)`},
		{"tls typo", "[target]\naddr = \"t\"\n[target.tls]\nca_fle = \"x\"", `unknown key "target.tls.ca_fle" (did you mean target.tls.ca_file?)`},
		{"filter typo", "[filter]\nprefix = [\"a\"]", `unknown key "filter.prefix" (did you mean filter.prefixes?)`},
		{"job key under [target]", "[target]\naddr = \"t\"\nlog_level = \"info\"", `unknown key "target.log_level" (log_level is a job setting, not part of [target]: put it above the first [table] header)`},
		{"job key typo under [target]", "[target]\naddr = \"t\"\ntaget_nonempty = \"flush\"", `unknown key "target.taget_nonempty" (target_nonempty is a job setting, not part of [target]: put it above the first [table] header)`},
		{"job key under [filter]", "[filter]\nrestore = \"auto\"", `(restore is a job setting, not part of [filter]`},
		{"read_from on target", "[target]\naddr = \"t\"\nread_from = \"replica\"", `unknown key "target.read_from" (read_from applies only to the source)`},
		{"scan_big_value on target", "[target]\naddr = \"t\"\nscan_big_value = \"1MiB\"", `unknown key "target.scan_big_value" (scan_big_value applies only to the source)`},
		{"name twice", "name = \"orders\"\njob = \"orders\"", `config: job: the job's name is set twice: keep name = "..." (job is its old spelling)`},
		{"mode", "mode = \"sync\"", `unknown key "mode" (a single-job file has no mode: the command (ferry migrate, sync, verify) gives it; mode is for [[job]] tables of a batch file run by ferry run)`},
		{"batch key", "fail_fast = true", `unknown key "fail_fast" (a batch-file key: batch files are run by ferry run)`},
		{"tls shorthand key", "[source]\naddr = \"s\"\nca_file = \"x\"", `unknown key "source.ca_file"`},
		// Unknown keys are reported before other errors.
		{"unknown first", "restore = \"bad\"\nrestroe = \"x\"", `unknown key "restroe" (did you mean restore?)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJob([]byte(c.toml+"\n"), "job.toml")
			wantErr(t, err, c.want)
		})
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"restore", "fence", "target_nonempty", "db_map"}
	for _, c := range []struct{ in, want string }{
		{"restor", "restore"}, {"fense", "fence"}, {"target-nonempty", "target_nonempty"},
		{"targetnonempty", "target_nonempty"}, {"dbmap", "db_map"}, {"x", ""}, {"ab", ""}, {"completely_else", ""},
	} {
		if got := suggest(c.in, cands); got != c.want {
			t.Errorf("suggest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct {
		name, toml, want string
		wrapped          bool // the toml.ParseError is kept (not for scrubbed messages)
	}{
		{"bare value", "restore = auto\n", `config: job.toml:1:11: expected value but found "auto" instead`, true},
		{"line 3", "job = \"a\"\n\nlog_level = \"info\" x\n", `config: job.toml:3:`, false},
		{"duplicate", "job = \"a\"\njob = \"b\"\n", `config: job.toml:2:11: Key 'job' has already been defined.`, true},
		{"unclosed", "[source\naddr = \"x\"\n", `config: job.toml:2:8: expected '.' or ']' to end table name`, false},
		{"secret value", "[source]\npassword = hunter2pw\n", `config: job.toml:2:12: expected value but found <not shown> instead (quote strings: password = "...")`, false},
		{"secret addr", "source = redis://u:hunter2pw@h\n", `config: job.toml:1:10: expected value but found <not shown> instead (quote strings: source = "...")`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJob([]byte(c.toml), "job.toml")
			wantErr(t, err, c.want)
			var pe toml.ParseError
			if c.wrapped != errors.As(err, &pe) {
				t.Errorf("unwraps to toml.ParseError: %v, want %v", !c.wrapped, c.wrapped)
			}
		})
	}
	// Without a file name: line:col only.
	_, err := ParseJob([]byte("restore = auto\n"), "")
	wantErr(t, err, `config: 1:11: expected value`)
}

func TestLoadJobFile(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "job.toml", base+"job = \"f\"\n")
	j, err := LoadJob(p)
	if err != nil || j.Name != "f" {
		t.Fatalf("LoadJob = %v, %v", j.Name, err)
	}
	_, err = LoadJob(filepath.Join(dir, "missing.toml"))
	wantErr(t, err, "config: open "+filepath.Join(dir, "missing.toml")+": no such file or directory")
	if !errors.Is(err, os.ErrNotExist) {
		t.Error("missing file error is not os.ErrNotExist")
	}
	// A batch file is not a job file.
	b := writeFile(t, dir, "jobs.toml", "[[job]]\nname = \"a\"\n")
	_, err = LoadJob(b)
	wantErr(t, err, "config: "+b+": this is a batch file ([[job]] tables, [defaults], max_parallel): run it with ferry run -c")
}

// TestJobNameSpellings: name = "..." as in batch files; job = "...", the
// old spelling of single-job files, still read, with a warning.
func TestJobNameSpellings(t *testing.T) {
	j, err := ParseJob([]byte("name = \"orders\"\n"), "job.toml")
	if err != nil || j.Name != "orders" || len(j.Warnings) != 0 {
		t.Fatalf("name: %+v %v", j.Warnings, err)
	}
	j, err = ParseJob([]byte("job = \"orders\"\n"), "job.toml")
	if err != nil || j.Name != "orders" || len(j.Warnings) != 1 || !strings.Contains(j.Warnings[0], `job.toml: job = "..." is the old spelling of the job's name: write name = "..."`) {
		t.Fatalf("job: %q %v", j.Warnings, err)
	}
}

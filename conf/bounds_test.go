package conf

import (
	"strings"
	"testing"
)

// TestJobNameSafe: names that would leave data_dir or hold a separator are
// refused with one line that shows at most a prefix of a long value.
func TestJobNameSafe(t *testing.T) {
	long := strings.Repeat("n", 200)
	for _, name := range []string{".", "..", "a/b", `a\b`, "-x", ".hidden", "a b", long} {
		j := Default()
		j.Name = name
		err := j.Validate()
		if err == nil {
			t.Errorf("job name %q accepted", name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "config: job: ") || !strings.Contains(msg, "is not a valid job name") || strings.Contains(msg, "\n") {
			t.Errorf("job name %q: error %q", name, msg)
		}
		if len(msg) > 200 || strings.Contains(msg, long) {
			t.Errorf("job name of %d bytes: the error echoes all of it: %q", len(name), msg)
		}
	}
	for _, name := range []string{"orders", "a", "x.1-b_c", strings.Repeat("n", 64)} {
		j := Default()
		j.Name = name
		if err := j.validate(false); err != nil {
			t.Errorf("job name %q refused: %v", name, err)
		}
	}
	dir := t.TempDir()
	_, err := LoadBatch(writeFile(t, dir, "b.toml", "[[job]]\nname = \"..\"\nmode = \"sync\"\nsource = \"redis://a:1\"\ntarget = \"redis://b:1\"\n"))
	wantErr(t, err, `config: job[#1].name: ".." is not a valid job name`)
	_, err = LoadBatch(writeFile(t, dir, "c.toml", "[[job]]\nname = \""+long+"\"\nmode = \"sync\"\nsource = \"redis://a:1\"\ntarget = \"redis://b:1\"\n"))
	wantErr(t, err, `is not a valid job name`)
	if strings.Contains(err.Error(), long) {
		t.Errorf("the error echoes the whole name: %v", err)
	}
}

func TestCutoverHookEnvNames(t *testing.T) {
	j, err := ParseJob([]byte(`cutover_hook_env = ["KUBECONFIG", "_X1"]`), "job.toml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(j.CutoverHookEnv, ",") != "KUBECONFIG,_X1" {
		t.Errorf("cutover_hook_env = %q", j.CutoverHookEnv)
	}
	_, err = ParseJob([]byte(`cutover_hook_env = ["OK", "A=B"]`), "job.toml")
	wantErr(t, err, `config: cutover_hook_env[1]: "A=B" is not a variable name`)
}

// TestConfigBounds: a file too large or nested too deep is refused before
// the TOML decoder sees it, with one line; nesting inside strings and
// comments does not count, and the deepest real settings load.
func TestConfigBounds(t *testing.T) {
	dir := t.TempDir()
	big := writeFile(t, dir, "big.toml", "# "+strings.Repeat("x", MaxFileSize)+"\n")
	_, err := LoadJob(big)
	wantErr(t, err, "big.toml: larger than 1MiB")
	_, err = LoadBatch(big)
	wantErr(t, err, "big.toml: larger than 1MiB")

	// The case: nested inline tables, which cost the decoder
	// seconds and hundreds of MB.
	deep := "x = " + strings.Repeat("{a = ", 6000) + "1" + strings.Repeat("}", 6000) + "\n"
	_, err = LoadJob(writeFile(t, dir, "deep.toml", deep))
	wantErr(t, err, "deep.toml:1:")
	wantErr(t, err, "nested deeper than 8")
	_, err = LoadBatch(writeFile(t, dir, "deepb.toml", "max_parallel = 1\ny = "+strings.Repeat("[", 100000)))
	wantErr(t, err, "deepb.toml:2:")
	_, err = ParseJob([]byte("a = [[[[[[[[[1]]]]]]]]]"), "arr.toml")
	wantErr(t, err, "nested deeper than 8")

	// Brackets in strings and comments are text.
	j, err := ParseJob([]byte("# [[[[[[[[[[[[{{{{{{{{{{\ncutover_hook = \"echo '[[[[[[[[[[[[' \\\"{{{{{{{{{{{{\"\n"+
		"job = '''\n[[[[[[[[[[[['''\n"), "str.toml")
	if err == nil || !strings.Contains(err.Error(), "job name") {
		t.Errorf("strings and comments: want only the job name refused, got %v", err)
	}
	_ = j
	// The deepest real settings nest: source = { tls = {…}, addrs = […] }.
	b, err := ParseBatch([]byte("[[job]]\n"+`name = "a"`+"\n"+`mode = "sync"`+"\n"+
		`source = { addr = "redis://a:1", addrs = ["b:1"], tls = { enabled = false } }`+"\n"+`target = "redis://c:1"`+"\n"+`db_map = { "1" = 2 }`), "ok.toml")
	if err != nil || len(b.Jobs) != 1 {
		t.Errorf("a valid nested batch file: %v", err)
	}
}

// TestPprofSetting: pprof is off by default and, in a batch file, a
// process-wide setting of [defaults].
func TestPprofSetting(t *testing.T) {
	if Default().Pprof {
		t.Fatal("pprof on by default")
	}
	j, err := ParseJob([]byte("pprof = true\n"), "job.toml")
	if err != nil || !j.Pprof {
		t.Fatalf("pprof = true: %v %v", j.Pprof, err)
	}
	job := "[[job]]\nname = \"a\"\nmode = \"sync\"\nsource = \"redis://a:1\"\ntarget = \"redis://b:1\"\n"
	b, err := ParseBatch([]byte("[defaults]\npprof = true\n"+job), "b.toml")
	if err != nil || !b.Pprof {
		t.Fatalf("[defaults] pprof = true: %v %v", b.Pprof, err)
	}
	_, err = ParseBatch([]byte(job+"pprof = true\n"), "b.toml")
	wantErr(t, err, "job[a].pprof: applies to the whole batch run")
}

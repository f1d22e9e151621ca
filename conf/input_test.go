package conf

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAOFSetting(t *testing.T) {
	dir := t.TempDir()
	aof := writeFile(t, dir, "appendonly.aof", "*1\r\n$4\r\nPING\r\n")
	rdb := writeFile(t, dir, "dump.rdb", "REDIS0011")
	for _, c := range []struct {
		mode, toml, want string
	}{
		{"sync", "aof = \"" + aof + "\"\ntarget = \"t\"", ""},
		{"sync", "aof = \"" + dir + "\"\ntarget = \"t\"", ""}, // an appendonlydir
		{"verify", "aof = \"" + aof + "\"\ntarget = \"t\"", `config: aof: not used by verify`},
		{"sync", "aof = \"" + aof + "\"\nrdb = \"" + rdb + "\"\ntarget = \"t\"", `config: aof: aof and rdb exclude each other`},
		{"sync", "aof = \"" + aof + "\"\nsource = \"s\"\ntarget = \"t\"", `config: aof: aof and source exclude each other`},
		{"sync", "aof = \"" + filepath.Join(dir, "nope") + "\"\ntarget = \"t\"", `config: aof: stat ` + filepath.Join(dir, "nope") + `: no such file or directory`},
	} {
		j, err := ParseJob([]byte(c.toml), "job.toml")
		if err != nil {
			t.Fatal(err)
		}
		j.Mode = Mode(c.mode)
		err = j.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.toml, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%q: err %v, want %q", c.toml, err, c.want)
		case c.want == "" && (!j.Import() || j.AOF == ""):
			t.Errorf("%q: not an AOF import", c.toml)
		}
		if c.want == "" {
			back, err := ParseJob([]byte(j.String()), "job.toml")
			if err != nil || back.AOF != j.AOF {
				t.Errorf("String does not read back the aof: %v %q", err, back.AOF)
			}
		}
	}
}

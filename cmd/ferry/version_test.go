package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionFallback: without an -ldflags version, 'ferry version' shows
// the module version and the VCS revision Go recorded, marked when the
// checkout had local changes.
func TestVersionFallback(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	for _, c := range []struct {
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"dev", nil, "ferry dev (go"},
		{"dev", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}}, "ferry dev (go1.26.1, "},
		{"dev", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.4.0"}}, "ferry v1.4.0 (go1.26.1, "},
		{"dev", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			"ferry dev (rev 0123456789ab+modified, go1.26.1, "},
		{"v2.0.0", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.4.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			"ferry v2.0.0 (rev 0123456789ab, go1.26.1, "},
	} {
		b := buildInfoFrom(c.ldflags, c.bi)
		if got := versionLine(b); !strings.HasPrefix(got, c.want) {
			t.Errorf("version %q, build info %+v: %q, want prefix %q", c.ldflags, c.bi, got, c.want)
		}
	}
}

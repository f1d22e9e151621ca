package main

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/ferry-dev/ferry/status"
)

// buildInfo is what this binary knows about its build: the version set
// with -ldflags "-X main.version=…" or else the module's version, and the
// VCS revision Go stamped into it (go build in a git checkout).
// revision is set at build time with -ldflags "-X main.revision=…" where Go
// cannot stamp it (a container build without .git, a git worktree).
var revision = ""

func buildInfo() status.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(version, bi)
}

// buildInfoFrom is buildInfo from the -ldflags version and what Go
// recorded (nil when nothing).
func buildInfoFrom(version string, bi *debug.BuildInfo) status.BuildInfo {
	b := status.BuildInfo{Version: version, GoVersion: runtime.Version(), Revision: revision}
	if bi == nil {
		return b
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version // go install github.com/ferry-dev/ferry/cmd/ferry@v1.2.3
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionLine is the line 'ferry version' prints:
// "ferry v1.2.0 (rev 0123abcd, go1.26.0, linux/amd64)".
func versionLine(b status.BuildInfo) string {
	parts := []string{}
	if b.Revision != "" {
		rev := "rev " + b.Revision[:min(12, len(b.Revision))]
		if b.Modified {
			rev += "+modified"
		}
		parts = append(parts, rev)
	}
	parts = append(parts, b.GoVersion, runtime.GOOS+"/"+runtime.GOARCH)
	return "ferry " + b.Version + " (" + strings.Join(parts, ", ") + ")"
}

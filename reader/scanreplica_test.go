package reader

import (
	"strings"
	"testing"
)

// TestReplicaProblem: what INFO replication on the replica read says
// about it, against what it said when the session started.
func TestReplicaProblem(t *testing.T) {
	info := func(lines ...string) string {
		return "# Replication\r\n" + strings.Join(lines, "\r\n") + "\r\n"
	}
	w := &replicaWatch{addr: "10.0.0.2:6379", master: "10.0.0.1:6379"}
	ok := info("role:slave", "master_host:10.0.0.1", "master_port:6379", "master_link_status:up", "master_sync_in_progress:0",
		"slave_repl_offset:1234", "master_replid:abc")
	r := parseReplicaInfo(ok)
	if r.offset != 1234 || r.replid != "abc" || r.master != "10.0.0.1:6379" {
		t.Fatalf("parsed %+v", r)
	}
	if p := w.problem(r); p != "" {
		t.Fatalf("in sync: %s", p)
	}
	for _, c := range []struct{ info, want string }{
		{info("role:master", "master_replid:abc"), "promoted"},
		{info("role:slave", "master_host:10.0.0.3", "master_port:6379", "master_link_status:up"), "now follows 10.0.0.3:6379"},
		{info("role:slave", "master_host:10.0.0.1", "master_port:6379", "master_link_status:down"), "master_link_status:down"},
		{info("role:slave", "master_host:10.0.0.1", "master_port:6379", "master_link_status:up", "master_sync_in_progress:1"), "resyncing"},
	} {
		if p := w.problem(parseReplicaInfo(c.info)); !strings.Contains(p, c.want) {
			t.Errorf("%q: problem %q, want %q", c.info, p, c.want)
		}
	}
	if got := roleName("ferry-reader-3", "monitor"); got != "ferry-monitor-3" {
		t.Errorf("roleName = %q", got)
	}
}

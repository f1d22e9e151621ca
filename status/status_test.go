package status

import (
	"math"
	"strings"
	"testing"
)

func TestScrubAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1:6379":              "10.0.0.1:6379",
		"redis://10.0.0.1:6379/2":    "redis://10.0.0.1:6379/2",
		"redis://user:pass@h:1":      "redis://user:***@h:1",
		"rediss://:pass@h:1":         "rediss://:***@h:1",
		"redis://pass@h:1":           "redis://***@h:1",
		"redis://user:p@ss:w@rd@h:1": "redis://user:***@h:1",
		"user:pass@h:1":              "user:***@h:1",
		"redis://user:***@h:1":       "redis://user:***@h:1",
		"":                           "",
	} {
		if got := scrubAddr(in); got != want {
			t.Errorf("scrubAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubText(t *testing.T) {
	for in, want := range map[string]string{
		"connection refused":                                         "connection refused",
		"dial redis://u:secret@h:1/0: refused":                       "dial redis://u:***@h:1/0: refused",
		"a redis://x@h:1 and rediss://y:z@@k:2, mail me@example.com": "a redis://***@h:1 and rediss://y:***@k:2, mail me@example.com",
		"redis://h:1 is down":                                        "redis://h:1 is down",
	} {
		if got := scrubText(in); got != want {
			t.Errorf("scrubText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSnapshot(t *testing.T) {
	shards := []Shard{{Name: "a"}, {Name: "a"}, {Addr: "redis://u:pw@h:1"}, {}}
	j := snapshot("job1", func() Job {
		return Job{Name: "other", OpsPerSecond: math.NaN(), Shards: shards, Writers: []Writer{{Addr: "h:2", ConnAgeSeconds: math.Inf(1)}}}
	})
	if j.Name != "job1" || j.OpsPerSecond != 0 || j.Writers[0].ConnAgeSeconds != 0 {
		t.Errorf("snapshot: %+v", j)
	}
	var names []string
	for _, s := range j.Shards {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "a a#2 redis://u:***@h:1 3" {
		t.Errorf("shard names: %q", got)
	}
	if j.Writers[0].Name != "h:2" {
		t.Errorf("writer name: %q", j.Writers[0].Name)
	}
	if shards[1].Name != "a" || shards[2].Addr != "redis://u:pw@h:1" {
		t.Error("snapshot changed the Source's slice")
	}
	if j = snapshot("x", func() Job { return Job{} }); j.Shards == nil || j.Writers == nil {
		t.Error("nil lists")
	}
}

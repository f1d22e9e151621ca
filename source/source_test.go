package source

import (
	"testing"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/topology"
)

// Every process of a split sync numbers the shards alike: by their lowest
// slot, whatever order the cluster lists them in, without the empty ones.
func TestByFirstSlot(t *testing.T) {
	in := []topology.Shard{
		{Master: topology.Node{Addr: "c"}, Slots: [][2]int{{10923, 16383}}},
		{Master: topology.Node{Addr: "empty"}},
		{Master: topology.Node{Addr: "a"}, Slots: [][2]int{{100, 5460}, {0, 99}}},
		{Master: topology.Node{Addr: "b"}, Slots: [][2]int{{5461, 10922}}},
	}
	var got []string
	for _, sh := range byFirstSlot(in) {
		got = append(got, sh.Master.Addr)
	}
	if len(got) != 3 || got[0] != "a" && got[0] != "b" || got[2] != "c" {
		t.Errorf("order %v", got)
	}
	if in[1].Master.Addr != "empty" {
		t.Error("byFirstSlot changed its argument")
	}
}

func TestShardOwns(t *testing.T) {
	all := &Shard{}
	half := &Shard{Slots: [][2]int{{0, 8191}}}
	for _, k := range []string{"a", "b", "{user}:1", "x"} {
		if !all.Owns(k) {
			t.Errorf("a shard of a standalone source does not own %q", k)
		}
		if got, want := half.Owns(k), router.SlotString(k) <= 8191; got != want {
			t.Errorf("Owns(%q) = %v, slot %d", k, got, router.SlotString(k))
		}
	}
}

// A source that is one shard cannot be split between processes.
func TestOneShard(t *testing.T) {
	if err := oneShard(conf.ShardSet{}); err != nil {
		t.Errorf("all shards: %v", err)
	}
	set, err := conf.ParseShards("1/3")
	if err != nil {
		t.Fatal(err)
	}
	if err := oneShard(set); err == nil {
		t.Error("shards 1/3 of a one-shard source accepted")
	}
}

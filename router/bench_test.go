package router

import (
	"fmt"
	"testing"
)

func BenchmarkSlot(b *testing.B) {
	for _, key := range []string{"user:1000", "{user1000}.following", "session:" + string(make([]byte, 56))} {
		k := []byte(key)
		b.Run(fmt.Sprintf("%dB", len(k)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Slot(k)
			}
		})
	}
}

func BenchmarkKeys(b *testing.B) {
	for _, sample := range []string{
		"SET user:1000 value PXAT 1700000000000",
		"set user:1000 value",
		"HSET h:1 field value",
		"XADD stream:1 1-1 f v",
		"DEL k1 k2 k3",
		"MSET k1 v1 k2 v2",
		"XGROUP SETID x g 0",
		"ZUNIONSTORE dst 2 z1 z2",
	} {
		a := args(sample)
		b.Run(string(a[0])+fmt.Sprint(len(a)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Keys(a)
			}
		})
	}
}

func BenchmarkSlotOf(b *testing.B) {
	a := args("SET user:1000 value PXAT 1700000000000")
	b.ReportAllocs()
	for b.Loop() {
		SlotOf(a)
	}
}

func BenchmarkSplitBySlot(b *testing.B) {
	for _, sample := range []string{
		"SET user:1000 value",
		"DEL k1 k2 k3 k4 k5 k6 k7 k8 k9 k10",
	} {
		a := args(sample)
		b.Run(string(a[0]), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				SplitBySlot(a)
			}
		})
	}
}

func BenchmarkTagForSlot(b *testing.B) {
	TagForSlot(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		TagForSlot(i & (SlotCount - 1))
	}
}

func BenchmarkBuildTags(b *testing.B) {
	for b.Loop() {
		buildTags()
	}
}

// BenchmarkReplicatedPath is what one replicated command costs the router on
// a cluster source and target with a filter: parsed once, then its slot (the
// move registry) and its parts (the sink). Before the Command value, the same
// path parsed it four times (SlotOf, Keys, Parse, SplitBySlot).
func BenchmarkReplicatedPath(b *testing.B) {
	for _, sample := range []string{"SET user:1000 value PXAT 1700000000000", "DEL {t}1 {t}2 {t}3", "HSET h:1 f v"} {
		a := args(sample)
		b.Run(string(a[0]), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, _ := Parse(a)
				c.Slot()
				c.Parts()
			}
		})
	}
}

package conf

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ShardSet is shards = "I/N": this process takes the source shards whose
// place, in the order of their lowest slot, is I modulo N, so that N
// processes (N pods of a StatefulSet, say) split one source cluster. The
// zero value and 0/1 take every shard.
type ShardSet struct {
	I, N int
	// Ordinal: I comes from the host name's trailing number (a
	// StatefulSet's pod "ferry-2" is 2), resolved by Validate.
	Ordinal bool
}

// All reports whether the set takes every shard.
func (s ShardSet) All() bool { return s.N <= 1 }

func (s ShardSet) String() string {
	if s.N == 0 {
		return "0/1"
	}
	if s.Ordinal {
		return fmt.Sprintf("ordinal/%d", s.N)
	}
	return fmt.Sprintf("%d/%d", s.I, s.N)
}

// Takes reports whether the shard at place k (0-based, by lowest slot) is
// this process's.
func (s ShardSet) Takes(k int) bool { return s.All() || k%s.N == s.I }

const shardsHelp = `use "I/N": this process's number I (0 to N-1) and the number of processes N, e.g. "1/3"; or "ordinal/N" to take I from the host name's trailing number (a StatefulSet pod)`

// ParseShards reads "I/N" or "ordinal/N".
func ParseShards(v string) (ShardSet, error) {
	is, ns, ok := strings.Cut(strings.TrimSpace(v), "/")
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err != nil || n < 1 || n > 1024 {
		return ShardSet{}, fmt.Errorf("%q: %s", v, shardsHelp)
	}
	if strings.TrimSpace(is) == "ordinal" {
		return ShardSet{N: n, Ordinal: true}, nil
	}
	i, err := strconv.Atoi(strings.TrimSpace(is))
	if err != nil || i < 0 || i >= n {
		return ShardSet{}, fmt.Errorf("%q: %s", v, shardsHelp)
	}
	return ShardSet{I: i, N: n}, nil
}

// resolveOrdinal sets I from host's trailing "-<number>".
func (s *ShardSet) resolveOrdinal(host string) error {
	if !s.Ordinal {
		return nil
	}
	k := strings.LastIndexByte(host, '-')
	i, err := strconv.Atoi(host[k+1:])
	if k < 0 || err != nil {
		return fmt.Errorf("ordinal/%d: the host name %q does not end in -<number> (a StatefulSet pod's does)", s.N, host)
	}
	if i >= s.N {
		return fmt.Errorf("ordinal/%d: the host name %q gives %d, not below %d", s.N, host, i, s.N)
	}
	s.I, s.Ordinal = i, false
	return nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

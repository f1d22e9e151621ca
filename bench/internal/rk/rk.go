// Package rk holds what the benchmark tools share: connecting to a server or
// a cluster (detected, not configured), the masters and the slots they own,
// hash slots of keys and keys that land in a given slot.
package rk

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client opens a RESP2 client on addr, db. Identity (CLIENT SETINFO) is off:
// the servers measured may be older than the client.
func Client(addr string, db, pool int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, DB: db, Protocol: 2, DisableIdentity: true,
		PoolSize: pool, MinIdleConns: 0,
		ReadTimeout: 5 * time.Minute, WriteTimeout: 5 * time.Minute,
		DialTimeout: 5 * time.Second, MaxRetries: -1,
	})
}

// Master is one master and the slot ranges it serves ([0,16383] for a
// standalone server).
type Master struct {
	Addr   string
	Ranges [][2]int
}

// Owns reports whether the master serves slot.
func (m Master) Owns(slot int) bool {
	for _, r := range m.Ranges {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// Topology is a deployment: one master (standalone) or the masters of a cluster.
type Topology struct {
	Cluster bool
	Masters []Master
}

// Discover tells a cluster from a standalone server and lists its masters.
func Discover(ctx context.Context, addr string) (Topology, error) {
	c := Client(addr, 0, 1)
	defer c.Close()
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		return Topology{}, fmt.Errorf("%s: %w", addr, err)
	}
	if Field(info, "cluster_enabled") != "1" {
		return Topology{Masters: []Master{{Addr: addr, Ranges: [][2]int{{0, 16383}}}}}, nil
	}
	v, err := c.Do(ctx, "cluster", "slots").Slice()
	if err != nil {
		return Topology{}, fmt.Errorf("%s: cluster slots: %w", addr, err)
	}
	by := map[string]*Master{}
	for _, e := range v {
		r, ok := e.([]any)
		if !ok || len(r) < 3 {
			continue
		}
		lo, _ := r[0].(int64)
		hi, _ := r[1].(int64)
		node, _ := r[2].([]any)
		if len(node) < 2 {
			continue
		}
		host, _ := node[0].(string)
		port, _ := node[1].(int64)
		if host == "" {
			host = strings.Split(addr, ":")[0]
		}
		a := fmt.Sprintf("%s:%d", host, port)
		if by[a] == nil {
			by[a] = &Master{Addr: a}
		}
		by[a].Ranges = append(by[a].Ranges, [2]int{int(lo), int(hi)})
	}
	t := Topology{Cluster: true}
	for _, m := range by {
		t.Masters = append(t.Masters, *m)
	}
	sort.Slice(t.Masters, func(i, j int) bool { return t.Masters[i].Addr < t.Masters[j].Addr })
	if len(t.Masters) == 0 {
		return Topology{}, fmt.Errorf("%s: cluster without masters", addr)
	}
	return t, nil
}

// MasterFor returns the master serving slot.
func (t Topology) MasterFor(slot int) string {
	for _, m := range t.Masters {
		if m.Owns(slot) {
			return m.Addr
		}
	}
	return ""
}

// Field returns one "name:value" field of an INFO reply.
func Field(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		l = strings.TrimRight(l, "\r")
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return v
		}
	}
	return ""
}

// Keyspace returns keys per db from an INFO keyspace reply.
func Keyspace(info string) map[int]int64 {
	out := map[int]int64{}
	for _, l := range strings.Split(info, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "db") {
			continue
		}
		name, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		db, err := strconv.Atoi(name[2:])
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "keys="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[db] = n
			}
		}
	}
	return out
}

// TotalKeys sums the keys of every db of every master.
func TotalKeys(ctx context.Context, t Topology) (int64, error) {
	var sum int64
	for _, m := range t.Masters {
		c := Client(m.Addr, 0, 1)
		info, err := c.Info(ctx, "keyspace").Result()
		c.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", m.Addr, err)
		}
		for _, n := range Keyspace(info) {
			sum += n
		}
	}
	return sum, nil
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021), the checksum Redis Cluster
// maps keys with.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Slot is the hash slot of key, honouring {hash tags}.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16([]byte(key)) & 16383)
}

var tags []string

// Tag returns a short string whose slot is slot: "{tag}" in a key puts the
// key there.
func Tag(slot int) string {
	if tags == nil {
		tags = make([]string, 16384)
		left := 16384
		for i := 0; left > 0; i++ {
			s := "t" + strconv.Itoa(i)
			if n := Slot(s); tags[n] == "" {
				tags[n] = s
				left--
			}
		}
	}
	return tags[slot]
}

// Pair is a slot served by a given source master and a given target master.
type Pair struct {
	Src, Dst string
	Slot     int
}

// Pairs returns, for each (source master, target master) that share a slot,
// one such slot: a key written there on the source travels the path from
// that source master to that target master.
func Pairs(src, dst Topology) []Pair {
	var out []Pair
	for _, s := range src.Masters {
		for _, d := range dst.Masters {
			for slot := 0; slot < 16384; slot++ {
				if s.Owns(slot) && d.Owns(slot) {
					out = append(out, Pair{Src: s.Addr, Dst: d.Addr, Slot: slot})
					break
				}
			}
		}
	}
	return out
}

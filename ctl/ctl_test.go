package ctl

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
)

func TestKeyspace(t *testing.T) {
	info := "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0,subexpiry=2\r\ndb12:keys=40,expires=0,avg_ttl=0\r\n"
	if k := Keyspace(info, "keys"); k[0] != 3 || k[12] != 40 || len(k) != 2 || Sum(k) != 43 {
		t.Errorf("keys: %v", k)
	}
	if k := Keyspace(info, "subexpiry"); k[0] != 2 || len(k) != 1 {
		t.Errorf("subexpiry: %v", k)
	}
	if v := InfoField("# Server\r\nredis_version:7.0.15\r\n", "redis_version"); v != "7.0.15" {
		t.Errorf("InfoField: %q", v)
	}
}

func TestRDBVersion(t *testing.T) {
	for v, want := range map[string]int{"8.0.1": 12, "7.4.0": 12, "7.2.4": 11, "7.0.15": 10, "6.2.6": 9, "5.0.7": 9, "4.0.14": 8, "3.2.1": 6, "": 6, "valkey": 6} {
		if got := RDBVersion(v); got != want {
			t.Errorf("RDBVersion(%q) = %d, want %d", v, got, want)
		}
	}
}

// TestDescribe: what a control connection's failure says, against real
// servers.
func TestDescribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := redistest.Start(t)
	s.Do(t, "CONFIG", "SET", "requirepass", "right")
	c := New(dial.Options{Addr: s.Addr, Password: "wrong", Timeout: 2 * time.Second})
	defer c.Close()
	_, err := IsCluster(ctx, c)
	if err == nil || !strings.Contains(Describe(s.Addr, err).Error(), "wrong password") {
		t.Errorf("wrong password: %v", Describe(s.Addr, err))
	}

	port := redistest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c2 := New(dial.Options{Addr: addr, Timeout: 2 * time.Second})
	defer c2.Close()
	_, err = IsCluster(ctx, c2)
	if err == nil || !strings.Contains(Describe(addr, err).Error(), "connection refused (is the server running") {
		t.Errorf("refused: %v", Describe(addr, err))
	}

	ok := New(dial.Options{Addr: s.Addr, Password: "right", Timeout: 2 * time.Second})
	defer ok.Close()
	if cl, err := IsCluster(ctx, ok); err != nil || cl {
		t.Errorf("IsCluster of a standalone server: %v %v", cl, err)
	}
	if off, err := MasterOffset(ctx, ok); err != nil || off < 0 {
		t.Errorf("MasterOffset: %d %v", off, err)
	}
}

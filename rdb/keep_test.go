package rdb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// buildKeep is an RDB with AuxKeep fields in two dbs, among keys.
func buildKeep() []byte {
	e := newRDB(9)
	e.aux("redis-ver", "7.0.0")
	e.selectDB(0)
	e.key(TypeString, "a").str("1")
	e.aux(AuxKeep, "big:a")
	e.selectDB(3)
	e.aux(AuxKeep, "big\r\n\x00b")
	e.key(TypeString, "b").str("2")
	return e.finish()
}

// TestAuxKeep: an AuxKeep field is an AUX record of the db selected before
// it, whose Keep is its key; no other record has one.
func TestAuxKeep(t *testing.T) {
	type keep struct {
		db  int
		key string
	}
	var keeps []keep
	keys := 0
	frameAll(t, buildKeep(), Options{}, func(rec *Record) {
		defer rec.Release()
		if k, ok := rec.Keep(); ok {
			if rec.Kind != KindAux {
				t.Errorf("a %s record has a keep", rec.Kind)
			}
			keeps = append(keeps, keep{rec.DB, string(k)})
		}
		if rec.Kind == KindKey {
			keys++
		}
	})
	want := []keep{{0, "big:a"}, {3, "big\r\n\x00b"}}
	if len(keeps) != len(want) || keeps[0] != want[0] || keeps[1] != want[1] || keys != 2 {
		t.Fatalf("keeps %+v and %d keys, want %+v and 2 keys", keeps, keys, want)
	}
}

// TestAuxKeepOnServer: Redis loads an RDB holding AuxKeep fields (it
// ignores the fields).
func TestAuxKeepOnServer(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep.rdb"), buildKeep(), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startRedis(t, "--dir", dir, "--dbfilename", "keep.rdb")
	ctx := context.Background()
	c0, c3 := srv.client(0), srv.client(3)
	defer c0.Close()
	defer c3.Close()
	if a, b := c0.Get(ctx, "a").Val(), c3.Get(ctx, "b").Val(); a != "1" || b != "2" {
		t.Fatalf("loaded a=%q b=%q, want 1 and 2", a, b)
	}
	if n0, n3 := c0.DBSize(ctx).Val(), c3.DBSize(ctx).Val(); n0 != 1 || n3 != 1 {
		t.Fatalf("db sizes %d and %d, want 1 and 1", n0, n3)
	}
}

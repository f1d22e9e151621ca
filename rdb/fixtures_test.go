package rdb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/hdt3213/rdb/core"
	"github.com/hdt3213/rdb/model"
	"github.com/redis/go-redis/v9"
)

const fixtureDir = "/root/go/pkg/mod/github.com/hdt3213/rdb@v1.0.18/cases"

func fixtureFiles(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.rdb"))
	if len(files) == 0 {
		t.Skip("hdt3213/rdb fixtures not in the module cache")
	}
	return files
}

// TestFixturesFrameAndRewrite frames and rewrites every hdt3213 fixture.
func TestFixturesFrameAndRewrite(t *testing.T) {
	for _, f := range fixtureFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			types := map[byte]int{}
			cmds := 0
			frameAll(t, data, Options{MemLimit: 256, SpillDir: t.TempDir()}, func(rec *Record) {
				defer rec.Release()
				if rec.Kind == KindKey {
					types[rec.Type]++
					// the payload frames back to itself
					p, err := rec.AppendRestorePayload(nil, MaxVersion)
					if err != nil {
						t.Fatal(err)
					}
					pr, err := ParseDump(rec.DB, rec.Key, p, 0)
					if err != nil {
						t.Fatalf("ParseDump %q: %v", rec.Key, err)
					}
					pr.Release()
				}
				err := Rewrite(rec, RewriteOptions{Now: func() time.Time { return time.Unix(0, 0) }}, func(args [][]byte) error {
					cmds++
					return nil
				})
				if err != nil {
					t.Fatalf("Rewrite %q: %v", rec.Key, err)
				}
			})
			t.Logf("types %v, %d commands", types, cmds)
		})
	}
}

// TestFixturesOracle applies the rewrite of each fixture to a real server and
// compares the result with what hdt3213's own decoder reads from the file.
func TestFixturesOracle(t *testing.T) {
	files := fixtureFiles(t)
	dst := startRedis(t)
	ctx := context.Background()
	compared := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var objs []model.RedisObject
		oerr := core.NewDecoder(bytes.NewReader(data)).Parse(func(o model.RedisObject) bool {
			objs = append(objs, o)
			return true
		})
		if oerr != nil {
			t.Logf("%s: oracle cannot decode it (%v); skipped", filepath.Base(f), oerr)
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			c0 := dst.client(0)
			mustDo(t, c0, "FLUSHALL")
			c0.Close()
			applyRewrite(t, data, dst, Options{}, RewriteOptions{})
			clients := map[int]*redis.Client{}
			defer func() {
				for _, c := range clients {
					c.Close()
				}
			}()
			for _, o := range objs {
				c := clients[o.GetDBIndex()]
				if c == nil {
					c = dst.client(o.GetDBIndex())
					clients[o.GetDBIndex()] = c
				}
				key := o.GetKey()
				if exp := o.GetExpiration(); exp != nil && !exp.After(time.Now()) {
					if n := c.Exists(ctx, key).Val(); n != 0 {
						t.Errorf("expired key %q was written", key)
					}
					continue
				}
				compared++
				want, got := oracleValue(t, o), targetValue(t, c, o.GetType(), key)
				if !reflect.DeepEqual(want, got) {
					t.Errorf("key %q (%s):\n got %v\nwant %v", key, o.GetType(), got, want)
				}
			}
		})
	}
	if compared < 50 {
		t.Errorf("only %d keys compared", compared)
	}
}

func oracleValue(t *testing.T, o model.RedisObject) any {
	switch v := o.(type) {
	case *model.StringObject:
		return string(v.Value)
	case *model.ListObject:
		out := []string{}
		for _, x := range v.Values {
			out = append(out, string(x))
		}
		return out
	case *model.SetObject:
		out := []string{}
		for _, x := range v.Members {
			out = append(out, string(x))
		}
		sort.Strings(out)
		return out
	case *model.HashObject:
		out := map[string]string{}
		for k, x := range v.Hash {
			out[k] = string(x)
		}
		return out
	case *model.ZSetObject:
		out := map[string]float64{}
		for _, e := range v.Entries {
			out[e.Member] = e.Score
		}
		return out
	case *model.StreamObject:
		out := []string{}
		for _, e := range v.Entries {
			for _, m := range e.Msgs {
				if !m.Deleted {
					out = append(out, fmt.Sprintf("%d-%d %v", m.Id.Ms, m.Id.Sequence, m.Fields))
				}
			}
		}
		out = append(out, fmt.Sprintf("last %d-%d", v.LastId.Ms, v.LastId.Sequence))
		for _, g := range v.Groups {
			out = append(out, fmt.Sprintf("group %s %d-%d", g.Name, g.LastId.Ms, g.LastId.Sequence))
			for _, p := range g.Pending {
				out = append(out, fmt.Sprintf("  pel %d-%d t=%d n=%d", p.Id.Ms, p.Id.Sequence, p.DeliveryTime, p.DeliveryCount))
			}
			for _, c := range g.Consumers {
				ids := ""
				for _, id := range c.Pending {
					ids += fmt.Sprintf(" %d-%d", id.Ms, id.Sequence)
				}
				out = append(out, "  consumer "+c.Name+ids)
			}
		}
		return out
	}
	t.Fatalf("oracle object %T", o)
	return nil
}

func targetValue(t *testing.T, c *redis.Client, typ, key string) any {
	ctx := context.Background()
	switch typ {
	case model.StringType:
		return c.Get(ctx, key).Val()
	case model.ListType:
		return c.LRange(ctx, key, 0, -1).Val()
	case model.SetType:
		m := c.SMembers(ctx, key).Val()
		sort.Strings(m)
		return m
	case model.HashType:
		return c.HGetAll(ctx, key).Val()
	case model.ZSetType:
		out := map[string]float64{}
		for _, z := range c.ZRangeWithScores(ctx, key, 0, -1).Val() {
			out[z.Member.(string)] = z.Score
		}
		return out
	case model.StreamType:
		out := []string{}
		for _, m := range c.XRange(ctx, key, "-", "+").Val() {
			fields := map[string]string{}
			for k, v := range m.Values {
				fields[k] = v.(string)
			}
			out = append(out, m.ID+" "+fmt.Sprint(fields))
		}
		full, err := c.XInfoStreamFull(ctx, key, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "last "+full.LastGeneratedID)
		for _, g := range full.Groups {
			out = append(out, "group "+g.Name+" "+g.LastDeliveredID)
			for _, p := range g.Pending {
				out = append(out, "  pel "+p.ID+" t="+strconv.FormatInt(p.DeliveryTime.UnixMilli(), 10)+" n="+strconv.FormatInt(p.DeliveryCount, 10))
			}
			for _, cn := range g.Consumers {
				ids := ""
				for _, p := range cn.Pending {
					ids += " " + p.ID
				}
				out = append(out, "  consumer "+cn.Name+ids)
			}
		}
		return out
	}
	t.Fatalf("type %s", typ)
	return nil
}

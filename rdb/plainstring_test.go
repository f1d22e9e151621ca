package rdb

import (
	"context"
	"testing"
)

// TestPlainString: every string of a real server's snapshot whose encoding
// a SET can carry (plain bytes, the integer encodings, empty, binary) comes
// out as the value GET returns; an LZF-compressed string, a spilled one and
// other types are left to RESTORE.
func TestPlainString(t *testing.T) {
	srv := startRedis(t, "--enable-debug-command", "local")
	fillServer(t, srv)
	data := srv.save(t)
	ctx := context.Background()
	c := srv.client(0)
	defer c.Close()

	mustPlain := map[string]bool{"s:small": true, "s:int8": true, "s:int16": true, "s:int32": true,
		"s:int64": true, "s:binary": true, "s:empty": true, "s:big": true, "123": true}
	for _, tc := range []struct {
		name  string
		opt   Options
		spill bool
	}{
		{"memory", Options{}, false},
		{"spilled", Options{MemLimit: 1000, SpillDir: t.TempDir()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			frameAll(t, data, tc.opt, func(rec *Record) {
				if rec.Kind != KindKey || rec.DB != 0 {
					return
				}
				v, ok := rec.PlainString(make([]byte, 0, 20))
				key := string(rec.Key)
				switch {
				case rec.Type != TypeString:
					if ok {
						t.Errorf("%s (%s): PlainString ok", key, TypeName(rec.Type))
					}
					return
				case key == "s:lzf":
					if ok {
						t.Errorf("s:lzf (LZF-compressed): PlainString ok")
					}
					return
				case rec.Value.Spilled():
					if ok {
						t.Errorf("%s (spilled): PlainString ok", key)
					}
					return
				case !ok:
					if mustPlain[key] {
						t.Errorf("%s: PlainString not ok", key)
					}
					return
				}
				seen[key] = true
				want, err := c.Get(ctx, key).Result()
				if err != nil {
					t.Fatal(err)
				}
				if string(v) != want {
					t.Errorf("%s: PlainString %q, GET %q", key, clip(v), clip([]byte(want)))
				}
			})
			for k := range mustPlain {
				if !seen[k] && !(tc.spill && k == "s:big") {
					t.Errorf("%s: not seen as a plain string", k)
				}
			}
		})
	}
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

package rdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	hbNow    = int64(1800000000000) // the Now of these tests
	hbFuture = int64(4102444800000) // 2100-01-01
)

func moduleID(name string, encver uint64) uint64 {
	var id uint64
	for _, c := range []byte(name) {
		id = id<<6 | uint64(strings.IndexByte(moduleNameCharset, c))
	}
	return id<<10 | encver
}

// moduleBody writes module opcodes of every kind, then EOF.
func moduleBody(e *rdbBuf) {
	e.len(modOpSInt).len(5)
	e.len(modOpUInt).len(1 << 40)
	e.len(modOpFloat).raw([]byte{0, 0, 0x80, 0x3f})
	e.len(modOpDouble).u64(math.Float64bits(2.5))
	e.len(modOpString).str("module string")
	e.len(modOpString).lzfStr([]byte(strings.Repeat("m", 100)))
	e.len(modOpEOF)
}

func buildV12(t testing.TB) []byte {
	e := newRDB(12)
	e.aux("redis-ver", "7.4.0").byte(opAux).str("redis-bits").intStr(64)
	e.byte(opAux).str("lzf-aux").lzfStr([]byte(strings.Repeat("q", 200)))
	e.byte(opModuleAux).len(moduleID("ferrytest", 3)).len(modOpUInt).len(2)
	moduleBody(e)
	e.byte(opFunction2).str(testLibCode)
	e.selectDB(3).byte(opResizeDB).len(10).len(2)
	e.byte(opSlotInfo).len(1234).len(5).len(1)

	// set listpack (RDB 11)
	e.key(TypeSetListpack, "set:lp").bstr(buildLP("a", 5, -70000, "hello", int64(1)<<40))

	// stream v3 (RDB 11): two nodes, deleted entry, negative seq delta, groups
	lp1 := buildLP(
		2, 1, 2, "f1", "f2", 0, // master: count, deleted, #fields, fields, 0
		2, 0, 0, "v1", "v2", 5, // 1000-0 same fields
		3, 1, 0, "x", "y", 5, // 1001-0 deleted, same fields
		0, 2, 5, 1, "other", "val", 6, // 1002-5 own fields
	)
	lp2 := buildLP(
		2, 0, 1, "k", 0,
		2, 0, 0, "v", 4, // 2000-3
		2, 1, -3, "w", 4, // 2001-0
	)
	e.key(TypeStreamListpacks3, "st3").len(2).
		bstr(streamNodeKey(1000, 0)).bstr(lp1).
		bstr(streamNodeKey(2000, 3)).bstr(lp2).
		len(4).len(2001).len(0). // length, last id
		len(1000).len(0).        // first id
		len(1001).len(0).        // max deleted id
		len(5).                  // entries added
		len(2).                  // groups
		str("grp").len(1002).len(5).len(3).
		len(2).
		raw(streamNodeKey(1000, 0)).u64(1700000000000).len(2).
		raw(streamNodeKey(1002, 5)).u64(1700000001000).len(1).
		len(2).
		str("c1").u64(1700000002000).u64(1700000001500).len(1).raw(streamNodeKey(1000, 0)).
		str("c2").u64(1700000002000).u64(1700000001500).len(1).raw(streamNodeKey(1002, 5)).
		str("g2").len(0).len(0).len(math.MaxUint64).len(0).len(0)

	// hash with field TTLs, dict form (RDB 12): min expire, then ttl/field/value
	e.key(TypeHashMetadata, "h:meta").u64(uint64(hbFuture)).len(4).
		len(0).str("a").str("1").
		len(1).str("b").intStr(2).
		len(501).str("c").str("3").
		len(0).lzfStr([]byte(strings.Repeat("F", 50))).str("long field")
	e.key(TypeHashMetadata, "h:meta-expired").u64(1000).len(2).
		len(1).str("gone").str("x").
		len(0).str("kept").str("y")
	e.key(TypeHashListpackEx, "h:lpex").u64(uint64(hbFuture)).
		bstr(buildLP("f1", "v1", 0, "f2", 22, hbFuture, "f3", "v3", 1000))
	e.key(TypeHashMetadataPreGA, "h:meta-pre").len(2).
		len(uint64(hbFuture + 123)).str("x").str("y").
		len(0).str("z").str("w")
	e.key(TypeHashListpackExPreGA, "h:lpex-pre").
		bstr(buildLP("p", "q", hbFuture+7))

	// module value
	e.key(TypeModule2, "mod:k").len(moduleID("ferrytest", 3))
	moduleBody(e)

	// prefixes: idle, freq, expire in seconds; integer-encoded key; LZF value
	e.byte(opIdle).len(100).byte(opFreq).byte(5).key(TypeString, "lru")
	e.str("x")
	e.byte(opExpireTime).raw(binary.LittleEndian.AppendUint32(nil, 2000000000)).key(TypeString, "sec-ttl").intStr(-300)
	e.byte(TypeString).intStr(4242).lzfStr([]byte(strings.Repeat("int key ", 20)))
	return e.finish()
}

func TestHandBuiltV12(t *testing.T) {
	data := buildV12(t)
	r := NewReader(bytes.NewReader(data), Options{})
	defer r.Close()
	var recs []*Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if r.Version() != 12 {
		t.Fatalf("version %d", r.Version())
	}
	byKey := map[string]*Record{}
	var kinds []Kind
	for _, rec := range recs {
		kinds = append(kinds, rec.Kind)
		if rec.Kind == KindKey {
			byKey[string(rec.Key)] = rec
		}
	}
	wantKinds := []Kind{KindAux, KindAux, KindAux, KindModuleAux, KindFunction, KindSelectDB, KindResizeDB, KindSlotInfo}
	if !reflect.DeepEqual(kinds[:len(wantKinds)], wantKinds) {
		t.Fatalf("kinds %v", kinds)
	}
	if string(recs[1].Aux[1]) != "64" || string(recs[2].Aux[1]) != strings.Repeat("q", 200) {
		t.Errorf("aux values %q %q", recs[1].Aux[1], recs[2].Aux[1])
	}
	if m := recs[3]; m.ModuleName() != "ferrytest" || m.ModuleID&1023 != 3 || m.Value.Len() == 0 {
		t.Errorf("module aux: %q %d", m.ModuleName(), m.Value.Len())
	}
	if string(recs[4].Code) != testLibCode {
		t.Errorf("function code %q", recs[4].Code)
	}
	if recs[5].DB != 3 || recs[6].DBSize != 10 || recs[6].ExpiresSize != 2 {
		t.Errorf("selectdb/resizedb: %+v %+v", recs[5], recs[6])
	}
	if s := recs[7]; s.Slot != 1234 || s.SlotSize != 5 || s.SlotExpiresSize != 1 {
		t.Errorf("slot info %+v", s)
	}
	if rec := byKey["lru"]; rec.Idle != 100 || rec.Freq != 5 || rec.ExpireMs != 0 || rec.DB != 3 {
		t.Errorf("lru: idle %d freq %d", rec.Idle, rec.Freq)
	}
	if rec := byKey["sec-ttl"]; rec.ExpireMs != 2000000000000 || rec.Idle != -1 || rec.Freq != -1 {
		t.Errorf("sec-ttl: expire %d", rec.ExpireMs)
	}
	if byKey["4242"] == nil {
		t.Errorf("integer-encoded key missing")
	}
	if rec := byKey["mod:k"]; rec.ModuleName() != "ferrytest" {
		t.Errorf("module key name %q", rec.ModuleName())
	}
	// record offsets point at the record start (incl. prefixes)
	for _, rec := range recs {
		if rec.Kind != KindKey {
			continue
		}
		b := data[rec.Offset]
		if b != rec.Type && b != opIdle && b != opExpireTime && b != opExpireTimeMs {
			t.Errorf("key %q: offset %d points at byte %d", rec.Key, rec.Offset, b)
		}
		if got := data[rec.ValueOffset : rec.ValueOffset+rec.Value.Len()]; !bytes.Equal(got, rec.Value.Bytes()) {
			t.Errorf("key %q: value bytes differ from the stream at ValueOffset", rec.Key)
		}
	}
	// RESTORE payloads need a new enough target
	if err := byKey["h:meta"].WriteRestorePayload(io.Discard, 11); err == nil {
		t.Errorf("type 24 payload for RDB 11 accepted")
	}
	if err := byKey["set:lp"].WriteRestorePayload(io.Discard, 11); err != nil {
		t.Errorf("type 20 payload for RDB 11: %v", err)
	}

	ropt := RewriteOptions{Now: func() time.Time { return time.UnixMilli(hbNow) }}
	rewrite := func(rec *Record) []string {
		var out []string
		if err := Rewrite(rec, ropt, func(args [][]byte) error {
			out = append(out, fmtArgsFull(args))
			return nil
		}); err != nil {
			t.Fatalf("Rewrite %q: %v", rec.Key, err)
		}
		return out
	}
	idle1 := itoa(hbNow - 1700000000000)
	idle2 := itoa(hbNow - 1700000001000)
	lf := strings.Repeat("F", 50)
	want := map[string][]string{
		"set:lp": {`"DEL" "set:lp"`, `"SADD" "set:lp" "a" "5" "-70000" "hello" "1099511627776"`},
		"st3": {
			`"DEL" "st3"`,
			`"XADD" "st3" "1000-0" "f1" "v1" "f2" "v2"`,
			`"XADD" "st3" "1002-5" "other" "val"`,
			`"XADD" "st3" "2000-3" "k" "v"`,
			`"XADD" "st3" "2001-0" "k" "w"`,
			`"XSETID" "st3" "2001-0" "ENTRIESADDED" "5" "MAXDELETEDID" "1001-0"`,
			`"XGROUP" "CREATE" "st3" "grp" "1002-5" "ENTRIESREAD" "3"`,
			`"XGROUP" "CREATECONSUMER" "st3" "grp" "c1"`,
			`"XCLAIM" "st3" "grp" "c1" "0" "1000-0" "IDLE" "` + idle1 + `" "TIME" "1700000000000" "RETRYCOUNT" "2" "FORCE" "JUSTID"`,
			`"XGROUP" "CREATECONSUMER" "st3" "grp" "c2"`,
			`"XCLAIM" "st3" "grp" "c2" "0" "1002-5" "IDLE" "` + idle2 + `" "TIME" "1700000001000" "RETRYCOUNT" "1" "FORCE" "JUSTID"`,
			`"XGROUP" "CREATE" "st3" "g2" "0-0" "ENTRIESREAD" "-1"`,
		},
		"h:meta": {
			`"DEL" "h:meta"`,
			`"HSET" "h:meta" "a" "1" "b" "2" "c" "3" "` + lf + `" "long field"`,
			`"HPEXPIREAT" "h:meta" "` + itoa(hbFuture) + `" "FIELDS" "1" "b"`,
			`"HPEXPIREAT" "h:meta" "` + itoa(hbFuture+500) + `" "FIELDS" "1" "c"`,
		},
		"h:meta-expired": {`"DEL" "h:meta-expired"`, `"HSET" "h:meta-expired" "kept" "y"`},
		"h:lpex": {
			`"DEL" "h:lpex"`,
			`"HSET" "h:lpex" "f1" "v1" "f2" "22"`,
			`"HPEXPIREAT" "h:lpex" "` + itoa(hbFuture) + `" "FIELDS" "1" "f2"`,
		},
		"h:meta-pre": {
			`"DEL" "h:meta-pre"`,
			`"HSET" "h:meta-pre" "x" "y" "z" "w"`,
			`"HPEXPIREAT" "h:meta-pre" "` + itoa(hbFuture+123) + `" "FIELDS" "1" "x"`,
		},
		"h:lpex-pre": {
			`"DEL" "h:lpex-pre"`,
			`"HSET" "h:lpex-pre" "p" "q"`,
			`"HPEXPIREAT" "h:lpex-pre" "` + itoa(hbFuture+7) + `" "FIELDS" "1" "p"`,
		},
		"lru":     {`"DEL" "lru"`, `"SET" "lru" "x"`},
		"sec-ttl": {`"DEL" "sec-ttl"`, `"SET" "sec-ttl" "-300"`, `"PEXPIREAT" "sec-ttl" "2000000000000"`},
		"4242":    {`"DEL" "4242"`, `"SET" "4242" "` + strings.Repeat("int key ", 20) + `"`},
	}
	for k, w := range want {
		rec := byKey[k]
		if rec == nil {
			t.Errorf("key %q not framed", k)
			continue
		}
		if got := rewrite(rec); !reflect.DeepEqual(got, w) {
			t.Errorf("rewrite %q:\n got %s\nwant %s", k, strings.Join(got, "\n     "), strings.Join(w, "\n     "))
		}
	}
	// the PEL join that re-reads the value gives the same commands
	func() {
		defer func(v uint64) { maxPELInMem = v }(maxPELInMem)
		maxPELInMem = 0
		if got := rewrite(byKey["st3"]); !reflect.DeepEqual(got, want["st3"]) {
			t.Errorf("st3 with the streamed PEL join:\n%s", strings.Join(got, "\n"))
		}
	}()
	// functions
	if got := rewrite(recs[4]); len(got) != 1 || !strings.HasPrefix(got[0], `"FUNCTION" "LOAD" "REPLACE" "#!lua`) {
		t.Errorf("function rewrite %q", got)
	}
	// modules cannot be rewritten
	for _, rec := range []*Record{byKey["mod:k"], recs[3]} {
		err := Rewrite(rec, ropt, func([][]byte) error { return nil })
		if !errors.Is(err, ErrModuleValue) || !strings.Contains(err.Error(), "ferrytest") {
			t.Errorf("module rewrite: %v", err)
		}
	}
	for _, rec := range recs {
		rec.Release()
	}
}

func fmtArgsFull(args [][]byte) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(string(a))
	}
	return strings.Join(q, " ")
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestHandBuiltStreamOnServer applies the rewrite of the hand-built v3 stream
// (minus what 7.0 lacks) to a real server.
func TestHandBuiltStreamOnServer(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(3)
	defer c.Close()
	ctx := context.Background()
	frameAll(t, buildV12(t), Options{}, func(rec *Record) {
		defer rec.Release()
		if rec.Kind != KindKey || (rec.Type != TypeStreamListpacks3 && rec.Type != TypeSetListpack) {
			return
		}
		err := Rewrite(rec, RewriteOptions{}, func(args [][]byte) error {
			return c.Do(ctx, argsToAny(args)...).Err()
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	st := streamState(t, c, "st3")
	if st.Length != 4 || st.LastID != "2001-0" || st.MaxDel != "1001-0" || st.EntriesAdded != 5 || len(st.Groups) != 2 {
		t.Errorf("stream state %+v", st)
	}
	g := st.Groups[1]
	if st.Groups[0].Name != "g2" || g.Name != "grp" || g.LastID != "1002-5" || g.EntriesRead != 3 ||
		!reflect.DeepEqual(g.Pending, []string{"1000-0/c1/1700000000000/2", "1002-5/c2/1700000001000/1"}) {
		t.Errorf("group %+v", g)
	}
	if n := c.SCard(ctx, "set:lp").Val(); n != 5 {
		t.Errorf("set:lp has %d members", n)
	}
}

func TestRejected(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"function pre-GA", "pre-release function", newRDB(10).byte(opFunctionPreGA).str("x").finish()},
		{"module pre-GA", "pre-release module", newRDB(8).key(TypeModulePreGA, "k").len(1).finish()},
		{"unknown opcode", "unknown record type or opcode 200", newRDB(10).byte(200).finish()},
		{"type 8", "unknown record type or opcode 8", newRDB(10).byte(8).finish()},
		{"version 13", "unsupported RDB version 13", newRDB(13).finish()},
		{"version 0", "unsupported RDB version 0", newRDB(0).finish()},
		{"bad magic", "bad magic", []byte("RADIS0010\xff")},
		{"bad version", "bad RDB version", []byte("REDIS00x0\xff")},
		{"empty", "empty input", nil},
		{"no EOF", "unexpected EOF", newRDB(10).key(TypeString, "k").str("v").b},
		{"bad container", "bad quicklist container 3", newRDB(10).key(TypeListQuicklist2, "k").len(1).len(3).str("x").finish()},
		{"module opcode", "unknown module opcode 9", newRDB(10).key(TypeModule2, "k").len(5).len(9).finish()},
		{"module aux when", "bad module aux 'when' opcode", newRDB(10).byte(opModuleAux).len(5).len(1).len(2).len(0).finish()},
		{"bad length", "unknown length encoding 0x82", newRDB(10).byte(opSelectDB).byte(0x82).finish()},
		{"string enc", "unknown string encoding 4", newRDB(10).key(TypeString, "k").byte(0xc4).finish()},
		{"lzf key", "invalid LZF data", newRDB(10).byte(TypeString).byte(0xc3).len(3).len(10).raw([]byte{0xff, 1, 2}).str("v").finish()},
		{"lzf key lengths", "bad LZF lengths", newRDB(10).byte(TypeString).byte(0xc3).len(2).len(1 << 20).raw([]byte{0, 1}).str("v").finish()},
		{"db range", "db number", newRDB(10).byte(opSelectDB).len(1 << 40).finish()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.data), Options{})
			var err error
			for err == nil {
				var rec *Record
				rec, err = r.Next()
				rec.Release()
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a FormatError with %q", err, tc.want)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("error not sticky: %v", err2)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	data := newRDB(10).selectDB(2).key(TypeHash, "user:42").len(3).str("f").str("v").str("g").finish()
	r := NewReader(bytes.NewReader(data), Options{})
	var err error
	for err == nil {
		_, err = r.Next()
	}
	// the value is cut by the EOF opcode and CRC: "g" then a field string
	// whose length byte is 0xff (EOF opcode) -> bad length
	var fe *FormatError
	if !errors.As(err, &fe) || fe.DB != 2 || string(fe.Key) != "user:42" {
		t.Fatalf("%v", err)
	}
	want := `rdb: offset ` + itoa(fe.Offset) + ` (db 2, key "user:42"): `
	if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "in hash value") {
		t.Errorf("message %q", err)
	}
	// truncated inside the value
	r = NewReader(bytes.NewReader(data[:len(data)-12]), Options{})
	for err = nil; err == nil; {
		_, err = r.Next()
	}
	if !errors.As(err, &fe) || !errors.Is(err, io.ErrUnexpectedEOF) ||
		err.Error() != `rdb: offset `+itoa(int64(len(data)-12))+` (db 2, key "user:42"): unexpected EOF in hash value` {
		t.Errorf("truncated: %v", err)
	}
}

// TestRewriteRejects: values that frame (framing does not look inside
// strings) but cannot be decoded give a FormatError from Rewrite.
func TestRewriteRejects(t *testing.T) {
	lpBad := buildLP("a", "b")
	lpBad[6] = 0xf9 // bad encoding byte
	zsetOdd := buildLP("member")
	for _, tc := range []struct {
		name, want string
		val        func(e *rdbBuf)
		typ        byte
	}{
		{"lzf", "invalid LZF data", func(e *rdbBuf) { e.byte(0xc3).len(3).len(10).raw([]byte{0xff, 1, 2}) }, TypeString},
		{"lzf lengths", "bad LZF lengths", func(e *rdbBuf) { e.byte(0xc3).len(2).len(1 << 20).raw([]byte{0, 1}) }, TypeString},
		{"listpack encoding", "bad listpack encoding byte 0xf9", func(e *rdbBuf) { e.bstr(lpBad) }, TypeHashListpack},
		{"listpack size", "listpack header says", func(e *rdbBuf) { e.bstr(append(buildLP("a"), 0)) }, TypeSetListpack},
		{"zset odd", "member without score", func(e *rdbBuf) { e.bstr(zsetOdd) }, TypeZSetListpack},
		{"hash odd", "odd number of elements", func(e *rdbBuf) { e.bstr(buildLP("f", "v", "g")) }, TypeHashListpack},
		{"intset", "intset of", func(e *rdbBuf) { e.bstr([]byte{2, 0, 0, 0, 9, 0, 0, 0, 1, 0}) }, TypeSetIntset},
		{"ziplist", "ziplist header says", func(e *rdbBuf) { e.bstr([]byte{20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255}) }, TypeListZiplist},
		{"nan", "NaN score", func(e *rdbBuf) { e.len(1).str("m").u64(math.Float64bits(math.NaN())) }, TypeZSet2},
		{"stream node key", "stream node key of 3 bytes", func(e *rdbBuf) {
			e.len(1).str("abc").bstr(buildLP(1)).len(0).len(0).len(0).len(0).len(0).len(0).len(0).len(0).len(0)
		}, TypeStreamListpacks2},
		{"stream consumer pel", "not in the group PEL", func(e *rdbBuf) {
			e.len(0).len(0).len(5).len(0).len(0).len(0).len(0).len(0).len(0).
				len(1).str("g").len(0).len(0).len(0).len(0). // group, no PEL
				len(1).str("c").u64(0).len(1).raw(streamNodeKey(1, 1))
		}, TypeStreamListpacks2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRDB(11).key(tc.typ, "k")
			tc.val(e)
			frameAll(t, e.finish(), Options{}, func(rec *Record) {
				defer rec.Release()
				err := Rewrite(rec, RewriteOptions{}, func([][]byte) error { return nil })
				var fe *FormatError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) || string(fe.Key) != "k" {
					t.Fatalf("got %v, want a FormatError with %q", err, tc.want)
				}
				if fe.Offset < rec.ValueOffset || fe.Offset > rec.ValueOffset+rec.Value.Len() {
					t.Errorf("offset %d outside the value [%d,%d]", fe.Offset, rec.ValueOffset, rec.ValueOffset+rec.Value.Len())
				}
			})
		})
	}
}

// TestWriteModuleFixture writes cmd/ferry/testdata/module-value.rdb (RDB 10:
// string a=1, a value of module type "ferrytest", string b=2), the input of
// ferry's test of a target without modules. Run with FERRY_WRITE_FIXTURES=1
// to write it again.
func TestWriteModuleFixture(t *testing.T) {
	e := newRDB(10)
	e.aux("redis-ver", "7.0.15")
	e.selectDB(0)
	e.key(TypeString, "a").str("1")
	e.key(TypeModule2, "mod:k").len(moduleID("ferrytest", 3))
	moduleBody(e)
	e.key(TypeString, "b").str("2")
	data := e.finish()
	const path = "../cmd/ferry/testdata/module-value.rdb"
	if os.Getenv("FERRY_WRITE_FIXTURES") == "1" {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Errorf("%s is not what this test builds (FERRY_WRITE_FIXTURES=1 writes it): %v", path, err)
	}
}

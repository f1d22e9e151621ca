package verify

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// summaryDiffs is how many differences WriteSummary lists.
const summaryDiffs = 20

// WriteSummary writes a human summary: keys compared per db, differences
// by kind, the first differences, and the verdict on the last line.
func (r Result) WriteSummary(w io.Writer) error {
	var b strings.Builder
	rounds := "1 round"
	if r.Rounds > 1 {
		rounds = strconv.Itoa(r.Rounds) + " rounds"
	}
	fmt.Fprintf(&b, "verify (%s): %d source keys compared, %d target keys checked for extras, %s, %.1f s\n",
		r.Mode, r.Compared, r.TargetKeys, rounds, r.Elapsed.Seconds())
	for _, db := range r.PerDB {
		verdict := "equal"
		if n := sum(db.Diffs); n > 0 {
			verdict = fmt.Sprintf("%s (%s)", plural(n, "difference"), byKind(db.Diffs))
		}
		fmt.Fprintf(&b, "  db%d → target db%d: %d keys compared, %d target keys checked: %s\n",
			db.DB, db.TargetDB, db.Compared, db.TargetKeys, verdict)
	}
	if r.Healed > 0 {
		fmt.Fprintf(&b, "%s went away during the re-check rounds (writes still arriving)\n", plural(int64(r.Healed), "difference"))
	}
	if !r.Equal() {
		fmt.Fprintf(&b, "differences: %d (%s)\n", r.Total(), byKind(r.Counts))
		for i, d := range r.Diffs {
			if i == summaryDiffs {
				fmt.Fprintf(&b, "  … and %d more (see --report)\n", len(r.Diffs)-summaryDiffs)
				break
			}
			fmt.Fprintf(&b, "  %s\n", d)
		}
		if r.Unlisted > 0 {
			fmt.Fprintf(&b, "  (%d more differences were counted but not listed or re-checked: raise --max-diffs)\n", r.Unlisted)
		}
		b.WriteString("source and target differ\n")
	} else {
		b.WriteString("source and target are equal\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String is one readable line: db0 "key": missing: not on target (source has a hash).
func (d Diff) String() string {
	db := "db" + strconv.Itoa(d.DB)
	if d.TargetDB != d.DB {
		db += "→db" + strconv.Itoa(d.TargetDB)
	}
	return fmt.Sprintf("%s %s: %s: %s", db, quote(d.Key), d.Kind, d.Detail)
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

func sum(m map[Kind]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// byKind renders counts as "missing 2, value 1" in Kinds order.
func byKind(m map[Kind]int64) string {
	var parts []string
	for _, k := range Kinds {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// jsonReport is the --report file.
type jsonReport struct {
	Equal      bool           `json:"equal"`
	Mode       Mode           `json:"mode"`
	Rounds     int            `json:"rounds"`
	Compared   int64          `json:"compared"`
	TargetKeys int64          `json:"target_keys"`
	Counts     map[Kind]int64 `json:"counts"`
	Healed     int            `json:"healed"`
	Unlisted   int64          `json:"unlisted"`
	ElapsedSec float64        `json:"elapsed_seconds"`
	PerDB      []jsonDB       `json:"per_db"`
	Diffs      []jsonDiff     `json:"diffs"`
}

type jsonDB struct {
	DB         int            `json:"db"`
	TargetDB   int            `json:"target_db"`
	Compared   int64          `json:"compared"`
	TargetKeys int64          `json:"target_keys"`
	Diffs      map[Kind]int64 `json:"differences"`
}

type jsonDiff struct {
	DB       int    `json:"db"`
	TargetDB int    `json:"target_db"`
	Key      string `json:"key"`
	// KeyBase64 is the key's exact bytes when it is not valid UTF-8 (Key
	// then has U+FFFD in place of the invalid bytes).
	KeyBase64 string `json:"key_base64,omitempty"`
	Kind      Kind   `json:"kind"`
	Detail    string `json:"detail"`
}

// WriteJSON writes the report: totals, per-db counts and every listed
// difference as {db, target_db, key, kind, detail}.
func (r Result) WriteJSON(w io.Writer) error {
	rep := jsonReport{
		Equal: r.Equal(), Mode: r.Mode, Rounds: r.Rounds, Compared: r.Compared, TargetKeys: r.TargetKeys,
		Counts: map[Kind]int64{}, Healed: r.Healed, Unlisted: r.Unlisted, ElapsedSec: r.Elapsed.Seconds(),
		PerDB: []jsonDB{}, Diffs: []jsonDiff{},
	}
	for _, k := range Kinds {
		rep.Counts[k] = r.Counts[k]
	}
	for _, db := range r.PerDB {
		d := jsonDB{DB: db.DB, TargetDB: db.TargetDB, Compared: db.Compared, TargetKeys: db.TargetKeys, Diffs: map[Kind]int64{}}
		for k, n := range db.Diffs {
			if n > 0 {
				d.Diffs[k] = n
			}
		}
		rep.PerDB = append(rep.PerDB, d)
	}
	for _, d := range r.Diffs {
		jd := jsonDiff{DB: d.DB, TargetDB: d.TargetDB, Key: d.Key, Kind: d.Kind, Detail: d.Detail}
		if !utf8.ValidString(d.Key) {
			jd.KeyBase64 = base64.StdEncoding.EncodeToString([]byte(d.Key))
		}
		rep.Diffs = append(rep.Diffs, jd)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

// The decoder: a file's generic TOML map into typed values, every error
// naming its field path, an unknown key with the nearest known one.

package conf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// decoder turns the generic map of a file into typed values, collecting
// errors. Unknown keys are reported before other errors (a typo explains
// the rest).
type decoder struct {
	file     string
	unknown  []error
	errs     []error
	warnings []string // deprecated spellings: read, and said
}

func (d *decoder) result() error {
	if len(d.unknown) > 0 {
		return d.unknown[0]
	}
	if len(d.errs) > 0 {
		return d.errs[0]
	}
	return nil
}

// The kinds of table a key can be unknown in (each has its own key list).
const (
	kindJob = iota
	kindEndpoint
	kindTLS
	kindFilter
	kindBatch
)

type table struct {
	d      *decoder
	path   string // key path of the table, for messages: "", "source", "job[orders].source"
	header string // TOML header: "", "source", "job.source", "defaults.source"
	kind   int
	m      map[string]any
	known  []string
	hints  map[string]string // key -> why it is not allowed here
}

func (d *decoder) table(m map[string]any, path, header string, kind int) *table {
	return &table{d: d, path: path, header: header, kind: kind, m: m, hints: map[string]string{}}
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func (t *table) field(k string) string { return join(t.path, k) }

func (t *table) fail(k, format string, args ...any) {
	t.d.errs = append(t.d.errs, errf(t.field(k), format, args...))
}

func (t *table) get(k string) (any, bool) {
	t.known = append(t.known, k)
	v, ok := t.m[k]
	return v, ok
}

func (t *table) child(k string, m map[string]any, kind int) *table {
	return t.d.table(m, t.field(k), join(t.header, k), kind)
}

// sub returns the table under k, or nil when absent or not a table.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.fail(k, "must be a table, not %s", typeName(v))
		return nil
	}
	return t.child(k, m, kindJob)
}

// TOMLType names the TOML type of a decoded value for a message: "a
// string", "an integer", "a table"…
func TOMLType(v any) string { return typeName(v) }

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("a %T", v)
}

// expanded returns the string v with ${ENV} expanded, or false after
// recording an error.
func (t *table) expanded(k string, v any, what string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		hint := ""
		if what == "a string" {
			hint = " (quote it)"
		}
		t.fail(k, "must be %s, not %s%s", what, typeName(v), hint)
		return "", false
	}
	s, err := Expand(s)
	if err != nil {
		t.fail(k, "%v", err)
		return "", false
	}
	return s, true
}

func (t *table) str(k string, dst *string) { enum(t, k, dst) }

// enum reads a string key into a string type (an enumerated setting;
// Validate checks its value).
func enum[T ~string](t *table, k string, dst *T) {
	if v, ok := t.get(k); ok {
		if s, ok := t.expanded(k, v, "a string"); ok {
			*dst = T(s)
		}
	}
}

func (t *table) boolean(k string, dst *bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	if b, ok := v.(bool); ok {
		*dst = b
		return
	}
	s, ok := t.expanded(k, v, "true or false")
	if !ok {
		return
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		t.fail(k, "must be true or false, not %q", s)
		return
	}
	*dst = b
}

func (t *table) integer(k string, dst *int) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	if n, ok := v.(int64); ok {
		if n > math.MaxInt32 || n < math.MinInt32 {
			t.fail(k, "%d is too large", n)
			return
		}
		*dst = int(n)
		return
	}
	s, ok := t.expanded(k, v, "a whole number")
	if !ok {
		return
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil {
		t.fail(k, "must be a whole number, not %q", s)
		return
	}
	*dst = int(n)
}

func (t *table) size(k string, dst *int64) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	if n, ok := v.(int64); ok {
		if n < 0 {
			t.fail(k, "must not be negative")
			return
		}
		*dst = n
		return
	}
	s, ok := t.expanded(k, v, `a size (a number of bytes or a string like "64MiB")`)
	if !ok {
		return
	}
	n, err := ParseSize(s)
	if err != nil {
		t.fail(k, "%v", err)
		return
	}
	*dst = n
}

func (t *table) duration(k string, dst *time.Duration) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	var d time.Duration
	var err error
	switch x := v.(type) {
	case int64:
		d, err = secondsToDuration(float64(x), strconv.FormatInt(x, 10))
	case float64:
		d, err = secondsToDuration(x, strconv.FormatFloat(x, 'g', -1, 64))
	default:
		s, ok := t.expanded(k, v, `a duration (a string like "30s" or a number of seconds)`)
		if !ok {
			return
		}
		d, err = ParseDuration(s)
	}
	if err != nil {
		t.fail(k, "%v", err)
		return
	}
	*dst = d
}

func (t *table) array(k string) ([]any, bool) {
	v, ok := t.get(k)
	if !ok {
		return nil, false
	}
	a, ok := v.([]any)
	if !ok {
		t.fail(k, "must be an array, not %s", typeName(v))
		return nil, false
	}
	return a, true
}

func (t *table) strs(k string, dst *[]string) {
	a, ok := t.array(k)
	if !ok {
		return
	}
	var out []string // nil when empty
	for i, v := range a {
		s, ok := t.expanded(fmt.Sprintf("%s[%d]", k, i), v, "a string")
		if !ok {
			return
		}
		out = append(out, s)
	}
	*dst = out
}

func (t *table) ints(k string, dst *[]int) {
	a, ok := t.array(k)
	if !ok {
		return
	}
	var out []int // nil when empty
	for i, v := range a {
		n, ok := t.intValue(fmt.Sprintf("%s[%d]", k, i), v)
		if !ok {
			return
		}
		out = append(out, n)
	}
	*dst = out
}

func (t *table) intValue(k string, v any) (int, bool) {
	if n, ok := v.(int64); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
		return int(n), true
	}
	s, ok := t.expanded(k, v, "a whole number")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil {
		t.fail(k, "must be a whole number, not %q", s)
		return 0, false
	}
	return int(n), true
}

func (t *table) dbMap(k string, dst *map[int]int) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.fail(k, `must be a table of source db = target db, like { "1" = 0 }, not %s`, typeName(v))
		return
	}
	out := make(map[int]int, len(m))
	for _, key := range keysOf(m) {
		src, err := strconv.Atoi(strings.TrimSpace(key))
		if err != nil || src < 0 || strings.TrimLeft(strings.TrimSpace(key), "0123456789") != "" {
			t.fail(k, "key %q is not a database number (0 or more)", key)
			return
		}
		dst, ok := t.intValue(fmt.Sprintf("%s.%s", k, key), m[key])
		if !ok {
			return
		}
		if _, dup := out[src]; dup {
			t.fail(k, "source db %d is mapped twice", src)
			return
		}
		out[src] = dst
	}
	if len(out) == 0 {
		out = nil
	}
	*dst = out
}

// finish reports the keys of the table that nothing asked for.
func (t *table) finish() {
	known := map[string]bool{}
	for _, k := range t.known {
		known[k] = true
	}
	for _, k := range keysOf(t.m) {
		if known[k] {
			continue
		}
		msg := fmt.Sprintf("unknown key %q", t.field(k))
		if h, ok := t.hints[k]; ok {
			msg += " (" + h + ")"
		} else if s := suggest(k, t.known); s != "" {
			msg += " (did you mean " + t.field(s) + "?)"
		} else if t.kind == kindEndpoint || t.kind == kindTLS || t.kind == kindFilter {
			if s := suggest(k, jobKeys()); s != "" {
				msg += fmt.Sprintf(" (%s is a job setting, not part of [%s]: put it above the first [table] header)", s, t.header)
			}
		}
		t.d.unknown = append(t.d.unknown, &Error{Field: t.d.file, Msg: msg})
	}
}

// suggest returns the candidate closest to k, if close enough to be a typo.
func suggest(k string, candidates []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		d := levenshtein(norm(k), norm(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && (bestD <= 2 || bestD*4 <= len(k)) && bestD < len(k) {
		return best
	}
	return ""
}

// EditDistance is the Levenshtein distance of a and b (insertions,
// deletions, substitutions): what key suggestions are ranked by.
func EditDistance(a, b string) int { return levenshtein(a, b) }

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Reading go-redis replies, and writing values into readable details.

package verify

import (
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

func text(c *redis.Cmd) string {
	if c == nil {
		return ""
	}
	return str(c.Val())
}

func intOf(c *redis.Cmd) int64 { return num(c.Val()) }

func list(c *redis.Cmd) []any { return list1(c.Val()) }

func list1(v any) []any {
	a, _ := v.([]any)
	return a
}

func str(x any) string {
	switch v := x.(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case []byte:
		return string(v)
	}
	return fmt.Sprint(x)
}

func num(x any) int64 {
	switch v := x.(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// kv turns a flat [k1 v1 k2 v2 ...] array (or a map) into a map.
func kv(x any) map[string]any {
	m := map[string]any{}
	switch a := x.(type) {
	case []any:
		for i := 0; i+1 < len(a); i += 2 {
			m[str(a[i])] = a[i+1]
		}
	case map[any]any:
		for k, v := range a {
			m[str(k)] = v
		}
	}
	return m
}

// scanReply splits a SCAN-family reply into the cursor and the items.
func scanReply(v any) (string, []any) {
	a := list1(v)
	if len(a) != 2 {
		return "0", nil
	}
	return str(a[0]), list1(a[1])
}

const shortLen = 64

// quote quotes s, eliding the middle of long values.
func quote(s string) string {
	if len(s) <= shortLen {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:40]) + fmt.Sprintf("…(%d bytes)…", len(s)) + strconv.Quote(s[len(s)-12:])
}

// shorten cuts an already readable text.
func shorten(s string) string {
	if len(s) <= 2*shortLen {
		return s
	}
	return s[:2*shortLen] + fmt.Sprintf("…(%d bytes)", len(s))
}

func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// excerpt quotes a few bytes of s around i.
func excerpt(s string, i int) string {
	from, to := max(0, i-16), min(len(s), i+32)
	q := strconv.Quote(s[from:to])
	if from > 0 {
		q = "…" + q
	}
	if to < len(s) {
		q += "…"
	}
	return q
}

// fmtMS formats milliseconds: "250ms", "1.5s", "3600s".
func fmtMS(ms int64) string {
	switch a := max(ms, -ms); {
	case a < 1000:
		return strconv.FormatInt(ms, 10) + "ms"
	case a < 10_000:
		return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + "s"
	}
	return strconv.FormatInt((ms+500)/1000, 10) + "s"
}

package shake

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/ferry-dev/ferry/conf"
)

// MaxFileSize is the largest RedisShake file Translate accepts.
const MaxFileSize = 1 << 20

// Error is a RedisShake file that cannot be translated: not TOML, not a
// RedisShake v4 config, or a value of the wrong type. Its text is one line
// and never holds a password.
type Error struct {
	File string
	Msg  string
	Err  error // underlying error, if any
}

func (e *Error) Error() string {
	if e.File == "" {
		return e.Msg
	}
	return e.File + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// parse decodes the TOML text into a generic map.
func parse(data []byte, name string) (map[string]any, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes: not a RedisShake config", MaxFileSize)}
	}
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		var pe toml.ParseError
		if !errors.As(err, &pe) {
			return nil, &Error{File: name, Msg: "not a RedisShake v4 config: " + oneLine(err.Error()), Err: err}
		}
		msg := oneLine(pe.Message)
		if strings.Contains(strings.ToLower(pe.LastKey), "password") {
			msg = "invalid value (not shown: it may be a password)"
		}
		hint := ""
		if strings.Contains(string(data), "$") {
			hint = "; a $VAR outside a quoted string is not TOML: quote it or write the value"
		}
		return nil, &Error{File: fmt.Sprintf("%s:%d:%d", name, pe.Position.Line, pe.Position.Col),
			Msg: "not TOML (RedisShake v4 configs are): " + msg + hint}
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// section is one [table] of the RedisShake file, read key by key; keys
// nothing asked for are reported by done.
type section struct {
	t     *translator
	name  string
	m     map[string]any
	asked map[string]bool
}

func (t *translator) section(name string) *section {
	s := &section{t: t, name: name, asked: map[string]bool{}}
	if v, ok := t.raw[name]; ok {
		m, isMap := v.(map[string]any)
		if !isMap {
			t.fail(name, "must be a table ([%s]), not %s", name, typeName(v))
		}
		s.m = m
	}
	return s
}

// present reports whether the file has this section.
func (s *section) present() bool { return s.m != nil }

func (s *section) key(k string) string {
	if s.name == "" {
		return k
	}
	return s.name + "." + k
}

func (s *section) get(k string) (any, bool) {
	s.asked[k] = true
	v, ok := s.m[k]
	return v, ok
}

// has reports whether k is written in the section.
func (s *section) has(k string) bool {
	_, ok := s.m[k]
	return ok
}

func (s *section) str(k string) string {
	v, ok := s.get(k)
	if !ok {
		return ""
	}
	str, ok := v.(string)
	if !ok {
		s.t.fail(s.key(k), "must be a string, not %s", typeName(v))
		return ""
	}
	return str
}

// boolean reads a bool; like RedisShake (viper), "true" and "false"
// strings are accepted.
func (s *section) boolean(k string, def bool) bool {
	v, ok := s.get(k)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case bool:
		return x
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b
		}
	}
	s.t.fail(s.key(k), "must be true or false, not %s", describe(v))
	return def
}

// integer reads a whole number (or a string holding one).
func (s *section) integer(k string, def int64) int64 {
	v, ok := s.get(k)
	if !ok {
		return def
	}
	n, ok := intOf(v)
	if !ok {
		s.t.fail(s.key(k), "must be a whole number, not %s", describe(v))
		return def
	}
	return n
}

func intOf(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
}

func (s *section) strs(k string) []string {
	v, ok := s.get(k)
	if !ok {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		s.t.fail(s.key(k), "must be an array of strings, not %s", typeName(v))
		return nil
	}
	out := make([]string, 0, len(a))
	for i, e := range a {
		str, ok := e.(string)
		if !ok {
			s.t.fail(fmt.Sprintf("%s[%d]", s.key(k), i), "must be a string, not %s", typeName(e))
			return nil
		}
		out = append(out, str)
	}
	return out
}

func (s *section) ints(k string) []int {
	v, ok := s.get(k)
	if !ok {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		s.t.fail(s.key(k), "must be an array of numbers, not %s", typeName(v))
		return nil
	}
	out := make([]int, 0, len(a))
	for i, e := range a {
		n, ok := intOf(e)
		if !ok || n < 0 || n > math.MaxInt32 {
			s.t.fail(fmt.Sprintf("%s[%d]", s.key(k), i), "must be a database number (0 or more), not %s", describe(e))
			return nil
		}
		out = append(out, int(n))
	}
	return out
}

// done notes the keys of the section that nothing asked for: RedisShake
// ignores unknown keys, and so does the translation, but says so.
func (s *section) done() {
	known := make([]string, 0, len(s.asked))
	for k := range s.asked {
		known = append(known, k)
	}
	sort.Strings(known)
	for _, k := range keysOf(s.m) {
		if s.asked[k] {
			continue
		}
		msg := "not a RedisShake v4 key: ignored"
		if c := suggest(k, known); c != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", c)
		}
		s.t.note(s.key(k), "%s", msg)
	}
}

func keysOf(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// typeName names a value's TOML type, as conf's messages do.
var typeName = conf.TOMLType

// describe names a refused value: the value itself for numbers and
// booleans and short strings without a secret's look, else its type.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) <= 20 && !strings.ContainsAny(x, " \t\n") {
			return strconv.Quote(x)
		}
	case int64, float64, bool:
		return fmt.Sprint(x)
	}
	return typeName(v)
}

// suggest returns the candidate closest to k, if close enough to be a typo.
func suggest(k string, candidates []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if d := distance(strings.ToLower(k), c); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= 2 && bestD < len(k) {
		return best
	}
	return ""
}

// distance is the edit distance of a and b, as conf ranks suggestions.
var distance = conf.EditDistance

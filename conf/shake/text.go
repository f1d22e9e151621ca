package shake

import (
	"regexp"
	"strings"

	"github.com/ferry-dev/ferry/conf"
)

// part is a piece of a RedisShake string: literal text, or an environment
// reference already in ferry's syntax ("${NAME}", "${NAME:-x}").
type part struct {
	text string
	ref  bool
}

// parts splits a RedisShake string at its environment references.
// RedisShake runs envsubst over the whole file: $NAME and ${...} are
// references, $$ is a literal $. $NAME becomes ${NAME}; ${...} is kept as
// written (ferry reads ${NAME} and ${NAME:-default}).
func parts(s string) []part {
	var out []part
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, part{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			lit.WriteByte(c)
			continue
		}
		switch n := s[i+1]; {
		case n == '$':
			lit.WriteByte('$')
			i++
		case n == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				lit.WriteByte(c)
				continue
			}
			flush()
			out = append(out, part{text: s[i : i+end+1], ref: true})
			i += end
		case isNameStart(n):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			flush()
			out = append(out, part{text: "${" + s[i+1:j] + "}", ref: true})
			i = j - 1
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return out
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

// hasRef reports whether s holds an environment reference.
func hasRef(s string) bool {
	for _, p := range parts(s) {
		if p.ref {
			return true
		}
	}
	return false
}

// ferryString is s with its references in ferry's syntax and its literal
// $ kept literal: the value ferry reads back is what RedisShake used.
func ferryString(s string) string { return join(parts(s)) }

// quoteRegex is a regular expression matching the string s literally,
// with before and after around it; references stay references.
func quoteRegex(before, s, after string) string {
	ps := []part{{text: before}}
	for _, p := range parts(s) {
		if !p.ref {
			p.text = regexp.QuoteMeta(p.text)
		}
		ps = append(ps, p)
	}
	return join(append(ps, part{text: after}))
}

// join writes parts as one ferry string: references as they are, and in
// the literal text a $ doubled where ferry would otherwise read it as the
// start of a reference or of "$$" (before "{" or "$", also the first
// character of the next part).
func join(ps []part) string {
	var all strings.Builder
	for _, p := range ps {
		all.WriteString(p.text)
	}
	full := all.String()
	var b strings.Builder
	pos := 0
	for _, p := range ps {
		for i := 0; i < len(p.text); i++ {
			c := p.text[i]
			b.WriteByte(c)
			if !p.ref && c == '$' && pos+i+1 < len(full) && (full[pos+i+1] == '{' || full[pos+i+1] == '$') {
				b.WriteByte('$')
			}
		}
		pos += len(p.text)
	}
	return b.String()
}

// The job file is written the way conf writes one.
var (
	quote     = conf.TOMLString
	quoteList = conf.TOMLStrings
	intList   = conf.TOMLInts
)

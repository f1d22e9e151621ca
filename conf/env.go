package conf

import (
	"fmt"
	"os"
	"strings"
)

// Expand replaces ${VAR} with the value of the environment variable VAR and
// ${VAR:-default} with its value, or default when VAR is unset or empty (the
// default may itself hold ${...}). $$ is a literal $; a $ followed by
// anything else is kept as it is. An unset variable without a default is an
// error naming it. Error messages never quote s itself (it may be a secret).
func Expand(s string) (string, error) {
	return expand(s, os.LookupEnv)
}

func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
		case '{':
			end := matchBrace(s, i+2)
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ (write $$ for a literal $)")
			}
			v, err := expandRef(s[i+2:end], lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = end + 1
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), nil
}

// matchBrace returns the index of the } closing a ${ whose body starts at
// from, counting nested ${...}; -1 if there is none.
func matchBrace(s string, from int) int {
	depth := 0
	for i := from; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '$':
			i++
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
			i++
		case s[i] == '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

func expandRef(body string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDef := body, "", false
	if k := strings.Index(body, ":-"); k >= 0 {
		name, def, hasDef = body[:k], body[k+2:], true
	}
	if !validEnvName(name) {
		if validEnvName(strings.TrimSpace(name)) {
			return "", fmt.Errorf("bad variable reference ${...}: no spaces allowed around the name")
		}
		return "", fmt.Errorf("bad variable reference ${...}: want ${NAME} or ${NAME:-default}, NAME of letters, digits and _")
	}
	if v, ok := lookup(name); ok && (v != "" || !hasDef) {
		return v, nil
	}
	if hasDef {
		return expand(def, lookup)
	}
	return "", fmt.Errorf("environment variable %q is not set (use ${%s:-default} for a default)", name, name)
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

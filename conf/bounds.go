package conf

import (
	"fmt"
	"io"
	"os"
)

// Bounds of a config file, checked before the TOML decoder sees it: the
// decoder's time and memory grow fast with nesting (a 36 KB file of nested
// inline tables costs it seconds and hundreds of MB), and no ferry setting
// needs either much text or deep nesting.
const (
	// MaxFileSize is the largest config file ferry reads.
	MaxFileSize = 1 << 20
	// MaxNesting is the deepest nesting of [ ] and { } allowed; the deepest
	// ferry's settings need is 4 (job = [{ source = { tls = { … } } }]).
	MaxNesting = 8
)

// readConfig reads a config file, refusing one larger than MaxFileSize
// without reading past that.
func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Msg: err.Error(), Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{Field: path, Msg: err.Error(), Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, errf(path, "larger than %s: not a ferry config file", FormatSize(MaxFileSize))
	}
	return data, nil
}

// checkBounds refuses TOML text larger than MaxFileSize or nested deeper
// than MaxNesting. The nesting is counted over brackets and braces outside
// strings and comments, in one pass: cheap, and exact for valid TOML (a
// bracket of a table header counts too, and never goes past 2).
func checkBounds(data []byte, name string) error {
	if len(data) > MaxFileSize {
		return errf(name, "larger than %s: not a ferry config file", FormatSize(MaxFileSize))
	}
	depth, line, col := 0, 1, 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		col++
		switch c {
		case '\n':
			line, col = line+1, 0
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			// Skip the string: "…" with escapes, '…' literal, or their
			// multi-line forms """…""" and '''…'''.
			q := c
			multi := i+2 < len(data) && data[i+1] == q && data[i+2] == q
			if multi {
				i += 2
			}
			for i+1 < len(data) {
				i++
				d := data[i]
				if d == '\n' {
					line, col = line+1, 0
					if !multi {
						break // unterminated: the decoder reports it
					}
				}
				if q == '"' && d == '\\' {
					i++
					continue
				}
				if d == q {
					if !multi {
						break
					}
					if i+2 < len(data) && data[i+1] == q && data[i+2] == q {
						i += 2
						break
					}
				}
			}
		case '[', '{':
			depth++
			if depth > MaxNesting {
				return errf(fmt.Sprintf("%s:%d:%d", name, line, col), "nested deeper than %d levels of [ ] and { }: no ferry setting nests that deep", MaxNesting)
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return nil
}

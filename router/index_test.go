package router

import (
	"bytes"
	"testing"
)

// TestIndexFind: every name of the built-in table is found in any case, and
// a name that differs from one in a byte, by a trailing NUL or by its
// length finds nothing or the command of exactly that name.
func TestIndexFind(t *testing.T) {
	ix := Builtin().idx
	n := 0
	for i, name := range ix.names {
		if name == "" {
			continue
		}
		n++
		want := ix.specs[i]
		if got := ix.find(bytes.ToLower([]byte(name))); got != want {
			t.Errorf("%s: found %p, want %p", name, got, want)
		}
		for _, other := range [][]byte{
			append([]byte(name), 0),
			[]byte(name[:len(name)-1]),
			append([]byte(name[:len(name)-1]), '#'),
			append([]byte("#"), name[1:]...),
			append([]byte(name), name...),
		} {
			got := ix.find(other)
			if got == nil {
				continue
			}
			k := -1
			for j := range ix.specs {
				if ix.specs[j] == got && ix.names[j] != "" {
					k = j
				}
			}
			if k < 0 || ix.names[k] != string(bytes.ToUpper(other)) {
				t.Errorf("%q found the command of %q", other, ix.names[k])
			}
		}
	}
	if n < 100 {
		t.Fatalf("%d names in the built-in table", n)
	}
}

// Package aof reads Redis append-only files as Redis itself loads them: a
// Redis 7 multi-part AOF directory (appendonlydir: a manifest naming a base
// file, in RDB or AOF format, and incremental AOF files applied in order;
// history files are ignored) or one legacy appendonly.aof, with or without
// an RDB preamble.
//
// A Reader yields the base RDB (if the first file starts with one) as a
// byte stream for an RDB framer, then the commands of every file in order.
// Files are streamed: memory is bounded by one command (and its arguments
// are bounded by Options.MaxArg).
//
// Damage is handled like redis-server with aof-load-truncated yes: a last
// file that ends inside a command (or inside a MULTI without its EXEC) is
// loaded up to the last complete command (transaction), and Truncated says
// where it was cut; anything else that is not a well-formed command is a
// *FormatError naming the file and the offset.
package aof

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FileType is what a file of a multi-part AOF is.
type FileType byte

const (
	Base FileType = 'b' // the base: an RDB or an AOF rewrite
	Incr FileType = 'i' // incremental: commands appended after the base
	// history files (type h) are left over from earlier rewrites; Redis
	// ignores them when loading and so does this package.
	history FileType = 'h'
)

// File is one file to read, in order.
type File struct {
	Name string // as the manifest names it (the base name for a single file)
	Path string
	Type FileType
	Seq  int64 // manifest sequence number; 0 for a single file
}

// Source is what an AOF path holds: the files to read in order.
type Source struct {
	Path     string // as given
	Manifest string // the manifest's path; "" for a single legacy file
	Files    []File // base first (if any), then the incremental files in order
}

// maxManifestLine bounds a manifest line (Redis: 1024 bytes).
const maxManifestLine = 4096

// Open finds the files of an AOF: path is an appendonlydir (a directory
// with a *.manifest), a manifest file, or a single AOF file.
func Open(path string) (*Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("aof: %w", err)
	}
	if st.IsDir() {
		m, err := findManifest(path)
		if err != nil {
			return nil, err
		}
		return openManifest(path, m)
	}
	if strings.HasSuffix(path, ".manifest") {
		return openManifest(path, path)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("aof: %s is not a regular file", path)
	}
	return &Source{Path: path, Files: []File{{Name: filepath.Base(path), Path: path, Type: Base}}}, nil
}

func findManifest(dir string) (string, error) {
	ms, err := filepath.Glob(filepath.Join(dir, "*.manifest"))
	if err != nil {
		return "", fmt.Errorf("aof: %w", err)
	}
	switch len(ms) {
	case 0:
		return "", fmt.Errorf("aof: %s has no *.manifest file (a Redis 7 appendonlydir has appendonly.aof.manifest); give the directory of a Redis 7 AOF or a single appendonly.aof file", dir)
	case 1:
		return ms[0], nil
	}
	for _, m := range ms {
		if filepath.Base(m) == "appendonly.aof.manifest" {
			return m, nil
		}
	}
	return "", fmt.Errorf("aof: %s has several manifests (%s); give the one to read", dir, strings.Join(ms, ", "))
}

func openManifest(path, manifest string) (*Source, error) {
	f, err := os.Open(manifest)
	if err != nil {
		return nil, fmt.Errorf("aof: %w", err)
	}
	defer f.Close()
	files, err := ParseManifest(f, manifest)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(manifest)
	for i := range files {
		files[i].Path = filepath.Join(dir, files[i].Name)
		st, err := os.Stat(files[i].Path)
		if err != nil {
			return nil, fmt.Errorf("aof: manifest %s names %s: %w", manifest, files[i].Name, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("aof: manifest %s names %s, which is not a regular file", manifest, files[i].Name)
		}
	}
	return &Source{Path: path, Manifest: manifest, Files: files}, nil
}

// ParseManifest reads a Redis 7 AOF manifest: lines of "file NAME seq N
// type b|h|i" (in any order of the pairs, names quoted as redis-server
// quotes them), comments starting with '#'. It returns the base (if any)
// and then the incremental files in manifest order, which must have
// increasing sequence numbers; history files are left out. name is the
// manifest's name for messages.
func ParseManifest(r io.Reader, name string) ([]File, error) {
	br := bufio.NewReaderSize(r, maxManifestLine)
	var base *File
	var incr []File
	lines := 0
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("aof: manifest %s line %d: longer than %d bytes", name, n, maxManifestLine)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("aof: manifest %s: %w", name, err)
		}
		s := strings.Trim(string(line), " \t\r\n")
		if s != "" && s[0] != '#' {
			lines++
			fi, err := parseManifestLine(s)
			if err != nil {
				return nil, fmt.Errorf("aof: manifest %s line %d: %v", name, n, err)
			}
			switch fi.Type {
			case Base:
				if base != nil {
					return nil, fmt.Errorf("aof: manifest %s line %d: a second base file", name, n)
				}
				base = &fi
			case Incr:
				if len(incr) > 0 && fi.Seq <= incr[len(incr)-1].Seq {
					return nil, fmt.Errorf("aof: manifest %s line %d: sequence number %d does not follow %d", name, n, fi.Seq, incr[len(incr)-1].Seq)
				}
				incr = append(incr, fi)
			}
		}
		if err != nil {
			break
		}
	}
	if lines == 0 {
		return nil, fmt.Errorf("aof: manifest %s is empty", name)
	}
	var files []File
	if base != nil {
		files = append(files, *base)
	}
	return append(files, incr...), nil
}

func parseManifestLine(s string) (File, error) {
	args, err := splitArgs(s)
	if err != nil {
		return File{}, err
	}
	if len(args) < 6 || len(args)%2 != 0 {
		return File{}, errors.New("not \"file NAME seq N type b|h|i\"")
	}
	var fi File
	var haveSeq bool
	for i := 0; i < len(args); i += 2 {
		k, v := args[i], args[i+1]
		switch k {
		case "file":
			fi.Name = v
		case "seq":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return File{}, fmt.Errorf("bad sequence number %q", v)
			}
			fi.Seq, haveSeq = n, true
		case "type":
			if len(v) != 1 || !slices.Contains([]FileType{Base, Incr, history}, FileType(v[0])) {
				return File{}, fmt.Errorf("unknown file type %q (b, h or i)", v)
			}
			fi.Type = FileType(v[0])
		}
	}
	switch {
	case fi.Name == "":
		return File{}, errors.New("no file name")
	case strings.ContainsAny(fi.Name, "/\\") || fi.Name == "." || fi.Name == "..":
		// Redis only ever writes plain names into its own directory.
		return File{}, fmt.Errorf("file name %q is not a plain name", fi.Name)
	case !haveSeq:
		return File{}, errors.New("no sequence number")
	case fi.Type == 0:
		return File{}, errors.New("no file type")
	}
	return fi, nil
}

// splitArgs splits a line the way redis-server's sdssplitargs does:
// whitespace-separated words, "double quoted" with \n \r \t \b \a \\ \"
// and \xHH escapes, or 'single quoted' with \'.
func splitArgs(s string) ([]string, error) {
	var out []string
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		var b strings.Builder
		switch s[i] {
		case '"':
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unbalanced quotes")
				}
				c := s[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+3 < len(s) && s[i+1] == 'x' && isHex(s[i+2]) && isHex(s[i+3]) {
					v, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
					b.WriteByte(byte(v))
					i += 4
					continue
				}
				if c == '\\' && i+1 < len(s) {
					i++
					switch s[i] {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					default:
						c = s[i]
					}
				}
				b.WriteByte(c)
				i++
			}
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return nil, errors.New("closing quote not followed by a space")
			}
		case '\'':
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unbalanced quotes")
				}
				c := s[i]
				if c == '\'' {
					i++
					break
				}
				if c == '\\' && i+1 < len(s) && s[i+1] == '\'' {
					c = '\''
					i++
				}
				b.WriteByte(c)
				i++
			}
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return nil, errors.New("closing quote not followed by a space")
			}
		default:
			for i < len(s) && s[i] != ' ' && s[i] != '\t' {
				b.WriteByte(s[i])
				i++
			}
		}
		out = append(out, b.String())
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

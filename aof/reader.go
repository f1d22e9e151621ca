package aof

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// FormatError is damage in an AOF file other than a cut-off end: the file
// and the byte offset in it where the bad command starts (or where reading
// failed).
type FormatError struct {
	File   string // path of the file
	Offset int64  // offset in that file
	Msg    string
	Err    error // an I/O error, or nil
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("aof: %s at offset %d: %s", e.File, e.Offset, e.Msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Truncation says where the last file was cut off: what follows Offset in
// File was not applied (Redis with aof-load-truncated yes truncates the file
// there).
type Truncation struct {
	File   string // path of the file
	Offset int64  // offset of the first byte not applied
	Size   int64  // the file's size: Size-Offset bytes were left out
	// Multi: the cut fell inside a MULTI/EXEC transaction (or the file ends
	// after a MULTI without its EXEC). Offset is then the MULTI's: Next has
	// already returned the MULTI and the commands after it, and the caller
	// must drop them, as redis-server reverts such a transaction.
	Multi bool
}

// Options tune a Reader.
type Options struct {
	// MaxArg bounds one argument of a command (a corrupt length must not
	// make the reader allocate). Default 512 MiB, Redis's proto-max-bulk-len.
	MaxArg int64
	// MaxCommand bounds all arguments of one command together. Default
	// the larger of 1 GiB (Redis's client-query-buffer-limit: no client
	// could send a bigger command) and 2*MaxArg.
	MaxCommand int64
	// BufSize is the read buffer. Default 256 KiB.
	BufSize int
}

// Command is one command read from an AOF.
type Command struct {
	// Args are valid until the next call of Next.
	Args [][]byte
	File string // path of the file it came from
	// Offset is where the command starts in File.
	Offset int64
	// End is the position right after the command counted over all files
	// read so far (the sum of the earlier files' sizes plus the offset in
	// this file): increasing, and the same for the same command on every
	// read of the same files.
	End int64
}

// Reader reads the files of a Source in order.
type Reader struct {
	src *Source
	opt Options

	fi        int // index of the open file in src.Files; -1 before the first
	f         *os.File
	br        *bufio.Reader
	off       int64 // bytes consumed in the open file
	size      int64 // the open file's size when it was opened
	fileStart int64 // End of the earlier files
	rdbOpen   bool  // RDB handed out; commands start after SkipRDB

	inMulti    bool
	multiStart int64

	args  [][]byte
	arena []byte
	line  []byte
	trunc *Truncation
	err   error // sticky
}

// NewReader returns a Reader of src's files.
func NewReader(src *Source, opt Options) *Reader {
	if opt.MaxArg <= 0 {
		opt.MaxArg = 512 << 20
	}
	if opt.MaxCommand <= 0 {
		opt.MaxCommand = max(1<<30, 2*opt.MaxArg)
	}
	if opt.BufSize <= 0 {
		opt.BufSize = 256 << 10
	}
	return &Reader{src: src, opt: opt, fi: -1}
}

// Close closes the open file.
func (r *Reader) Close() error {
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}

// Truncated reports where the last file was cut off, once Next returned
// io.EOF; nil when every file was whole.
func (r *Reader) Truncated() *Truncation { return r.trunc }

// File is the file being read (its path), "" before the first.
func (r *Reader) File() string {
	if r.fi < 0 || r.fi >= len(r.src.Files) {
		return ""
	}
	return r.src.Files[r.fi].Path
}

var rdbMagic = []byte("REDIS")

// RDB opens the first file and, when it starts with an RDB (a base in RDB
// format, or a legacy AOF with an RDB preamble), returns a reader of the
// file from its start, and size its size. The caller frames the RDB from
// it and then calls SkipRDB with the number of bytes the RDB took; the
// commands that follow it (if any) come from Next. ok is false when the
// first file holds commands only (or there is no file).
func (r *Reader) RDB() (rd io.Reader, size int64, ok bool, err error) {
	if r.fi >= 0 {
		return nil, 0, false, errors.New("aof: RDB called after reading started")
	}
	if len(r.src.Files) == 0 {
		r.fi = 0
		return nil, 0, false, nil
	}
	if err := r.open(0); err != nil {
		return nil, 0, false, err
	}
	head, err := r.br.Peek(len(rdbMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, false, r.ioErr(err)
	}
	if !bytes.Equal(head, rdbMagic) {
		return nil, 0, false, nil
	}
	r.rdbOpen = true
	return io.NewSectionReader(r.f, 0, r.size), r.size, true, nil
}

// SkipRDB continues the first file after its RDB part of n bytes.
func (r *Reader) SkipRDB(n int64) error {
	if !r.rdbOpen {
		return errors.New("aof: SkipRDB without RDB")
	}
	r.rdbOpen = false
	if _, err := r.f.Seek(n, io.SeekStart); err != nil {
		return r.ioErr(err)
	}
	r.br.Reset(io.LimitReader(r.f, r.size-n))
	r.off = n
	return nil
}

func (r *Reader) open(i int) error {
	r.Close()
	r.fi = i
	fl := r.src.Files[i]
	f, err := os.Open(fl.Path)
	if err != nil {
		return fmt.Errorf("aof: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("aof: %w", err)
	}
	r.f, r.size, r.off = f, st.Size(), 0
	// A file is read as it was when opened: a server still appending to its
	// last file does not make a command half-read (it ends there instead,
	// like a file cut off at that size).
	lr := io.LimitReader(f, r.size)
	if r.br == nil {
		r.br = bufio.NewReaderSize(lr, r.opt.BufSize)
	} else {
		r.br.Reset(lr)
	}
	r.inMulti = false
	return nil
}

func (r *Reader) ioErr(err error) error {
	return &FormatError{File: r.File(), Offset: r.off, Msg: "read error: " + err.Error(), Err: err}
}

func (r *Reader) formatErr(off int64, format string, args ...any) error {
	return &FormatError{File: r.File(), Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// errShort is an EOF inside a command.
var errShort = errors.New("short")

// Next returns the next command; io.EOF after the last one (see
// Truncated). Any other error is a *FormatError and sticky.
func (r *Reader) Next() (*Command, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.rdbOpen {
		return nil, errors.New("aof: Next before SkipRDB")
	}
	cmd, err := r.next()
	if err != nil {
		r.Close()
		r.err = err
	}
	return cmd, err
}

func (r *Reader) next() (*Command, error) {
	for {
		if r.f == nil {
			if r.fi+1 >= len(r.src.Files) {
				return nil, io.EOF
			}
			if err := r.open(r.fi + 1); err != nil {
				return nil, err
			}
		}
		start := r.off
		c, err := r.br.ReadByte()
		if errors.Is(err, io.EOF) {
			if r.inMulti {
				return nil, r.cut(r.multiStart, true)
			}
			r.fileStart += r.off
			r.Close()
			continue
		}
		if err != nil {
			return nil, r.ioErr(err)
		}
		r.off++
		switch c {
		case '#':
			// An annotation (e.g. #TS: with aof-timestamp-enabled): Redis
			// skips the line, also a cut-off one at the end.
			if err := r.skipLine(); err != nil {
				if errors.Is(err, io.EOF) {
					continue
				}
				return nil, r.ioErr(err)
			}
			continue
		case '*':
		default:
			if start == 0 && r.fi > 0 && c == 'R' {
				if head, _ := r.br.Peek(4); string(head) == "EDIS" {
					return nil, r.formatErr(start, "an RDB inside an incremental file (only the first file may start with one)")
				}
			}
			return nil, r.formatErr(start, "expected '*' (a command), found %q", c)
		}
		cmd, err := r.command(start)
		if errors.Is(err, errShort) {
			from := start
			if r.inMulti {
				from = r.multiStart
			}
			return nil, r.cut(from, r.inMulti)
		}
		if err != nil {
			return nil, err
		}
		return cmd, nil
	}
}

// cut handles an end inside a command or a transaction at from: the end of
// the input if this is the last file, an error otherwise (Redis refuses a
// truncated file that is not the last).
func (r *Reader) cut(from int64, multi bool) error {
	what := "ends inside a command"
	if multi {
		what = "ends inside a MULTI/EXEC transaction"
	}
	if r.fi != len(r.src.Files)-1 {
		return r.formatErr(from, "%s, and it is not the last file", what)
	}
	r.trunc = &Truncation{File: r.File(), Offset: from, Size: r.size, Multi: multi}
	r.fileStart += r.off
	return io.EOF
}

func (r *Reader) skipLine() error {
	for {
		b, err := r.br.ReadSlice('\n')
		r.off += int64(len(b))
		if err == nil {
			return nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// maxLine bounds a "*N" or "$N" line.
const maxLine = 64

// readLine reads a line ending in \r\n (already past its first byte) and
// returns it without the \r\n.
func (r *Reader) readLine(start int64) ([]byte, error) {
	r.line = r.line[:0]
	for {
		b, err := r.br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil, errShort
		}
		if err != nil {
			return nil, r.ioErr(err)
		}
		r.off++
		if b == '\n' {
			if len(r.line) == 0 || r.line[len(r.line)-1] != '\r' {
				return nil, r.formatErr(start, "line not ended by \\r\\n")
			}
			return r.line[:len(r.line)-1], nil
		}
		if len(r.line) >= maxLine {
			return nil, r.formatErr(start, "line longer than %d bytes", maxLine)
		}
		r.line = append(r.line, b)
	}
}

func parseCount(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil && n >= 0
}

// command reads the rest of a command whose '*' is consumed.
func (r *Reader) command(start int64) (*Command, error) {
	line, err := r.readLine(start)
	if err != nil {
		return nil, err
	}
	argc, ok := parseCount(line)
	if !ok || argc < 1 {
		return nil, r.formatErr(start, "bad argument count %q", line)
	}
	if cap(r.arena) > 4<<20 {
		r.arena = nil // do not keep one huge command's memory
	}
	r.arena = r.arena[:0]
	ends := r.args[:0] // reused below as offsets, then as slices
	offs := make([]int, 0, min(argc, 64))
	for i := int64(0); i < argc; i++ {
		argStart := r.off
		c, err := r.br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil, errShort
		}
		if err != nil {
			return nil, r.ioErr(err)
		}
		r.off++
		if c != '$' {
			return nil, r.formatErr(start, "argument %d: expected '$', found %q at offset %d", i+1, c, argStart)
		}
		line, err := r.readLine(start)
		if err != nil {
			return nil, err
		}
		n, ok := parseCount(line)
		if !ok {
			return nil, r.formatErr(start, "argument %d: bad length %q", i+1, line)
		}
		if n > r.size-r.off {
			// The file ends before the argument would (Redis reads until
			// EOF too): a cut, whatever the length says.
			return nil, errShort
		}
		if n > r.opt.MaxArg {
			return nil, r.formatErr(start, "argument %d of %d bytes exceeds the limit of %d", i+1, n, r.opt.MaxArg)
		}
		if int64(len(r.arena))+n > r.opt.MaxCommand {
			return nil, r.formatErr(start, "command of more than %d bytes (argument %d)", r.opt.MaxCommand, i+1)
		}
		if err := r.readN(n); err != nil {
			return nil, err
		}
		offs = append(offs, len(r.arena))
		var crlf [2]byte
		if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, errShort
			}
			return nil, r.ioErr(err)
		}
		r.off += 2
		if crlf != [2]byte{'\r', '\n'} {
			return nil, r.formatErr(start, "argument %d: %d bytes not followed by \\r\\n", i+1, n)
		}
	}
	from := 0
	for _, e := range offs {
		ends = append(ends, r.arena[from:e:e])
		from = e
	}
	r.args = ends
	switch name := ends[0]; {
	case len(name) == 5 && bytes.EqualFold(name, []byte("MULTI")):
		r.inMulti, r.multiStart = true, start
	case len(name) == 4 && bytes.EqualFold(name, []byte("EXEC")):
		r.inMulti = false
	}
	return &Command{Args: ends, File: r.File(), Offset: start, End: r.fileStart + r.off}, nil
}

// readN appends the next n bytes to the arena, growing it only as the data
// arrives (a lying length in a cut-off file allocates nothing).
func (r *Reader) readN(n int64) error {
	for n > 0 {
		chunk := int(min(n, 64<<10))
		if cap(r.arena)-len(r.arena) < chunk {
			r.arena = append(r.arena[:cap(r.arena)], make([]byte, chunk)...)[:len(r.arena)]
		}
		m, err := io.ReadFull(r.br, r.arena[len(r.arena):len(r.arena)+chunk])
		r.arena = r.arena[:len(r.arena)+m]
		r.off += int64(m)
		n -= int64(m)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return errShort
			}
			return r.ioErr(err)
		}
	}
	return nil
}

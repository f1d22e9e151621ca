// Package resp is the Redis wire codec of ferry's data plane: encoding commands
// into RESP and reading replies and replicated commands back, with exact byte
// counts (the replication offset of a command is the number of bytes the master
// sent before it, so the reader must account for every byte it consumes).
package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Kind is the RESP type of a Value.
type Kind byte

// RESP2 kinds plus the RESP3 kinds a server may send on a RESP2 connection
// never appear: ferry never sends HELLO 3.
const (
	SimpleString Kind = '+'
	Error        Kind = '-'
	Integer      Kind = ':'
	Bulk         Kind = '$'
	Array        Kind = '*'
)

// Value is one reply. Null bulk strings and arrays have Null set.
type Value struct {
	Kind  Kind
	Str   []byte
	Int   int64
	Elems []Value
	Null  bool
}

// IsError reports whether v is an error reply.
func (v Value) IsError() bool { return v.Kind == Error }

// Text is v as a string: the payload of simple strings, errors and bulk strings,
// the number of integers.
func (v Value) Text() string {
	switch v.Kind {
	case Integer:
		return strconv.FormatInt(v.Int, 10)
	case Array:
		return fmt.Sprintf("array(%d)", len(v.Elems))
	}
	if v.Null {
		return "(nil)"
	}
	return string(v.Str)
}

// ErrProtocol is wrapped by every error that means the peer sent bytes that are
// not RESP: the connection cannot be trusted any further.
var ErrProtocol = errors.New("protocol error")

// Limits bound what a peer may declare on one connection, so that no byte
// sequence can make ferry allocate more than the peer actually sent (plus
// one small chunk), recurse without bound, or wait for gigabytes that a
// declared length promises.
type Limits struct {
	MaxBulk  int64 // longest bulk string, in bytes
	MaxArray int64 // most elements of one array (arguments of one command)
	MaxDepth int   // deepest nesting of arrays; 1 allows a flat array
	MaxLine  int   // longest simple-string, error or header line (Guard only; a Reader is bounded by its buffer)
}

// DefaultMaxBulk is the replication stream's bulk string cap: Redis's own
// proto-max-bulk-len default, the largest argument a master accepts from its
// clients and so propagates to its replicas.
const DefaultMaxBulk = 512 << 20

// StreamLimits apply to the replication stream and to the replies of
// replicated commands (which ReadStatus discards without storing).
func StreamLimits() Limits {
	return Limits{MaxBulk: DefaultMaxBulk, MaxArray: 1 << 20, MaxDepth: 16, MaxLine: 1 << 20}
}

// ReplyLimits apply to the replies of ferry's own commands on a Conn (AUTH,
// CLIENT SETNAME, REPLCONF, CONFIG GET, INFO, GET of a marker): all small.
func ReplyLimits() Limits {
	return Limits{MaxBulk: 4 << 20, MaxArray: 1 << 16, MaxDepth: 16, MaxLine: 64 << 10}
}

// ControlLimits apply to control-plane replies (INFO, CLUSTER SHARDS and
// NODES, SCAN, CONFIG GET): small next to data, but a SCAN page holds user
// key names and CLUSTER NODES of a large cluster runs to megabytes.
func ControlLimits() Limits {
	return Limits{MaxBulk: 32 << 20, MaxArray: 1 << 20, MaxDepth: 16, MaxLine: 64 << 10}
}

// ValueLimits apply where ferry reads values (verify): any value the source
// may hold.
func ValueLimits() Limits {
	return Limits{MaxBulk: DefaultMaxBulk, MaxArray: 1 << 20, MaxDepth: 16, MaxLine: 64 << 10}
}

// chunk is how much a Reader allocates ahead of the bytes that arrived: a
// declared length beyond it is allocated as the data comes in.
const chunk = 64 << 10

// LimitError means a peer declared more than the connection allows (or sent a
// line longer than the buffer). It wraps ErrProtocol.
type LimitError struct {
	What  string // "bulk string", "array", "nesting", "line"
	Size  int64  // what the peer declared (for nesting: the depth reached)
	Limit int64
}

func (e *LimitError) Error() string {
	switch e.What {
	case "nesting":
		return fmt.Sprintf("protocol error: arrays nested deeper than %d levels", e.Limit)
	case "array":
		return fmt.Sprintf("protocol error: an array of %d elements declared, over the limit of %d", e.Size, e.Limit)
	case "line":
		return fmt.Sprintf("protocol error: a line longer than %d bytes", e.Limit)
	}
	return fmt.Sprintf("protocol error: a %s of %d bytes declared, over the limit of %d", e.What, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrProtocol) hold for a LimitError.
func (e *LimitError) Is(target error) bool { return target == ErrProtocol }

// Reader reads RESP from a buffered stream and counts the bytes it consumed.
type Reader struct {
	br    *bufio.Reader
	n     int64  // bytes consumed so far
	arena []byte // backing store for the args of the last ReadCommand
	args  [][]byte
	raw   []byte // the last command's encoding, when read in place (Raw)
	lim   Limits
}

// NewReader returns a Reader over r with a buffer of size bytes and
// StreamLimits().
func NewReader(r io.Reader, size int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size), lim: StreamLimits()}
}

// SetLimits sets what the peer may declare from now on.
func (r *Reader) SetLimits(l Limits) { r.lim = l }

// Limits returns what the peer may declare.
func (r *Reader) Limits() Limits { return r.lim }

// Consumed is the number of bytes read off the stream so far.
func (r *Reader) Consumed() int64 { return r.n }

// Buffered is the number of bytes already read from the underlying reader but
// not consumed yet.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Bufio exposes the buffered reader for callers that switch to raw reading
// (the RDB payload of a full sync); they must account consumed bytes themselves.
func (r *Reader) Bufio() *bufio.Reader { return r.br }

// AddConsumed adds raw bytes a caller consumed through Bufio.
func (r *Reader) AddConsumed(n int64) { r.n += n }

// line reads one CRLF-terminated line and returns it without the CRLF. The
// slice is valid until the next read.
func (r *Reader) line() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &LimitError{What: "line", Size: int64(len(b)), Limit: int64(r.br.Size())}
		}
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.n += int64(len(b))
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not terminated by CRLF: %q", ErrProtocol, clip(b))
	}
	return b[:len(b)-2], nil
}

// SkipRepeated consumes up to max consecutive copies of line (a whole
// reply, CRLF included) from what is already buffered, without reading from
// the connection, and returns how many it consumed. A pipelined
// transaction's +QUEUED replies are skipped this way in bulk.
func (r *Reader) SkipRepeated(line []byte, max int) int {
	k := min(max, r.br.Buffered()/len(line))
	if k <= 0 {
		return 0
	}
	b, _ := r.br.Peek(k * len(line))
	n := 0
	for n < k && bytes.Equal(b[n*len(line):(n+1)*len(line)], line) {
		n++
	}
	r.br.Discard(n * len(line))
	r.n += int64(n * len(line))
	return n
}

// ReadValue reads one complete reply. Strings are copied: the Value stays
// valid. Declared lengths are checked against the Reader's limits, and memory
// grows with the bytes that arrive, not with what a header declares.
func (r *Reader) ReadValue() (Value, error) { return r.readValue(1) }

// readValue recurses once per array level, at most MaxDepth deep.
func (r *Reader) readValue(depth int) (Value, error) {
	line, err := r.line()
	if err != nil {
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, fmt.Errorf("%w: empty line", ErrProtocol)
	}
	switch Kind(line[0]) {
	case SimpleString, Error:
		return Value{Kind: Kind(line[0]), Str: append([]byte(nil), line[1:]...)}, nil
	case Integer:
		n, err := parseInt(line[1:])
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: Integer, Int: n}, nil
	case Bulk:
		n, err := parseInt(line[1:])
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			return Value{Kind: Bulk, Null: true}, nil
		}
		if n > r.lim.MaxBulk {
			return Value{}, &LimitError{What: "bulk string", Size: n, Limit: r.lim.MaxBulk}
		}
		b, err := r.readBulk(int(n))
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: Bulk, Str: b}, nil
	case Array:
		n, err := parseInt(line[1:])
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			return Value{Kind: Array, Null: true}, nil
		}
		if n > r.lim.MaxArray {
			return Value{}, &LimitError{What: "array", Size: n, Limit: r.lim.MaxArray}
		}
		if n > 0 && depth > r.lim.MaxDepth {
			return Value{}, &LimitError{What: "nesting", Size: int64(depth), Limit: int64(r.lim.MaxDepth)}
		}
		// Elements are appended as they arrive: a declared count reserves
		// nothing beyond a few slots.
		elems := make([]Value, 0, min(n, 16))
		for i := int64(0); i < n; i++ {
			e, err := r.readValue(depth + 1)
			if err != nil {
				return Value{}, midReply(err)
			}
			elems = append(elems, e)
		}
		return Value{Kind: Array, Elems: elems}, nil
	}
	return Value{}, fmt.Errorf("%w: unexpected reply type %q", ErrProtocol, clip(line))
}

// readBulk reads a bulk string of n bytes (n within the limits) and its CRLF.
// Beyond one chunk, the buffer doubles only as data fills it: a peer that
// declares a length and stops costs at most what it sent.
func (r *Reader) readBulk(n int) ([]byte, error) {
	b := make([]byte, 0, min(n, chunk))
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), len(b)))
		}
		k := min(n, cap(b))
		if err := r.readFull(b[len(b):k]); err != nil {
			return nil, err
		}
		b = b[:k]
	}
	if err := r.crlf(); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadCommand reads one command as a master sends it to a replica: an array of
// bulk strings. The returned args are valid until the next read from r: they
// point into the Reader's buffer or into an arena the next call reuses;
// callers copy what they keep. A bare newline (the keepalive a master sends
// while it prepares a snapshot) yields zero args.
func (r *Reader) ReadCommand() ([][]byte, error) {
	if r.br.Buffered() == 0 {
		// Fill the buffer first, so that the command can be read in place.
		// An error here is what the buffered path would return at once.
		if _, err := r.br.Peek(1); err != nil {
			r.raw = nil
			return nil, err
		}
	}
	if args, ok := r.commandBuffered(); ok {
		return args, nil
	}
	return r.readCommand()
}

// commandBuffered is ReadCommand's fast path: a command that is already whole
// in the buffer, in the plain spelling a master sends (no sign, no leading
// '+', at most 18 digits per length), is scanned in place and its args point
// into the buffer, without a copy. Anything else — a command cut by the
// buffer's end, a keepalive, a malformed or oversized one — is left
// untouched (ok=false) for readCommand, which reads it or reports the error.
func (r *Reader) commandBuffered() (args [][]byte, ok bool) {
	r.raw = nil
	b, _ := r.br.Peek(r.br.Buffered())
	if len(b) < 4 || b[0] != '*' {
		return nil, false
	}
	argc, i := scanLen(b, 1)
	if i < 0 || argc < 1 || int64(argc) > r.lim.MaxArray {
		return nil, false
	}
	args = r.args[:0]
	for range argc {
		if i >= len(b) || b[i] != '$' {
			return nil, false
		}
		n, j := scanLen(b, i+1)
		if j < 0 || int64(n) > r.lim.MaxBulk {
			return nil, false
		}
		end := j + n
		if end+2 > len(b) || end < j || b[end] != '\r' || b[end+1] != '\n' {
			return nil, false
		}
		args = append(args, b[j:end:end])
		i = end + 2
	}
	r.args = args
	r.raw = b[:i:i]
	r.br.Discard(i)
	r.n += int64(i)
	return args, true
}

// Raw is the encoding of the command the last ReadCommand returned when it
// was read in place: exactly the bytes AppendCommand makes of its args, as
// the master sent them. nil when it was read through the buffer. Valid until
// the next read from r.
func (r *Reader) Raw() []byte { return r.raw }

// scanLen reads the decimal length that starts at b[i] and its CRLF: it
// returns the length and the index after the CRLF, or j=-1 when b[i:] does
// not start with 1 to 18 digits without a leading zero and a CRLF (the slow
// path then decides). Only the canonical spelling passes, so that a command
// read in place is exactly what AppendCommand makes of its args (Raw).
func scanLen(b []byte, i int) (n, j int) {
	if i+1 < len(b) && b[i] == '0' && b[i+1] != '\r' {
		return 0, -1
	}
	k := i
	for k < len(b) && k-i < 19 {
		c := b[k]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
		k++
	}
	if k == i || k-i > 18 || k+1 >= len(b) || b[k] != '\r' || b[k+1] != '\n' {
		return 0, -1
	}
	return n, k + 2
}

// readCommand is ReadCommand reading through the buffer: commands cut by the
// buffer's end, larger than it, keepalives, and every error.
func (r *Reader) readCommand() ([][]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &LimitError{What: "line", Size: int64(len(line)), Limit: int64(r.br.Size())}
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.n += int64(len(line))
	if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
		return nil, nil
	}
	if line[0] != '*' || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: expected a command array, got %q", ErrProtocol, clip(line))
	}
	argc, err := parseInt(line[1 : len(line)-2])
	if err != nil {
		return nil, err
	}
	if argc < 1 {
		return nil, fmt.Errorf("%w: command with %d arguments", ErrProtocol, argc)
	}
	if argc > r.lim.MaxArray {
		return nil, &LimitError{What: "array", Size: argc, Limit: r.lim.MaxArray}
	}
	if cap(r.arena) > 16<<20 {
		// One huge command must not pin its arena for the rest of the run.
		r.arena = nil
	}
	r.arena = r.arena[:0]
	ends := r.args[:0]
	// Lengths first into the arena, then slice it: the arena may grow while
	// reading, so slices are taken only at the end.
	var bounds [64][2]int
	spans := bounds[:0]
	for i := int64(0); i < argc; i++ {
		hdr, err := r.line()
		if err != nil {
			return nil, err
		}
		if len(hdr) == 0 || hdr[0] != '$' {
			return nil, fmt.Errorf("%w: expected a bulk string, got %q", ErrProtocol, clip(hdr))
		}
		n, err := parseInt(hdr[1:])
		if err != nil {
			return nil, err
		}
		if uint64(n) > uint64(r.lim.MaxBulk) { // one compare for both bounds
			if n < 0 {
				return nil, fmt.Errorf("%w: bulk length %d", ErrProtocol, n)
			}
			return nil, &LimitError{What: "bulk string", Size: n, Limit: r.lim.MaxBulk}
		}
		start := len(r.arena)
		if int64(cap(r.arena)-start) >= n || n <= chunk {
			r.arena = grow(r.arena, int(n))
			if err := r.readFull(r.arena[start:]); err != nil {
				return nil, err
			}
		} else if err := r.readLarge(int(n)); err != nil {
			return nil, err
		}
		if err := r.crlf(); err != nil {
			return nil, err
		}
		spans = append(spans, [2]int{start, len(r.arena)})
	}
	for _, s := range spans {
		ends = append(ends, r.arena[s[0]:s[1]:s[1]])
	}
	r.args = ends
	return ends, nil
}

// readLarge appends n bytes to the arena (n beyond one chunk), growing it
// only as data fills it.
func (r *Reader) readLarge(n int) error {
	end := len(r.arena) + n
	for len(r.arena) < end {
		if len(r.arena) == cap(r.arena) {
			r.arena = slices.Grow(r.arena, min(end-len(r.arena), max(len(r.arena), chunk)))
		}
		k := min(end, cap(r.arena))
		if err := r.readFull(r.arena[len(r.arena):k]); err != nil {
			return err
		}
		r.arena = r.arena[:k]
	}
	return nil
}

// midReply turns the end of the stream inside a reply into
// io.ErrUnexpectedEOF.
func midReply(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

func (r *Reader) readFull(b []byte) error {
	n, err := io.ReadFull(r.br, b)
	r.n += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) crlf() error {
	b, err := r.br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return fmt.Errorf("%w: bulk string not followed by CRLF", ErrProtocol)
	}
	r.br.Discard(2)
	r.n += 2
	return nil
}

func parseInt(b []byte) (int64, error) {
	// The common spelling, 1 to 18 digits and an optional '-', without
	// strconv; anything else (a '+', more digits, junk) goes through it.
	if len(b) > 0 && len(b) <= 18 {
		d := b
		if d[0] == '-' {
			d = d[1:]
		}
		var n int64
		ok := len(d) > 0
		for _, c := range d {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if ok {
			if len(d) < len(b) {
				n = -n
			}
			return n, nil
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, clip(b))
	}
	return n, nil
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// AppendCommand appends args as a RESP array of bulk strings.
func AppendCommand(dst []byte, args ...[]byte) []byte {
	dst = AppendArrayHeader(dst, len(args))
	for _, a := range args {
		dst = AppendBulk(dst, a)
	}
	return dst
}

// AppendCommandStrings is AppendCommand for string arguments.
func AppendCommandStrings(dst []byte, args ...string) []byte {
	dst = AppendArrayHeader(dst, len(args))
	for _, a := range args {
		dst = AppendBulkHeader(dst, int64(len(a)))
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// AppendArrayHeader appends "*n\r\n".
func AppendArrayHeader(dst []byte, n int) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '\r', '\n')
}

// AppendBulkHeader appends "$n\r\n"; the caller appends n bytes and CRLF.
func AppendBulkHeader(dst []byte, n int64) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

// AppendBulk appends one bulk string.
func AppendBulk(dst, b []byte) []byte {
	dst = AppendBulkHeader(dst, int64(len(b)))
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

// AppendBulkString appends s as a bulk string.
func AppendBulkString(dst []byte, s string) []byte {
	dst = AppendBulkHeader(dst, int64(len(s)))
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// AppendBulkInt appends an integer as a bulk string.
func AppendBulkInt(dst []byte, n int64) []byte {
	var tmp [20]byte
	return AppendBulk(dst, strconv.AppendInt(tmp[:0], n, 10))
}

// CommandPrefix reads the start of an encoded command as AppendCommand
// makes it: its number of arguments, the length of its array header, and
// the length of that header and its first k arguments together. ok is false
// when enc does not start with such a header and k whole arguments.
func CommandPrefix(enc []byte, k int) (argc, header, prefix int, ok bool) {
	if len(enc) == 0 || enc[0] != '*' {
		return 0, 0, 0, false
	}
	argc, i := scanLen(enc, 1)
	if i < 0 || argc < k {
		return 0, 0, 0, false
	}
	header = i
	for range k {
		if i >= len(enc) || enc[i] != '$' {
			return 0, 0, 0, false
		}
		l, j := scanLen(enc, i+1)
		if j < 0 || j+l+2 > len(enc) {
			return 0, 0, 0, false
		}
		i = j + l + 2
	}
	return argc, header, i, true
}

// ParseCommand splits one RESP-encoded command (as built by AppendCommand)
// back into its arguments. It is used off the hot path: to name the command
// and key in an error message, or to re-route a command.
func ParseCommand(b []byte) ([][]byte, error) {
	r := &Reader{br: bufio.NewReaderSize(&sliceReader{b: b}, 64), lim: StreamLimits()}
	args, err := r.ReadCommand()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = append([]byte(nil), a...)
	}
	return out, nil
}

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// ReadStatus reads one reply without keeping it: the hot path of a writer
// that only needs to know whether each command succeeded. It returns the
// reply's kind and, for an error reply, its message. For an array (the reply
// of EXEC) it calls elemErr with the index and message of every element that
// is an error. Nothing is allocated unless there is an error.
//
// Bulk lengths are checked against MaxBulk and nesting against MaxDepth; an
// array's count is not limited, as its elements are read one by one and
// nothing is kept (a reply to a replicated LPOP with a count can be long).
func (r *Reader) ReadStatus(elemErr func(i int, msg string)) (Kind, string, error) {
	return r.readStatus(elemErr, 1)
}

func (r *Reader) readStatus(elemErr func(i int, msg string), depth int) (Kind, string, error) {
	line, err := r.line()
	if err != nil {
		return 0, "", err
	}
	if len(line) == 0 {
		return 0, "", fmt.Errorf("%w: empty line", ErrProtocol)
	}
	k := Kind(line[0])
	switch k {
	case SimpleString, Integer:
		return k, "", nil
	case Error:
		return k, string(line[1:]), nil
	case Bulk:
		n, err := parseInt(line[1:])
		if err != nil {
			return 0, "", err
		}
		if n > r.lim.MaxBulk {
			return 0, "", &LimitError{What: "bulk string", Size: n, Limit: r.lim.MaxBulk}
		}
		if n >= 0 {
			if err := r.discard(n + 2); err != nil {
				return 0, "", err
			}
		}
		return k, "", nil
	case Array:
		n, err := parseInt(line[1:])
		if err != nil {
			return 0, "", err
		}
		if n > 0 && depth > r.lim.MaxDepth {
			return 0, "", &LimitError{What: "nesting", Size: int64(depth), Limit: int64(r.lim.MaxDepth)}
		}
		for i := int64(0); i < n; i++ {
			ek, msg, err := r.readStatus(nil, depth+1)
			if err != nil {
				return 0, "", midReply(err)
			}
			if ek == Error && elemErr != nil {
				elemErr(int(i), msg)
			}
		}
		if n < 0 {
			return k, "null", nil
		}
		return k, "", nil
	}
	return 0, "", fmt.Errorf("%w: unexpected reply type %q", ErrProtocol, clip(line))
}

func (r *Reader) discard(n int64) error {
	for n > 0 {
		step := n
		if step > 1<<30 {
			step = 1 << 30
		}
		d, err := r.br.Discard(int(step))
		r.n += int64(d)
		n -= int64(d)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

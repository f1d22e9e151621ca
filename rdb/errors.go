package rdb

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// FormatError reports corrupt or truncated RDB input, or an I/O error of the
// underlying reader, at a byte offset of the stream.
type FormatError struct {
	Offset int64  // stream offset where the problem was detected
	DB     int    // db of the record, -1 when not known
	Key    []byte // key of the record, nil when not known
	Msg    string // what went wrong, e.g. "unexpected EOF in hash value"
	Err    error  // underlying error (io.ErrUnexpectedEOF, an I/O error, ...), may be nil
}

func (e *FormatError) Error() string {
	s := "rdb: offset " + strconv.FormatInt(e.Offset, 10)
	if e.Key != nil {
		db := "?"
		if e.DB >= 0 {
			db = strconv.Itoa(e.DB)
		}
		s += " (db " + db + ", key " + quoteKey(e.Key) + ")"
	}
	return s + ": " + e.Msg
}

func (e *FormatError) Unwrap() error { return e.Err }

// quoteKey quotes a key for an error message, shortening very long keys.
func quoteKey(k []byte) string {
	const max = 128
	if len(k) > max {
		return strconv.Quote(string(k[:max])) + "..."
	}
	return strconv.Quote(string(k))
}

// corruptError is a structural problem found in the data.
type corruptError struct{ msg string }

func (e *corruptError) Error() string { return e.msg }

func corrupt(format string, args ...any) error {
	return &corruptError{msg: fmt.Sprintf(format, args...)}
}

// ErrModuleValue is returned (wrapped) by Rewrite for module values and
// module aux data, which cannot be expressed as plain commands.
var ErrModuleValue = errors.New("module data cannot be rewritten into commands")

// ErrChecksum is wrapped by the FormatError of a CRC64 mismatch.
var ErrChecksum = errors.New("checksum mismatch")

// describe turns an internal error into the message text of a FormatError.
func describe(err error, ctx string) string {
	in := ""
	if ctx != "" {
		in = " in " + ctx
	}
	var ce *corruptError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF" + in
	case errors.As(err, &ce):
		return ce.msg + in
	default:
		return "read error" + in + ": " + err.Error()
	}
}

// underlying returns the error to expose as FormatError.Err.
func underlying(err error) error {
	var ce *corruptError
	if errors.As(err, &ce) {
		return nil
	}
	return err
}

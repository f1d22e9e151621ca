// Package rdb frames Redis RDB streams (versions 1 to 12, i.e. up to Redis
// 7.4) into records, builds DUMP/RESTORE payloads from them, and rewrites
// values into plain Redis commands for targets that cannot RESTORE them.
//
// # Framing
//
// A Reader walks the stream with a large read buffer and never holds more
// than one value in memory: the raw bytes of each value are captured as they
// pass through the buffer (values over 1 MiB into pooled chunks, never copied
// to grow; values bigger than Options.MemLimit go to a temporary file).
// Framing only follows the RDB-level structure (lengths, strings, stream
// groups, module opcodes); compact encodings inside strings (listpack,
// ziplist, intset, zipmap) are copied, not decoded. The CRC64 at the end of
// the stream is verified.
//
//	r := rdb.NewReader(conn, rdb.Options{SpillDir: dir})
//	defer r.Close()
//	for {
//		rec, err := r.Next()
//		if err == io.EOF {
//			break // r.Buffered() holds what followed the RDB
//		}
//		if err != nil {
//			return err // *rdb.FormatError: offset, db, key
//		}
//		if rec.Kind == rdb.KindKey && rdb.MinVersion(rec.Type) <= targetVersion {
//			rec.WriteRestorePayload(w, targetVersion) // RESTORE key ttl <payload> REPLACE ABSTTL
//		} else {
//			rdb.Rewrite(rec, rdb.RewriteOptions{}, emit)
//		}
//		rec.Release()
//	}
//
// # Ownership
//
// A Record and everything it references stays valid until Release; after
// that it is recycled. Records do not share buffers with each other or with
// the Reader, so they can be queued and used from other goroutines. Reader
// itself is not safe for concurrent use. Reader.Close invalidates spilled
// payloads that were not released yet.
//
// # Rewrite
//
// Rewrite decodes a value incrementally from its payload (in memory or
// spilled) and emits commands in batches, so memory stays bounded by one
// batch even for a value with millions of elements. See Rewrite for the
// command sequence and its limits.
package rdb

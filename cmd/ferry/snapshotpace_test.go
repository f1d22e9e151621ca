package main

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestSnapshotInPieces: a source that sends its snapshot in uneven pieces
// with pauses between them, then nothing until ferry acknowledges it — what
// a master does after a snapshot, diskless (EOF mark) or not (length). ferry
// waits for fuller reads while a snapshot streams; it must still take every
// piece as it comes, the tail included, and read the command stream after
// it byte by byte: the data arrives whole, on the first link, and the
// stream's command, sent once ferry has waited on the idle link, is applied.
// A reader that waited for a fuller socket would sit out its read timeout
// and reconnect.
func TestSnapshotInPieces(t *testing.T) {
	src := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 2000})
	rdb := emptyRDB(t, src) // SAVE: the snapshot of what src holds
	if len(rdb) < 4*64<<10 {
		t.Fatalf("the snapshot is %d bytes: too small to span several batched reads", len(rdb))
	}
	stream := "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$4\r\ndone\r\n$1\r\n1\r\n"
	// Cuts inside the batch size and across it.
	cuts := []int{100, 100 + 70<<10, len(rdb) / 2}

	for _, tc := range []struct {
		name      string
		diskless  bool
		shortTail bool // the last 10 bytes, and the EOF mark in two, after pauses; else the rest in one write
		behind    bool // the stream right behind the mark, in the same write (a source that does not wait for the ACK)
		// tailOnly: no cuts before the tail, so that the read before it
		// takes a whole batch and leaves less than one to come.
		tailOnly bool
	}{
		{"diskless", true, true, false, false},
		{"diskless-tail-in-one-write", true, false, false, false},
		{"diskless-stream-behind-mark", true, false, true, false},
		{"length", false, true, false, false},
		// Once less than a batch is to come, the read wakes on any byte: a
		// level left at the batch would sleep through the tail.
		{"length-tail-after-a-batch", false, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := redistest.Start(t)
			var psyncs, acks atomic.Int32
			mark := strings.Repeat("m", 40)
			pause := func() { time.Sleep(30 * time.Millisecond) } // longer than a batched read waits
			peer := newFakePeer(t, func(c *peerConn, args []string) {
				switch {
				case strings.EqualFold(args[0], "PSYNC"):
					psyncs.Add(1)
					hdr := "+FULLRESYNC " + fakeReplID + " 0\r\n$" + strconv.Itoa(len(rdb)) + "\r\n"
					if tc.diskless {
						hdr = "+FULLRESYNC " + fakeReplID + " 0\r\n$EOF:" + mark + "\r\n"
					}
					c.Write([]byte(hdr))
					from, cuts := 0, cuts
					if tc.tailOnly {
						cuts = nil
					}
					for _, to := range cuts {
						c.Write(rdb[from:to])
						from = to
						pause()
					}
					switch {
					case tc.behind:
						c.Write(append(append(append([]byte(nil), rdb[from:]...), mark...), stream...))
					case !tc.shortTail && tc.diskless:
						c.Write(append(append([]byte(nil), rdb[from:]...), mark...))
					case !tc.shortTail:
						c.Write(rdb[from:])
					default:
						c.Write(rdb[from : len(rdb)-10])
						pause()
						c.Write(rdb[len(rdb)-10:])
						if tc.diskless {
							pause()
							c.Write([]byte(mark[:25]))
							pause()
							c.Write([]byte(mark[25:]))
						}
					}
				case len(args) > 1 && strings.EqualFold(args[0], "REPLCONF") && strings.EqualFold(args[1], "ACK"):
					// On the second: ferry has waited on the idle link a while.
					if acks.Add(1) == 2 && !tc.behind {
						c.Write([]byte(stream))
					}
				default:
					answer(c, args)
				}
			})

			p := startFerry(t, "sync", "--source", "redis://"+peer.Addr, "--target", dst.URL(), "--job", "pieces", "-c", jobFile(t, "log_level = \"debug\""))
			redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "done") == int64(1) }, "the command after the snapshot applied")
			src.Do(t, "SET", "done", "1")
			redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{})
			src.Do(t, "DEL", "done")
			stopOK(t, p)
			if n := psyncs.Load(); n != 1 {
				t.Errorf("%d PSYNCs: the link was lost and taken again", n)
			}
		})
	}
}

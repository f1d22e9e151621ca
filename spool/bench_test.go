package spool

import (
	"io"
	"testing"
	"time"
)

const benchWrite = 32 << 10 // a socket read's worth

// BenchmarkMemory: the memory path alone, one goroutine writing 32 KiB and
// reading it back.
func BenchmarkMemory(b *testing.B) {
	s := newSpool(b, Options{})
	p := make([]byte, benchWrite)
	q := make([]byte, benchWrite)
	b.SetBytes(benchWrite)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(p); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, q); err != nil {
			b.Fatal(err)
		}
	}
	if s.spills != 0 {
		b.Fatal("spilled")
	}
}

// BenchmarkConcurrent: producer and consumer goroutines with the default
// options. The producer (no network to wait for) can outrun the consumer by
// 64 MiB, so the spills metric counts trips through the disk.
func BenchmarkConcurrent(b *testing.B) {
	s := newSpool(b, Options{})
	benchConcurrent(b, s, 64<<10)
}

// BenchmarkDiskConcurrent: like BenchmarkMemory with a 64 KiB MemLimit: every
// hiccup of the consumer sends the stream through a segment file.
func BenchmarkDiskConcurrent(b *testing.B) {
	s := newSpool(b, Options{MemLimit: 64 << 10, SegmentSize: 64 << 20})
	benchConcurrent(b, s, 64<<10)
}

func benchConcurrent(b *testing.B, s *Spool, readSize int) {
	p := make([]byte, benchWrite)
	fillStream(p, 0)
	b.SetBytes(benchWrite)
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() {
		q := make([]byte, readSize)
		for {
			if _, err := s.Read(q); err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	s.CloseWrite()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(s.spills), "spills")
}

// BenchmarkDisk: everything but the first MiB goes through segment files:
// the consumer is stopped while the producer writes 256 MiB, then drains it;
// repeated. Reports the write and read rates separately too.
func BenchmarkDisk(b *testing.B) {
	for _, readSize := range []int{64 << 10, 1 << 20} {
		b.Run(sizeName(readSize), func(b *testing.B) {
			s := newSpool(b, Options{MemLimit: 4 << 20, SegmentSize: 64 << 20})
			p := make([]byte, benchWrite)
			q := make([]byte, readSize)
			fillStream(p, 0)
			b.SetBytes(benchWrite)
			b.ReportAllocs()
			const batch = 256 << 20 / benchWrite
			var tw, tr time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				t0 := time.Now()
				for range n {
					if _, err := s.Write(p); err != nil {
						b.Fatal(err)
					}
				}
				t1 := time.Now()
				for left := n * benchWrite; left > 0; {
					m, err := s.Read(q[:min(len(q), left)])
					if err != nil {
						b.Fatal(err)
					}
					left -= m
				}
				tw += t1.Sub(t0)
				tr += time.Since(t1)
				done += n
			}
			b.StopTimer()
			mb := float64(b.N) * benchWrite / 1e6
			b.ReportMetric(mb/tw.Seconds(), "write-MB/s")
			b.ReportMetric(mb/tr.Seconds(), "read-MB/s")
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return "read1MiB"
	}
	return "read64KiB"
}

// BenchmarkHandOff: a producer "reads a socket" (a copy from memory, as the
// kernel's) of 64 KiB into a buffer of its own and Writes it (copy), or into
// the room Buffer lends and Writes that (lent); the consumer reads it back.
func BenchmarkHandOff(b *testing.B) {
	const n = 64 << 10
	socket := make([]byte, n)
	fillStream(socket, 0)
	for _, lend := range []bool{false, true} {
		name := "copy"
		if lend {
			name = "lent"
		}
		b.Run(name, func(b *testing.B) {
			s := newSpool(b, Options{})
			own := make([]byte, n)
			q := make([]byte, 1<<20)
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				for left := n; left > 0; {
					p := own[:left]
					if lend {
						if l := s.Buffer(left); l != nil {
							p = l
						}
					}
					m := copy(p, socket[n-left:])
					if _, err := s.Write(p[:m]); err != nil {
						b.Fatal(err)
					}
					left -= m
				}
				if _, err := io.ReadFull(s, q[:n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

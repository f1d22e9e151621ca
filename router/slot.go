package router

import (
	"fmt"
	"strings"
	"sync"
)

// SlotCount is the number of hash slots of a Redis Cluster.
const SlotCount = 16384

// NoSlot is the slot of a command that has no key (see Keyless).
const NoSlot = -1

// crcTable is CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no
// reflection), the checksum Redis Cluster hashes keys with.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return c
}

// Slot returns the hash slot of key, as Redis Cluster computes it: CRC16 of
// the key modulo 16384, where a key holding a non-empty hash tag (the bytes
// between its first '{' and the first '}' after it) hashes only the tag. With
// no '}' after the first '{', or an empty tag ("{}"), the whole key is hashed.
func Slot(key []byte) int {
	for i, c := range key {
		if c == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						key = key[i+1 : j]
					}
					break
				}
			}
			break
		}
	}
	return int(crc16(key) & (SlotCount - 1))
}

// SlotString is Slot for a string key.
func SlotString(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var c uint16
	for k := 0; k < len(key); k++ {
		c = c<<8 ^ crcTable[byte(c>>8)^key[k]]
	}
	return int(c & (SlotCount - 1))
}

// tagAlphabet is what tags are made of: no braces, nothing a shell or a log
// line would mangle.
const tagAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

var tags struct {
	once sync.Once
	all  string                // every tag, concatenated
	end  [SlotCount + 1]uint32 // tag of slot s is all[end[s]:end[s+1]]
}

// TagForSlot returns a short string (1 to 3 characters of [0-9a-zA-Z]) whose
// slot is slot; "{"+TagForSlot(s)+"}" in a key therefore puts the key in slot
// s. The table of all 16384 tags is built on first use (about a millisecond)
// and shared; the result is the shortest such string, the first in the order
// of tagAlphabet, so it is stable across runs and versions. It panics if slot
// is not in [0, 16384), like an index out of range.
func TagForSlot(slot int) string {
	if slot < 0 || slot >= SlotCount {
		panic(fmt.Sprintf("router.TagForSlot: slot %d out of range [0, %d)", slot, SlotCount))
	}
	tags.once.Do(buildTags)
	return tags.all[tags.end[slot]:tags.end[slot+1]]
}

func buildTags() {
	var found [SlotCount]string
	left := SlotCount
	var buf [4]byte
	// Breadth-first over lengths: every tag is the shortest for its slot.
	var walk func(n, depth int)
	walk = func(n, depth int) {
		if left == 0 {
			return
		}
		if depth == n {
			s := Slot(buf[:n])
			if found[s] == "" {
				found[s] = string(buf[:n])
				left--
			}
			return
		}
		for i := 0; i < len(tagAlphabet) && left > 0; i++ {
			buf[depth] = tagAlphabet[i]
			walk(n, depth+1)
		}
	}
	for n := 1; n <= len(buf) && left > 0; n++ {
		walk(n, 0)
	}
	var b strings.Builder
	for s, t := range found {
		tags.end[s] = uint32(b.Len())
		b.WriteString(t)
	}
	tags.end[SlotCount] = uint32(b.Len())
	tags.all = b.String()
}

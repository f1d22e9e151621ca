package rdb

import "strconv"

// RDB value type bytes (the byte before the key of a record, and the first
// byte of a DUMP/RESTORE payload).
const (
	TypeString              byte = 0
	TypeList                byte = 1
	TypeSet                 byte = 2
	TypeZSet                byte = 3
	TypeHash                byte = 4
	TypeZSet2               byte = 5
	TypeModulePreGA         byte = 6
	TypeModule2             byte = 7
	TypeHashZipmap          byte = 9
	TypeListZiplist         byte = 10
	TypeSetIntset           byte = 11
	TypeZSetZiplist         byte = 12
	TypeHashZiplist         byte = 13
	TypeListQuicklist       byte = 14
	TypeStreamListpacks     byte = 15
	TypeHashListpack        byte = 16
	TypeZSetListpack        byte = 17
	TypeListQuicklist2      byte = 18
	TypeStreamListpacks2    byte = 19
	TypeSetListpack         byte = 20
	TypeStreamListpacks3    byte = 21
	TypeHashMetadataPreGA   byte = 22
	TypeHashListpackExPreGA byte = 23
	TypeHashMetadata        byte = 24
	TypeHashListpackEx      byte = 25
)

// Opcodes of the RDB stream.
const (
	opSlotInfo      = 244
	opFunction2     = 245
	opFunctionPreGA = 246
	opModuleAux     = 247
	opIdle          = 248
	opFreq          = 249
	opAux           = 250
	opResizeDB      = 251
	opExpireTimeMs  = 252
	opExpireTime    = 253
	opSelectDB      = 254
	opEOF           = 255
)

// Sub-opcodes of module values (RDB_MODULE_OPCODE_*).
const (
	modOpEOF    = 0
	modOpSInt   = 1
	modOpUInt   = 2
	modOpFloat  = 3
	modOpDouble = 4
	modOpString = 5
)

// MaxVersion is the newest RDB version this package reads (Redis 7.4).
const MaxVersion = 12

// HasFieldTTLs reports whether an object of type t is a hash with per-field
// TTLs (Redis 7.4+).
func HasFieldTTLs(t byte) bool { return t >= TypeHashMetadataPreGA && t <= TypeHashListpackEx }

// TypeName returns the Redis type of an RDB value type byte: "string",
// "list", "set", "zset", "hash", "stream" or "module"; "unknown" otherwise.
func TypeName(t byte) string {
	switch t {
	case TypeString:
		return "string"
	case TypeList, TypeListZiplist, TypeListQuicklist, TypeListQuicklist2:
		return "list"
	case TypeSet, TypeSetIntset, TypeSetListpack:
		return "set"
	case TypeZSet, TypeZSet2, TypeZSetZiplist, TypeZSetListpack:
		return "zset"
	case TypeHash, TypeHashZipmap, TypeHashZiplist, TypeHashListpack,
		TypeHashMetadataPreGA, TypeHashListpackExPreGA, TypeHashMetadata, TypeHashListpackEx:
		return "hash"
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return "stream"
	case TypeModulePreGA, TypeModule2:
		return "module"
	}
	return "unknown"
}

// MinVersion returns the lowest RDB version that knows the value type byte t
// (so a RESTORE payload of that type can only go to a target whose RDB
// version is at least this), or 0 for a byte that is no value type.
func MinVersion(t byte) int {
	switch {
	case t <= TypeHash:
		return 1
	case t == TypeZSet2 || t == TypeModulePreGA || t == TypeModule2:
		return 8 // Redis 4.0
	case t >= TypeHashZipmap && t <= TypeZSetZiplist:
		return 2 // Redis 2.4
	case t == TypeHashZiplist:
		return 4 // Redis 2.6
	case t == TypeListQuicklist:
		return 7 // Redis 3.2
	case t == TypeStreamListpacks:
		return 9 // Redis 5.0
	case t >= TypeHashListpack && t <= TypeStreamListpacks2:
		return 10 // Redis 7.0
	case t == TypeSetListpack || t == TypeStreamListpacks3:
		return 11 // Redis 7.2
	case t >= TypeHashMetadataPreGA && t <= TypeHashListpackEx:
		return 12 // Redis 7.4
	}
	return 0
}

func isValueType(t byte) bool { return MinVersion(t) != 0 }

// Kind tells what a Record holds.
type Kind uint8

const (
	KindKey       Kind = iota + 1 // a key and its value
	KindAux                       // AUX field: Aux[0]=name, Aux[1]=value
	KindFunction                  // FUNCTION2: Code holds the library source
	KindModuleAux                 // module auxiliary data: ModuleID, Value=raw bytes
	KindSelectDB                  // SELECTDB: DB holds the new db number
	KindResizeDB                  // RESIZEDB: DBSize, ExpiresSize
	KindSlotInfo                  // SLOT_INFO: Slot, SlotSize, SlotExpiresSize
)

// AuxKeep names an AUX field ferry's scan reader writes into the snapshot
// it builds, one per key of the snapshot's db (the db of the SELECTDB
// before it, Record.DB) that the snapshot does not hold but the stream
// after it writes (a value too big to DUMP, read in pieces): a consumer
// that deletes what a snapshot does not hold must keep it. Any other RDB
// reader (Redis itself) ignores an AUX field it does not know.
const AuxKeep = "ferry-keep"

// Keep returns the key an AuxKeep field names, in the db rec.DB.
func (rec *Record) Keep() (key []byte, ok bool) {
	if rec.Kind != KindAux || string(rec.Aux[0]) != AuxKeep {
		return nil, false
	}
	return rec.Aux[1], true
}

func (k Kind) String() string {
	switch k {
	case KindKey:
		return "key"
	case KindAux:
		return "aux"
	case KindFunction:
		return "function"
	case KindModuleAux:
		return "module-aux"
	case KindSelectDB:
		return "selectdb"
	case KindResizeDB:
		return "resizedb"
	case KindSlotInfo:
		return "slotinfo"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

const moduleNameCharset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// ModuleTypeName decodes the 9-character module type name from a 64-bit
// module type id (the low 10 bits are the encoding version).
func ModuleTypeName(id uint64) string {
	var name [9]byte
	id >>= 10
	for i := 8; i >= 0; i-- {
		name[i] = moduleNameCharset[id&63]
		id >>= 6
	}
	return string(name[:])
}

package filter

// Type bits.
const (
	tString uint8 = 1 << iota
	tList
	tSet
	tZSet
	tHash
	tStream
	tModule

	tAll = tString | tList | tSet | tZSet | tHash | tStream | tModule
)

var typeNames = [...]string{"string", "list", "set", "zset", "hash", "stream", "module"}

// typeBit is the bit of a type name; 0 for an unknown name.
func typeBit(name string) uint8 {
	for i, n := range typeNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// shape says what to do with a command whose keys are on both sides of the
// key rules.
type shape uint8

const (
	shapeTogether shape = iota // refuse
	shapeSplit                 // keep the allowed keys (step 1, or 2 with values)
	shapeStore                 // destination(s) written from the other keys
	shapeMove                  // Keys[0] → Keys[1]
)

// info is what the filter knows of a command beyond router's key positions.
type info struct {
	typ       uint8 // the data type it writes; 0 = generic
	in        uint8 // stores: the types it may read
	shape     shape
	step      uint8 // shapeSplit: arguments per key
	destLast  bool  // shapeStore: the destinations are Keys[1:] (SORT, GEORADIUS), not Keys[0]
	overwrite bool  // it replaces its destination whatever that key's type
}

// commands maps router's canonical names to what the filter must know. A
// command not in it is generic, with keys that stay together.
var commands = map[string]info{
	// generic
	"DEL":         {shape: shapeSplit, step: 1},
	"UNLINK":      {shape: shapeSplit, step: 1},
	"TOUCH":       {shape: shapeSplit, step: 1},
	"EXISTS":      {shape: shapeSplit, step: 1},
	"RENAME":      {shape: shapeMove},
	"RENAMENX":    {shape: shapeMove},
	"COPY":        {shape: shapeMove},
	"SORT":        {typ: tList, in: tList | tSet | tZSet, shape: shapeStore, destLast: true, overwrite: true},
	"BITOP":       {typ: tString, in: tString, shape: shapeStore, overwrite: true},
	"PFMERGE":     {typ: tString, in: tString, shape: shapeStore},
	"SET":         {typ: tString, overwrite: true},
	"SETEX":       {typ: tString, overwrite: true},
	"PSETEX":      {typ: tString, overwrite: true},
	"MSET":        {typ: tString, shape: shapeSplit, step: 2, overwrite: true},
	"MSETNX":      {typ: tString, shape: shapeSplit, step: 2},
	"APPEND":      {typ: tString},
	"DECR":        {typ: tString},
	"DECRBY":      {typ: tString},
	"INCR":        {typ: tString},
	"INCRBY":      {typ: tString},
	"INCRBYFLOAT": {typ: tString},
	"GETDEL":      {typ: tString},
	"GETEX":       {typ: tString},
	"GETSET":      {typ: tString},
	"SETNX":       {typ: tString},
	"SETRANGE":    {typ: tString},
	"SETBIT":      {typ: tString},
	"BITFIELD":    {typ: tString},
	"PFADD":       {typ: tString},
	"PFCOUNT":     {typ: tString},
	"PFDEBUG":     {typ: tString},

	"LPUSH":      {typ: tList},
	"RPUSH":      {typ: tList},
	"LPUSHX":     {typ: tList},
	"RPUSHX":     {typ: tList},
	"LINSERT":    {typ: tList},
	"LSET":       {typ: tList},
	"LREM":       {typ: tList},
	"LTRIM":      {typ: tList},
	"LPOP":       {typ: tList},
	"RPOP":       {typ: tList},
	"BLPOP":      {typ: tList},
	"BRPOP":      {typ: tList},
	"LMPOP":      {typ: tList},
	"BLMPOP":     {typ: tList},
	"LMOVE":      {typ: tList, shape: shapeMove},
	"BLMOVE":     {typ: tList, shape: shapeMove},
	"RPOPLPUSH":  {typ: tList, shape: shapeMove},
	"BRPOPLPUSH": {typ: tList, shape: shapeMove},

	"SADD":        {typ: tSet},
	"SREM":        {typ: tSet},
	"SPOP":        {typ: tSet},
	"SMOVE":       {typ: tSet, shape: shapeMove},
	"SDIFFSTORE":  {typ: tSet, in: tSet, shape: shapeStore, overwrite: true},
	"SINTERSTORE": {typ: tSet, in: tSet, shape: shapeStore, overwrite: true},
	"SUNIONSTORE": {typ: tSet, in: tSet, shape: shapeStore, overwrite: true},

	"ZADD":              {typ: tZSet},
	"ZINCRBY":           {typ: tZSet},
	"ZREM":              {typ: tZSet},
	"ZREMRANGEBYLEX":    {typ: tZSet},
	"ZREMRANGEBYRANK":   {typ: tZSet},
	"ZREMRANGEBYSCORE":  {typ: tZSet},
	"ZPOPMIN":           {typ: tZSet},
	"ZPOPMAX":           {typ: tZSet},
	"BZPOPMIN":          {typ: tZSet},
	"BZPOPMAX":          {typ: tZSet},
	"ZMPOP":             {typ: tZSet},
	"BZMPOP":            {typ: tZSet},
	"ZUNIONSTORE":       {typ: tZSet, in: tSet | tZSet, shape: shapeStore, overwrite: true},
	"ZINTERSTORE":       {typ: tZSet, in: tSet | tZSet, shape: shapeStore, overwrite: true},
	"ZDIFFSTORE":        {typ: tZSet, in: tSet | tZSet, shape: shapeStore, overwrite: true},
	"ZRANGESTORE":       {typ: tZSet, in: tZSet, shape: shapeStore, overwrite: true},
	"GEOADD":            {typ: tZSet},
	"GEOSEARCHSTORE":    {typ: tZSet, in: tZSet, shape: shapeStore, overwrite: true},
	"GEORADIUS":         {typ: tZSet, in: tZSet, shape: shapeStore, destLast: true, overwrite: true},
	"GEORADIUSBYMEMBER": {typ: tZSet, in: tZSet, shape: shapeStore, destLast: true, overwrite: true},

	"HSET":         {typ: tHash},
	"HMSET":        {typ: tHash},
	"HSETNX":       {typ: tHash},
	"HDEL":         {typ: tHash},
	"HINCRBY":      {typ: tHash},
	"HINCRBYFLOAT": {typ: tHash},
	"HEXPIRE":      {typ: tHash},
	"HEXPIREAT":    {typ: tHash},
	"HPEXPIRE":     {typ: tHash},
	"HPEXPIREAT":   {typ: tHash},
	"HPERSIST":     {typ: tHash},

	"XADD":                  {typ: tStream},
	"XACK":                  {typ: tStream},
	"XAUTOCLAIM":            {typ: tStream},
	"XCLAIM":                {typ: tStream},
	"XDEL":                  {typ: tStream},
	"XSETID":                {typ: tStream},
	"XTRIM":                 {typ: tStream},
	"XREADGROUP":            {typ: tStream},
	"XGROUP CREATE":         {typ: tStream},
	"XGROUP CREATECONSUMER": {typ: tStream},
	"XGROUP DELCONSUMER":    {typ: tStream},
	"XGROUP DESTROY":        {typ: tStream},
	"XGROUP SETID":          {typ: tStream},
}

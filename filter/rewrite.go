package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/router"
)

// Rewrite decides what becomes of one stream command run in source db db
// (the db the stream has SELECTed, before db_map). It returns the command to
// send (args itself unless rewritten; a rewrite shares the argument bytes
// with args and never writes into args), the decision, and for Drop and
// Refuse the reason: a constant (WhyDB, WhyKey, WhyType, WhyCommand) for
// Drop, one line naming the command, its keys and a remedy for Refuse. See
// the package documentation for the rules.
//
// Rewrite parses args with router's built-in table; the applier, which has
// parsed the command already, calls RewriteCommand.
func (f *Filter) Rewrite(db int, args [][]byte) ([][]byte, Decision, string) {
	if f == nil || len(args) == 0 {
		return args, Apply, ""
	}
	c, _ := router.Parse(args)
	return f.rewrite(db, &c)
}

// RewriteCommand is Rewrite for a command parsed already (with any table:
// a learned command carries its type and flags). It returns c itself unless
// the command was rewritten; a rewrite is a new command (DEL, SREM, SADD,
// LPOP, RPOP, or c's command with some of its keys) parsed with router's
// built-in table.
//
// SELECT, MULTI, EXEC, PING and REPLCONF (router.Control) always Apply.
// RewriteCommand allocates only to rewrite or refuse.
func (f *Filter) RewriteCommand(db int, c *router.Command) (*router.Command, Decision, string) {
	if f == nil || len(c.Args) == 0 {
		return c, Apply, ""
	}
	out, d, why := f.rewrite(db, c)
	if d != Apply || len(out) == len(c.Args) && &out[0] == &c.Args[0] {
		return c, d, why
	}
	rc, err := router.Parse(out)
	if err != nil {
		return nil, Refuse, fmt.Sprintf("%s rewritten by the filter: %v", c.Name, err)
	}
	return &rc, Apply, ""
}

func (f *Filter) rewrite(db int, c *router.Command) ([][]byte, Decision, string) {
	args := c.Args
	if c.Has(router.Control) {
		return args, Apply, ""
	}
	if err := c.Err(); err != nil {
		return f.unparsed(db, args, err)
	}
	if f.cmdRules && !f.commandAllowed(args, strings.IndexByte(c.Name, ' ') >= 0) {
		return nil, Drop, WhyCommand
	}
	// The shard channel of SPUBLISH is no key of the keyspace.
	if c.Kind == router.Keyless || c.Has(router.Channel) {
		return f.keyless(db, c)
	}
	if !f.dbRules && !f.keyRules && !f.typeRules {
		return args, Apply, ""
	}
	if c.Name == "MOVE" {
		return f.move(db, c)
	}
	in := infoOf(c)
	if in.destLast && len(c.Keys) == 1 {
		in = info{} // SORT or GEORADIUS without STORE: a read
	}
	if f.typeRules {
		typ, overwrite := in.typ, in.overwrite
		if c.Name == "RESTORE" || c.Name == "RESTORE-ASKING" {
			typ, overwrite = restoreType(args)
		}
		if typ != 0 && f.types&typ == 0 {
			if overwrite {
				return f.delDests(db, c, in)
			}
			return nil, Drop, WhyType
		}
		if typ != 0 && in.shape == router.ShapeStore && len(c.Keys) > 1 && in.in&^f.types != 0 {
			return nil, Refuse, fmt.Sprintf("%s may read %s keys, which the types filter does not copy, into a %s it copies: "+
				"the target cannot compute it; copy %s keys too (types) or ignore %s (block_commands)",
				c.Name, typeList(in.in&^f.types), typeList(typ), typeList(in.in&^f.types), lower(c.Name))
		}
	}
	if !f.dbRules && !f.keyRules {
		return args, Apply, ""
	}
	return f.keys(db, c, in)
}

// info is what the filter reads of a command's table entry.
type info struct {
	typ       router.DataType // the data type it writes; 0 = generic
	in        router.DataType // stores: the types it may read
	shape     router.Shape
	destLast  bool // ShapeStore: the destinations are Keys[1:] (SORT, GEORADIUS), not Keys[0]
	overwrite bool // it replaces its destination whatever that key's type
}

func infoOf(c *router.Command) info {
	return info{typ: c.Type(), in: c.Reads(), shape: c.Shape(), destLast: c.Has(router.DestLast), overwrite: c.Has(router.Overwrite)}
}

// eq compares b with an upper-case ASCII word, case-insensitively.
func eq(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// commandAllowed applies commands and block_commands: an entry names a
// command ("xgroup": every subcommand) or one subcommand ("xgroup|create").
func (f *Filter) commandAllowed(args [][]byte, sub bool) bool {
	var buf [80]byte
	full := appendLower(buf[:0], args[0])
	n := len(full)
	if sub = sub && len(args) > 1; sub {
		full = appendLower(append(full, '|'), args[1])
	}
	name := full[:n]
	if f.blockCmds[string(name)] || sub && f.blockCmds[string(full)] {
		return false
	}
	if f.cmds != nil && !f.cmds[string(name)] && !(sub && f.cmds[string(full)]) {
		return false
	}
	return true
}

// unparsed handles what router cannot parse: commands it does not know
// (modules) and malformed ones.
func (f *Filter) unparsed(db int, args [][]byte, err error) ([][]byte, Decision, string) {
	unknown := errors.Is(err, router.ErrUnknownCommand)
	if f.cmdRules && !f.commandAllowed(args, len(args) > 1) {
		return nil, Drop, WhyCommand
	}
	if unknown && f.typeRules && f.types&tModule == 0 {
		return nil, Drop, WhyType
	}
	if f.keyRules {
		if unknown {
			return nil, Refuse, fmt.Sprintf("unknown command %s (a module's?): ferry cannot tell its keys, so it cannot apply the key filter (prefixes, regex) to it; "+
				"ignore it with block_commands = [%q], or remove the key rules", quote(args[0]), string(appendLower(nil, args[0])))
		}
		return nil, Refuse, fmt.Sprintf("cannot find the keys of %s to filter them: %v", quote(args[0]), err)
	}
	if !f.DB(db) {
		return nil, Drop, WhyDB
	}
	return args, Apply, ""
}

func (f *Filter) keyless(db int, c *router.Command) ([][]byte, Decision, string) {
	switch c.Name {
	case "FLUSHDB":
		if !f.DB(db) {
			return nil, Drop, WhyDB
		}
	case "FLUSHALL":
		if f.dbRules {
			return nil, Refuse, `FLUSHALL with a db filter (dbs, block_dbs) would also empty the target's dbs that the job does not copy into; ` +
				`ignore it with block_commands = ["flushall"], or remove the db rules`
		}
	case "SWAPDB":
		a, errA := strconv.Atoi(string(c.Args[1]))
		b, errB := strconv.Atoi(string(c.Args[2]))
		if errA != nil || errB != nil {
			break // the target refuses it as the source would have
		}
		switch okA, okB := f.DB(a), f.DB(b); {
		case !okA && !okB:
			return nil, Drop, WhyDB
		case okA != okB:
			in, out := a, b
			if okA {
				in, out = b, a
			}
			return nil, Refuse, fmt.Sprintf("SWAPDB %d %d: db %d is not copied, so the target cannot bring its data into db %d, which is; "+
				"copy both dbs, or ignore it with block_commands = [\"swapdb\"]", a, b, in, out)
		}
	}
	return c.Args, Apply, ""
}

// restoreType reads the type of a RESTORE's payload (its first byte) and
// whether it has REPLACE.
func restoreType(args [][]byte) (typ router.DataType, replace bool) {
	if len(args) < 4 || len(args[3]) == 0 {
		return 0, false
	}
	typ = typeBit(rdb.TypeName(args[3][0]))
	for _, a := range args[4:] {
		if eq(a, "REPLACE") {
			replace = true
		}
	}
	return typ, replace
}

// dests are the indexes into c.Keys of the keys the command writes whatever
// they held.
func dests(c *router.Command, in info) (from, to int) {
	switch {
	case in.shape == router.ShapeSplit:
		return 0, len(c.Keys)
	case in.shape == router.ShapeStore && in.destLast:
		return 1, len(c.Keys)
	}
	return 0, 1
}

var bDEL = []byte("DEL")

// delDests turns a command that overwrote its destination(s) with a type
// that is not copied into a DEL of the copied ones.
func (f *Filter) delDests(db int, c *router.Command, in info) ([][]byte, Decision, string) {
	from, to := dests(c, in)
	var out [][]byte
	for _, k := range c.Keys[from:to] {
		if f.Key(db, c.Args[k]) {
			if out == nil {
				out = append(make([][]byte, 0, 1+to-from), bDEL)
			}
			out = append(out, c.Args[k])
		}
	}
	if out == nil {
		return nil, Drop, WhyType
	}
	return out, Apply, ""
}

// keys applies the db and key rules to a keyed command.
func (f *Filter) keys(db int, c *router.Command, in info) ([][]byte, Decision, string) {
	dstDB := db
	if c.Name == "COPY" {
		dstDB = argDB(c, db)
	}
	ok := func(i int) bool {
		if i == 1 && dstDB != db {
			return f.Key(dstDB, c.Args[c.Keys[i]])
		}
		return f.Key(db, c.Args[c.Keys[i]])
	}
	n := 0
	for i := range c.Keys {
		if ok(i) {
			n++
		}
	}
	switch {
	case n == len(c.Keys):
		return c.Args, Apply, ""
	case n == 0:
		if !f.DB(db) {
			return nil, Drop, WhyDB
		}
		return nil, Drop, WhyKey
	}
	switch in.shape {
	case router.ShapeSplit:
		step := c.Step()
		first := c.Keys[0]
		out := make([][]byte, 0, first+n*step)
		out = append(out, c.Args[:first]...)
		for i, k := range c.Keys {
			if ok(i) {
				out = append(out, c.Args[k:k+step]...)
			}
		}
		return out, Apply, ""
	case router.ShapeStore:
		from, to := dests(c, in)
		for i := from; i < to; i++ {
			if ok(i) {
				return nil, Refuse, fmt.Sprintf("%s writes %s, which is copied, from %s, which is not: the target cannot compute it; "+
					"copy every key it reads too, or ignore it with block_commands = [%q]",
					c.Name, quote(c.Args[c.Keys[i]]), quote(c.Args[c.Keys[firstNot(ok, len(c.Keys))]]), lower(c.Name))
			}
		}
		return nil, Drop, WhyKey
	case router.ShapeMove:
		return f.moveKeys(c, ok(0), ok(1))
	}
	return nil, Refuse, fmt.Sprintf("%s on %s, which is copied, and %s, which is not: applying it, or part of it, would leave the target wrong; "+
		"copy all its keys, or ignore it with block_commands = [%q]",
		c.Name, quote(c.Args[c.Keys[firstOK(ok, len(c.Keys))]]), quote(c.Args[c.Keys[firstNot(ok, len(c.Keys))]]), lower(c.Name))
}

func firstOK(ok func(int) bool, n int) int {
	for i := 0; i < n; i++ {
		if ok(i) {
			return i
		}
	}
	return 0
}

func firstNot(ok func(int) bool, n int) int {
	for i := 0; i < n; i++ {
		if !ok(i) {
			return i
		}
	}
	return 0
}

var (
	bSREM = []byte("SREM")
	bSADD = []byte("SADD")
	bLPOP = []byte("LPOP")
	bRPOP = []byte("RPOP")
)

// moveKeys handles a move (Keys[0] → Keys[1]) with one side copied.
func (f *Filter) moveKeys(c *router.Command, srcOK, dstOK bool) ([][]byte, Decision, string) {
	src, dst := c.Args[c.Keys[0]], c.Args[c.Keys[1]]
	if srcOK {
		switch c.Name {
		case "RENAME", "RENAMENX":
			return [][]byte{bDEL, src}, Apply, ""
		case "SMOVE":
			return [][]byte{bSREM, src, c.Args[3]}, Apply, ""
		case "LMOVE", "BLMOVE":
			if eq(c.Args[3], "LEFT") {
				return [][]byte{bLPOP, src}, Apply, ""
			}
			return [][]byte{bRPOP, src}, Apply, ""
		case "RPOPLPUSH", "BRPOPLPUSH":
			return [][]byte{bRPOP, src}, Apply, ""
		case "COPY":
			return nil, Drop, WhyKey
		}
	} else if dstOK && c.Name == "SMOVE" {
		return [][]byte{bSADD, dst, c.Args[3]}, Apply, ""
	}
	return nil, Refuse, fmt.Sprintf("%s %s → %s: the destination is copied but the source is not, so the target does not have the value; "+
		"copy %s too, or ignore it with block_commands = [%q]", c.Name, quote(src), quote(dst), quote(src), lower(c.Name))
}

// move is MOVE key db: the key leaves db for another one.
func (f *Filter) move(db int, c *router.Command) ([][]byte, Decision, string) {
	key := c.Args[1]
	to := argDB(c, db) // unreadable: the target refuses it as the source would have
	srcOK := f.Key(db, key)
	dstOK := f.Key(to, key)
	switch {
	case srcOK && dstOK:
		return c.Args, Apply, ""
	case srcOK:
		return [][]byte{bDEL, key}, Apply, ""
	case dstOK:
		return nil, Refuse, fmt.Sprintf("MOVE %s from db %d, which is not copied, into db %d, which is: the target does not have the value; "+
			"copy db %d too, or ignore it with block_commands = [\"move\"]", quote(key), db, to, db)
	}
	if !f.DB(db) {
		return nil, Drop, WhyDB
	}
	return nil, Drop, WhyKey
}

// argDB is the db a MOVE or COPY ... DB n names (router.Command.DBArgs),
// db when it names none or an unreadable one.
func argDB(c *router.Command, db int) int {
	if p := c.DBArgs(); len(p) > 0 {
		if n, err := strconv.Atoi(string(c.Args[p[0]])); err == nil {
			return n
		}
	}
	return db
}

func typeList(bits router.DataType) string {
	var s []string
	for i, n := range typeNames {
		if bits&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	return strings.Join(s, "/")
}

func lower(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "|") }

// quote renders a key for a message: Go-quoted, cut at 64 bytes.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}

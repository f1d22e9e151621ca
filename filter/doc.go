// Package filter decides what a job copies: which snapshot keys, and what
// becomes of each command of the replication stream. It is pure: no network,
// no state but the compiled rules of a conf.Filter.
//
// The applier calls, per snapshot record,
//
//	f.Key(rec.DB, rec.Key) && f.Type(rdb.TypeName(rec.Type))
//
// and per stream command (SELECT, MULTI, EXEC, PING and REPLCONF handled
// before, or passed: they always Apply), with the source db the stream has
// selected and before db_map rewrites any argument,
//
//	out, d, why := f.RewriteCommand(db, cmd) // cmd: the *router.Command parsed once
//
// (Rewrite does the same for raw arguments, parsing them with router's
// built-in table.) What the filter knows of a command — the type it writes,
// the types a store reads, how its keys relate (router.Shape), whether it
// overwrites — is in router's command table, learned commands included.
//
// Apply sends out (args itself unless the command was rewritten), Drop skips
// the command (count it), Refuse means the command cannot be applied to the
// filtered target without corrupting it: stop the job with why, or with
// on_error = "skip" log why and skip it. A nil *Filter (New returns nil when
// no rule is set) allows everything, and Rewrite then costs a nil check.
// With rules, Rewrite does not allocate unless it rewrites or refuses.
//
// # Rules
//
// A key is copied when its db, its name and (snapshot) its type pass every
// rule set; an empty allow list allows everything, a block list wins over
// its allow list, and the kinds combine with AND (a key must pass the db
// rules and the prefix rules and the regex rules):
//
//   - dbs / block_dbs: the source db (before db_map).
//   - prefixes / block_prefixes: byte prefixes of the key.
//   - regex / block_regex: Go RE2, unanchored (use ^...$), on the key's bytes.
//   - types / block_types: string list set zset hash stream module.
//   - commands / block_commands: stream commands by name, case-insensitive;
//     "function" matches every FUNCTION subcommand, "function|load" only
//     FUNCTION LOAD. They apply to the source's command, before any rewrite
//     below (a RENAME turned into a DEL is allowed by "rename", not "del").
//     Commands ferry does not know (module commands) match by their name.
//
// # Stream commands
//
// Keyless commands pass the command rules only, except:
//
//   - FLUSHDB: dropped when its db is not copied.
//   - SWAPDB a b: applied when both dbs are copied, dropped when neither is,
//     refused when one is (it would bring a db that is not copied into one
//     that is).
//   - FLUSHALL: refused when a db rule is set, since it would also empty the
//     target's dbs that the job does not copy into; list "flushall" in
//     block_commands to ignore it. Without db rules it is applied.
//
// FLUSHDB and FLUSHALL empty whole target dbs, key rules or not: keys the
// filter does not copy go too (as without a filter, keys that only the
// target has are lost). Block them when a target db also holds other data.
//
// A command with one key is applied when the key is copied, dropped when not.
// Commands with several keys on both sides of the filter:
//
//   - DEL, UNLINK, TOUCH, EXISTS, MSET, MSETNX: keep the copied keys (with
//     MSET/MSETNX their values): DEL a x b → DEL a b when x is not copied.
//   - Moves, where the first key is the source and the second the
//     destination, are rewritten into what they do to the copied side:
//     RENAME/RENAMENX a x → DEL a; SMOVE a x m → SREM a m; SMOVE x b m →
//     SADD b m; LMOVE/BLMOVE a x LEFT|RIGHT … → LPOP|RPOP a;
//     RPOPLPUSH/BRPOPLPUSH a x → RPOP a; COPY a x → dropped; MOVE a db → DEL a
//     when db is not copied. A move into a copied key from a key that is not
//     copied (RENAME x b, LMOVE x b, COPY x b, MOVE into a copied db) is
//     refused: the target does not have the value.
//   - Stores, which write a destination from source keys (SINTERSTORE,
//     SUNIONSTORE, SDIFFSTORE, ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE,
//     ZRANGESTORE, GEOSEARCHSTORE, GEORADIUS[BYMEMBER] … STORE, SORT … STORE,
//     BITOP, PFMERGE): dropped when the destination is not copied (only it
//     changes), refused when it is and a source key is not.
//   - Anything else with keys on both sides (EVAL/FCALL with keys, LMPOP,
//     BLPOP, XREADGROUP …) is refused.
//
// Every rewrite above is exact when the target holds exactly the copied keys
// of the source, which is what a filtered job maintains.
//
// A types rule also acts on the stream: a command of one data type (SET,
// LPUSH, HSET, XADD …) whose type is not copied is dropped, and when it may
// overwrite a key of another type (SET, SETEX, PSETEX, MSET, the stores above,
// RESTORE … REPLACE, whose type is read from its payload) it becomes a DEL
// of its destination(s), which the source now holds as a type that is not
// copied. A store that may read a type that is not copied into a type that is
// (ZUNIONSTORE and friends read sets; SORT … STORE reads lists, sets and
// zsets) is refused. Commands ferry does not know count as type "module";
// a command learned from the source's COMMAND reply has the type of its ACL
// category (@hash...), or "module" for a module's command, and its keys are
// filtered like any other's.
// Generic commands (DEL, EXPIRE, RENAME, COPY, MOVE …) carry no type: when
// their key's type is not copied the target does not have the key, so they do
// nothing there, except RENAME, which the target refuses ("no such key";
// on_error decides).
//
// Unknown commands (modules) and malformed ones are refused when a key rule
// is set, since their keys cannot be found; with db rules only they follow
// their db.
package filter

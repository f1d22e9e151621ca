// Package shake translates a RedisShake v4 configuration file (shake.toml)
// into a ferry job file, for ferry config import.
//
// Translate reads the file's sections — one reader ([sync_reader],
// [scan_reader], [rdb_reader] or [aof_reader]), [redis_writer], [filter],
// [advanced] and [module] — and writes the ferry settings that do the same,
// as TOML text with a comment naming the RedisShake key behind each line.
// What it cannot translate, or translates with a different meaning, it
// returns as Notes, one line each, rather than guessing:
//
//   - reader kinds: sync_reader becomes reader = "psync", scan_reader
//     reader = "scan", rdb_reader the rdb import, aof_reader the aof import;
//     cluster needs no key (ferry finds out);
//   - passwords are not copied: a literal password becomes a reference to
//     $FERRY_SOURCE_PASSWORD / $FERRY_TARGET_PASSWORD, with a note, so that
//     the job file holds no secret; a ${VAR} reference is kept as it is;
//   - key filters: prefixes stay prefixes; suffixes, exact keys and a mix of
//     kinds become regular expressions, because RedisShake allows a key that
//     matches any allow rule while ferry's rule kinds combine with AND;
//   - rdb_restore_command_behavior and empty_db_before_sync become
//     target_nonempty; target_redis_proto_max_bulk_len = 0 becomes
//     restore = "never"; status_port becomes a loopback status_addr;
//   - the Lua function, command groups other than the data types (and
//     SCRIPTING, PUBSUB), aws_psync, ncpu, log_file, try_diskless, the
//     AOF timestamp and the [module] settings have no ferry equivalent:
//     each one set gives a Note.
//
// RedisShake runs envsubst over its file before parsing it; a $VAR or
// ${VAR} inside a string is kept as a ferry ${VAR} reference, which ferry
// expands when it loads the job. Non-string values must be written out.
//
// The package reads and writes text only: it opens no file and imports
// nothing of ferry but conf (for address syntax).
package shake

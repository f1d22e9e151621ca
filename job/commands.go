package job

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/source"
	"github.com/ferry-dev/ferry/target"
)

// commandInfo is what the job learned of the servers' commands at start.
type commandInfo struct {
	// table parses the source's commands: the built-in table, extended from
	// the source's COMMAND reply (a module's commands, a newer server's)
	// when the source answers it.
	table *router.Table
	// known are the commands the target knows (nil: it did not say; every
	// command is sent and the target judges).
	known *router.Known
}

// commandReply asks a server for COMMAND (all its commands, RESP2).
func commandReply(ctx context.Context, c *redis.Client) ([]any, error) {
	return c.Do(ctx, "COMMAND").Slice()
}

// sourceCommands learns the source's commands from the master of its first
// shard (the shards of one deployment run one version and one set of
// modules). A source that forbids or renames COMMAND leaves the built-in
// table, with one log line.
func (j *job) sourceCommands(ctx context.Context, src *source.Source) *router.Table {
	base := router.Builtin()
	if len(src.Shards) == 0 {
		return base
	}
	get := src.Shards[0].Master
	if get == nil {
		get = src.Shards[0].Resolve
	}
	o, err := get(ctx)
	if err != nil {
		j.log.Warn().Err(err).Msg("source: cannot ask the source for its commands (COMMAND); using the built-in command table")
		return base
	}
	c := redis.NewClient(ctl.Options(o, "ferry-ctl-0", 0))
	defer c.Close()
	reply, err := commandReply(ctx, c)
	if err == nil {
		var t *router.Table
		if t, err = router.Learn(base, reply); err == nil {
			if n := t.Learned(); n > 0 {
				j.log.Info().Int("commands", n).Msg("source has commands the built-in table lacks; they route by the key specifications it gave")
			}
			j.warnMissingWrites(reply)
			return t
		}
	}
	j.log.Warn().Str("reason", fmt.Sprint(err)).Msg("source does not describe its commands (COMMAND); using the built-in command table")
	return base
}

// targetCommands reads which commands the target knows (one master: the
// masters of a cluster run one version and one set of modules). A target
// that forbids COMMAND is sent every command, with one log line.
func (j *job) targetCommands(ctx context.Context, tgt target.Target) *router.Known {
	ns := tgt.Nodes()
	if len(ns) == 0 {
		return nil
	}
	reply, err := commandReply(ctx, ns[0].Ctl)
	if err == nil {
		var k *router.Known
		if k, err = router.KnownCommands(reply); err == nil && k.Len() > 0 {
			return k
		}
	}
	j.log.Warn().Str("reason", fmt.Sprint(err)).Msg("target does not list its commands (COMMAND); commands it does not know fail when applied")
	return nil
}

// builtinCommands is the table of a job that has not heard from its source
// (yet, or at all: an RDB import).
func builtinCommands() *router.Table { return router.Builtin() }

// warnMissingWrites says once, at the start, which write commands the
// source knows and the target does not: the stream may carry them, and one
// that it does stops the job (or is skipped, on_error = skip). Whether the
// application uses them cannot be known before it does.
func (j *job) warnMissingWrites(sourceReply []any) {
	if j.warnedMissing {
		return
	}
	srcKnown, err := router.KnownCommands(sourceReply)
	if err != nil {
		return
	}
	m := srcKnown.MissingWrites(j.cmds.known)
	if len(m) == 0 {
		return
	}
	j.warnedMissing = true
	j.log.Warn().Int("count", len(m)).Strs("commands", m[:min(len(m), 20)]).
		Msg("the source knows write commands the target does not: a stream that carries one stops the job (upgrade the target, leave them out with filter.block_commands, or on_error = \"skip\")")
}

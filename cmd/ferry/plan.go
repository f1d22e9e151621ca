package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/source"
)

// cmdPlan prints how N processes split a cluster source (shards I/N): for
// each, the source shards it takes, as the processes themselves will
// compute it.
func cmdPlan(args []string, stdout, stderr io.Writer) error {
	f := newJobFlags("plan", "Print which source shards each of --processes N processes takes with shards I/N (--shards I/N):\n"+
		"the masters of the source cluster in the order of their lowest slot, shard k to process k mod N.\n"+
		"Exit 0 with the plan, 1 when the source cannot be read, 2 on bad usage.", stderr)
	f.stdout = stdout
	processes := f.fs.Int("processes", 0, "the number of processes N that split the source (required)")
	jc, err := f.load(args, conf.ModeSync)
	if err != nil {
		return err
	}
	if *processes < 1 || *processes > 1024 {
		return usageError{errors.New("plan: --processes N is required, 1 to 1024")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plan, err := source.Plan(ctx, source.Config{Endpoint: jc.Source, Shards: jc.Shards}, *processes)
	if err != nil {
		return err
	}
	total := 0
	for i, shards := range plan {
		fmt.Fprintf(stdout, "process %d/%d (--shards %d/%d): %d shard(s)\n", i, *processes, i, *processes, len(shards))
		for _, sh := range shards {
			var rs []string
			n := 0
			for _, r := range sh.Slots {
				n += r[1] - r[0] + 1
				if r[0] == r[1] {
					rs = append(rs, fmt.Sprint(r[0]))
				} else {
					rs = append(rs, fmt.Sprintf("%d-%d", r[0], r[1]))
				}
			}
			fmt.Fprintf(stdout, "  %s  slots %s (%d)\n", sh.Master.Addr, strings.Join(rs, ","), n)
			total++
		}
	}
	if total < *processes {
		fmt.Fprintf(stdout, "note: %d processes for %d shards: %d process(es) would have nothing to read and exit 1\n", *processes, total, *processes-total)
	}
	return nil
}

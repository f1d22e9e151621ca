package status

import "time"

// Rates turns a job's two running counts into rates a second: ops, the
// commands its targets acknowledged (a run that fold joined counts once),
// and commands, the source's commands applied. The progress line and
// /status show both, since under runs of pushes the first can be a
// hundredth of the second. A count that went back (a job that starts
// again by itself counts with new writers) starts them again from there.
// Not safe for concurrent use: its owner serializes the samples.
type Rates struct {
	at                    time.Time
	ops, commands         int64
	opsRate, commandsRate float64
}

// Start makes the first rates the averages since now.
func (r *Rates) Start(now time.Time) { *r = Rates{at: now} }

// Sample takes the counts at now and returns the rates, computed again
// only once at least every has passed since the sample they came from:
// a status polled twice in a millisecond shows no noise.
func (r *Rates) Sample(now time.Time, ops, commands int64, every time.Duration) (opsRate, commandsRate float64) {
	switch d := now.Sub(r.at); {
	case r.at.IsZero() || ops < r.ops || commands < r.commands:
		*r = Rates{at: now, ops: ops, commands: commands}
	case d >= every && d > 0:
		r.opsRate = float64(ops-r.ops) / d.Seconds()
		r.commandsRate = float64(commands-r.commands) / d.Seconds()
		r.at, r.ops, r.commands = now, ops, commands
	}
	return r.opsRate, r.commandsRate
}

// The names of ferry's own keys on a target: markers, probes, leases.

package writer

import (
	"bytes"
	"fmt"

	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/router"
)

// OwnPrefix marks keys that belong to ferry itself on a target.
const OwnPrefix = "__ferry:"

// OwnKey reports whether key has the name of one of job's own keys on a
// target — its marker (__ferry:<job>:pos), a cluster slot or stream marker
// (__ferry:{tag}:<job>[:sN]), its probe — so that a source key of that name
// would be overwritten by ferry and later deleted. Other keys under
// __ferry: (another job's markers on a source that is itself a target) are
// carried like any key.
func OwnKey(job string, key []byte) bool {
	rest, ok := bytes.CutPrefix(key, []byte(OwnPrefix))
	if !ok {
		return false
	}
	if len(rest) > 0 && rest[0] == '{' {
		i := bytes.IndexByte(rest, '}')
		if i < 0 || i+1 >= len(rest) || rest[i+1] != ':' {
			return false
		}
		rest = rest[i+2:]
	}
	name, more := bytes.CutPrefix(rest, []byte(job))
	return more && (len(name) == 0 || name[0] == ':')
}

// OwnKeyError is the refusal of a source key that has the name of one of the
// job's own keys.
func OwnKeyError(job string, db int, key []byte) error {
	return fault.PermanentErr("", "", "rename the key on the source, run the job under another name (job), or leave the key out with a key filter",
		fmt.Errorf("source key %q (db %d) has the name of a key ferry keeps for job %q on the target: copied, it would be overwritten and then deleted", router.Clip(key), db, job))
}

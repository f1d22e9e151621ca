#!/usr/bin/env bash
# make demo: a local source and target, a filled source, a live sync under
# write load, and the proof that both sides hold the same data (ferry verify).
# DEMO_PORT (default 26379) is the first port tried; DEMO_KEYS sizes the data.
# Everything, ferry's own files included, lives in a temp dir removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=${FERRY:-bin/ferry}
KEYS=${DEMO_KEYS:-20000}
dir=$(mktemp -d -t ferry-demo.XXXXXX)
pids=()
cleanup() {
	[ -n "${ferry_pid:-}" ] && kill "$ferry_pid" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

free_port() { # first port from $1 on that nothing listens on
	local p=$1
	while (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
start() { # PORT NAME
	mkdir -p "$dir/$2"
	redis-server --port "$1" --bind 127.0.0.1 --dir "$dir/$2" --save '' --appendonly no \
		--enable-debug-command local --repl-diskless-sync-delay 0 --logfile "$dir/$2/redis.log" &
	pids+=($!)
	for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done
	echo "redis-server on $1 did not start" >&2; exit 1
}
SRC=$(free_port "${DEMO_PORT:-26379}"); start "$SRC" source
TGT=$(free_port $((SRC + 1))); start "$TGT" target
echo "== source 127.0.0.1:$SRC, target 127.0.0.1:$TGT (in $dir)"

echo "== filling the source with $KEYS keys of every type in db0 and db1"
fill='
local n = tonumber(ARGV[1])
for i = 1, n do
  local t = i % 7
  local k = "demo:" .. i
  if t == 0 then redis.call("SET", k, string.rep("v", i % 300))
  elseif t == 1 then redis.call("HSET", k, "a", i, "b", "x" .. i, "c", i * 2)
  elseif t == 2 then redis.call("RPUSH", k, i, i + 1, "x", "y")
  elseif t == 3 then redis.call("SADD", k, i, i + 1, i + 2)
  elseif t == 4 then redis.call("ZADD", k, i, "m" .. i, -i, "n" .. i)
  elseif t == 5 then redis.call("XADD", k, "*", "f", i)
  else redis.call("SET", k, i, "EX", 3600 + i) end
end
return n'
redis-cli -p "$SRC" eval "$fill" 0 "$KEYS" >/dev/null
redis-cli -p "$SRC" -n 1 eval "$fill" 0 $((KEYS / 4)) >/dev/null
redis-cli -p "$SRC" info keyspace | grep '^db'

echo "== ferry sync, while redis-benchmark writes to the source"
"$FERRY" sync --source "redis://127.0.0.1:$SRC" --target "redis://127.0.0.1:$TGT" --job demo \
	--data-dir "$dir/data" --status-addr off --progress off --log-format console \
	>"$dir/ferry.out" 2>"$dir/ferry.log" &
ferry_pid=$!
# Only redis-benchmark's final line per test, not its progress updates.
redis-benchmark -p "$SRC" -q -n 200000 -r 50000 -P 16 -t set,incr,lpush,hset 2>/dev/null |
	tr '\r' '\n' | grep 'requests per second' | sed 's/^/   /' || true

echo "== waiting until the target has applied everything the source wrote"
want=$(redis-cli -p "$SRC" info replication | awk -F: '/^master_repl_offset/{print $2}' | tr -d '\r')
for _ in $(seq 600); do
	pos=$(redis-cli -p "$TGT" get __ferry:demo:pos 2>/dev/null || true)
	off=$(echo "$pos" | awk '{print $5}')
	[ -n "$off" ] && [ "$off" -ge "$want" ] && break
	sleep 0.1
done
echo "   target at offset ${off:-?}, source at $want"
kill -TERM "$ferry_pid"; wait "$ferry_pid" || { cat "$dir/ferry.log"; exit 1; }
ferry_pid=
sed 's/^/   ferry: /' "$dir/ferry.out"

# ferry keeps its resume point on the target; it is not user data.
redis-cli -p "$TGT" del __ferry:demo:pos __ferry:demo:lease >/dev/null
echo "== result"
printf '   %-8s %s\n' source "$(redis-cli -p "$SRC" info keyspace | grep '^db' | tr -d '\r' | tr '\n' ' ')"
printf '   %-8s %s\n' target "$(redis-cli -p "$TGT" info keyspace | grep '^db' | tr -d '\r' | tr '\n' ' ')"
a=$(redis-cli -p "$SRC" debug digest); b=$(redis-cli -p "$TGT" debug digest)
printf '   DEBUG DIGEST source %s\n   DEBUG DIGEST target %s\n' "$a" "$b"
[ "$a" = "$b" ] || { echo "== DIFFERENT"; exit 1; }

echo "== ferry verify: every key compared, value and TTL"
"$FERRY" verify --source "redis://127.0.0.1:$SRC" --target "redis://127.0.0.1:$TGT" --job demo \
	--data-dir "$dir/data" --log-level warn --log-format console 2>&1 | sed 's/^/   /'
echo "== equal: every key, value and TTL arrived"

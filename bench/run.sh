#!/usr/bin/env bash
# bench/run.sh — ferry's speed and memory, as ratios against anchors measured in
# the same run on the same machine (see bench/README.md). `make bench` builds
# bin/ferry and runs this.
#
# Environment (defaults in brackets):
#   BENCH_KEYS [1000000]  regular keys of the generated data set (big keys on top)
#   BENCH_BIG [1]         0 = no big keys (1M-field hash, 1M list, 200k set/zset, 100k stream, 8 MB string)
#   RUNS [3]              repetitions of each timed step; medians are reported
#   BENCH_ONLY [import,fullsync,steady,fence,cluster-source]   sections to run (also: gobench)
#   BENCH_LOAD_N [2000000] requests per test of the write load (redis-benchmark -n)
#   QUIET_MAX [120] QUIET_PCT [15]  wait at most QUIET_MAX s before each timed step until no
#                         process uses more than QUIET_PCT % of a core
#   FERRY [bin/ferry]     the binary to measure
#   BENCH_OUT [bench/results/<UTC timestamp>]  summary.txt, logs
#   BENCH_WORK [$BENCH_OUT/work]  servers' dirs, RDB files, spool (removed at the end)
#   BENCH_KEEP [0]        1 = keep BENCH_WORK
#   BENCH_DIGEST [1]      0 = skip the data digests (faster; no equality check)
#   BENCH_FENCE_KINDS [standalone cluster]  targets of the fence section
#   BENCH_FERRY_CONF []   extra lines for every ferry config (e.g. 'max_inflight_bytes = "64MiB"')
set -euo pipefail
set -E
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

BENCH_KEYS=${BENCH_KEYS:-1000000}
BENCH_BIG=${BENCH_BIG:-1}
RUNS=${RUNS:-3}
BENCH_ONLY=${BENCH_ONLY:-import,fullsync,steady,fence,cluster-source}
LOAD_N=${BENCH_LOAD_N:-2000000}
LOAD_TESTS=set,lpush,incr,hset
LOAD_P=32
LOAD_R=1000000
QUIET_MAX=${QUIET_MAX:-120}
QUIET_PCT=${QUIET_PCT:-15}
FERRY=${FERRY:-$ROOT/bin/ferry}
BENCH_DIGEST=${BENCH_DIGEST:-1}
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$ROOT/bench/results/$TS}
WORK=${BENCH_WORK:-$OUT/work}
BIN=$WORK/bin
SUM=$OUT/summary.txt
LOGS=$OUT/logs

for tool in redis-server redis-cli redis-benchmark go; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found on PATH" >&2; exit 2; }
done
[ -x "$FERRY" ] || { echo "bench: $FERRY not found: run 'make build' (or 'make bench')" >&2; exit 2; }
mkdir -p "$OUT" "$LOGS" "$WORK" "$BIN"
: >"$SUM"
: >"$LOGS/quiet.log"
: >"$LOGS/steps.log"

# ---------------------------------------------------------------- helpers

say() { echo "$*" | tee -a "$SUM"; }
log() { echo "$(date -u +%T) $*" | tee -a "$LOGS/run.log" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}'; }
median() { printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{v[NR]=$1} END{if (NR==0) {print "n/a"; exit} m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; if (m == int(m)) printf "%d\n", m; else printf "%.3f\n", m}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "n/a" || b == "n/a" || b+0 == 0) print "n/a"; else printf "%.2f", a/b}'; }
# bar VALUE OP LIMIT: PASS or FAIL (or "not measured")
bar() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN{if (v == "n/a" || v == "") {print "not measured"; exit} ok = (op == "<=") ? v+0 <= l : (op == "<") ? v+0 < l : v+0 >= l; print ok ? "PASS" : "FAIL"}'; }
# kv FILE KEY: the value of KEY=value in the last line of FILE that has it
kv() { grep -o "\(^\| \)$2=[^ ]*" "$1" 2>/dev/null | tail -1 | sed "s/.*=//"; }
rcli() { local p=$1; shift; redis-cli -h 127.0.0.1 -p "$p" "$@" | tr -d '\r'; }
info_field() { rcli "$1" info "$2" | awk -F: -v f="$3" '$1==f{print $2}'; }
keys_of() { # PORT...: keys summed over every db of the given servers
	local p s=0 n
	for p in "$@"; do
		n=$(rcli "$p" info keyspace | awk -F'[:=,]' '/^db[0-9]+:/{s+=$3} END{print s+0}')
		s=$((s + n))
	done
	echo "$s"
}
cmdstat_sum() { # PORT: calls of the load's commands in INFO commandstats
	rcli "$1" info commandstats | awk -F'[:=,]' '$1 ~ /^cmdstat_(set|lpush|incr|hset)$/ {s+=$3} END{print s+0}'
}
mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1e6}'; }

# Processes: every pid started here is stopped by pid at exit (servers after
# the tools that use them).
PIDS=()
alive() { [ -e "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }
stop_pid() { # PID [grace seconds]: SIGTERM, SIGKILL after the grace period, reap
	local pid=$1 grace=${2:-60} i
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < grace * 20; i++)); do alive "$pid" || break; sleep 0.05; done
		# (a process on its way out may look alive again for a moment: only the
		# timeout counts)
		if [ "$i" -ge $((grace * 20)) ]; then
			log "pid $pid ignored SIGTERM for ${grace}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}
stop_all() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" 30; done
	PIDS=()
}
trap 'echo "bench: error at line $LINENO: $BASH_COMMAND" >&2' ERR

# Ports: loopback, in [12000, 22000), with port+10000 free too (cluster bus).
declare -A PORT PID
USED_PORTS=" "
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # sets PICKED (not echoed: a $(…) subshell would forget USED_PORTS)
	local p
	while :; do
		p=$((12000 + RANDOM % 10000))
		case "$USED_PORTS" in *" $p "*) continue ;; esac
		listening "$p" || listening $((p + 10000)) || break
	done
	USED_PORTS+="$p "
	PICKED=$p
}

# srv_start NAME [redis-server args...]: a server on a free loopback port, its
# files in $WORK/srv/NAME (kept if it exists: an RDB to load); sets PORT[NAME],
# PID[NAME]. Waits until it answers PING (after loading any RDB).
srv_start() {
	local name=$1 try p pid i dir=$WORK/srv/$1
	shift
	mkdir -p "$dir"
	for try in 1 2 3 4 5; do
		pick_port
		p=$PICKED
		redis-server --port "$p" --bind 127.0.0.1 --protected-mode no --dir "$dir" \
			--logfile "$dir/redis.log" --save '' --appendonly no --repl-diskless-sync-delay 0 "$@" &
		pid=$!
		PIDS+=("$pid")
		if "$BIN/lagwatch" up -addr "127.0.0.1:$p" -pid "$pid" -timeout 10m >/dev/null 2>>"$LOGS/run.log"; then
			PORT[$name]=$p
			PID[$name]=$pid
			return 0
		fi
		stop_pid "$pid" 5
		log "redis-server $name on port $p did not start (try $try): $(tail -2 "$dir/redis.log" 2>/dev/null | tr '\n' ' ')"
	done
	return 1
}
srv_stop() { # NAME: stop it and remove its files
	local name=$1
	[ -n "${PID[$name]:-}" ] && stop_pid "${PID[$name]}" 60
	unset "PID[$name]"
	rm -rf "$WORK/srv/$name"
}
# cluster_start NAME N: N masters NAME-0..N-1, all slots, cluster_state:ok.
cluster_start() {
	local name=$1 n=$2 i addrs=() ok
	for ((i = 0; i < n; i++)); do
		srv_start "$name-$i" --cluster-enabled yes --cluster-config-file "$WORK/srv/$name-$i/nodes.conf" --cluster-node-timeout 5000
		addrs+=("127.0.0.1:${PORT[$name-$i]}")
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$LOGS/cluster-$name.log" 2>&1
	for ((try = 0; try < 600; try++)); do
		ok=1
		for ((i = 0; i < n; i++)); do
			rcli "${PORT[$name-$i]}" cluster info | grep -q '^cluster_state:ok' || ok=0
			[ "$(rcli "${PORT[$name-$i]}" cluster info | awk -F: '$1=="cluster_known_nodes"{print $2}')" = "$n" ] || ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	log "cluster $name not ok after 60 s"
	return 1
}
cluster_stop() { local i; for ((i = 0; i < $2; i++)); do srv_stop "$1-$i"; done; }
cluster_ports() { local i; for ((i = 0; i < $2; i++)); do echo "${PORT[$1-$i]}"; done; }

# CPU use per process over one second, from /proc (ticks of 1/100 s).
cpu_sample() { cat /proc/[0-9]*/stat 2>/dev/null | awk '{ match($0, /.*\)/); c=substr($0, index($0,"(")+1, RLENGTH-index($0,"(")-1); split(substr($0, RLENGTH+2), f, " "); gsub(/ /, "_", c); print $1, f[12]+f[13], c }'; }
busy_now() { # processes above QUIET_PCT % of a core during one second
	local a b
	a=$(cpu_sample); sleep 1; b=$(cpu_sample)
	awk -v p="$QUIET_PCT" 'NR==FNR {t[$1]=$2; next} ($1 in t) && $2-t[$1] > p {printf "%s(pid %s, %d%%) ", $3, $1, $2-t[$1]}' <(echo "$a") <(echo "$b")
}
# wait_quiet: until no process is busy, at most QUIET_MAX s. Prints "quiet"
# or "NOT quiet: …" and logs it to $LOGS/quiet.log.
wait_quiet() {
	local t0 busy
	t0=$(date +%s)
	while :; do
		busy=$(busy_now)
		if [ -z "$busy" ]; then echo quiet >>"$LOGS/quiet.log"; echo quiet; return 0; fi
		if [ $(($(date +%s) - t0)) -ge "$QUIET_MAX" ]; then
			echo "NOT quiet after ${QUIET_MAX}s: $busy" >>"$LOGS/quiet.log"
			echo "NOT quiet: $busy"
			return 0
		fi
		sleep 2
	done
}
# step_log T0 QUIET: records a timed step that started at T0 (after wait_quiet
# said QUIET): how much CPU other people's processes used meanwhile, from
# the sampler's $LOGS/cpu-others.log. Prints the note for the step's log line.
step_log() {
	local q=quiet
	case "$2" in quiet) ;; *) q=NOT-quiet ;; esac
	local o
	o=$(awk -v a="$1" -v b="$(now)" '$1 >= a && $1 - 1 <= b {s += $2; n++; if ($2 > m) m = $2} END{if (n == 0) print "- -"; else printf "%.0f %.0f", s/n, m}' "$LOGS/cpu-others.log" 2>/dev/null)
	echo "$q $o" >>"$LOGS/steps.log"
	echo "$2; others used avg ${o% *}% max ${o#* }% of a core during the step"
}
quiet_note() { # summary of the steps logged since line $1 of $LOGS/steps.log
	awk -v from="$1" 'NR > from {n++; if ($1 == "quiet") q++; if ($2 != "-") {s += $2; k++; if ($2 > w) w = $2}} END{printf "%d of %d timed steps started quiet", q, n; if (k) printf "; other processes used avg %.0f%% of a core during them (worst step %.0f%%)", s/k, w}' "$LOGS/steps.log" 2>/dev/null
}
quiet_mark() { wc -l <"$LOGS/steps.log" 2>/dev/null || echo 0; }

# ferry_conf NAME [FENCE]: a job file for one job; prints its path.
ferry_conf() {
	local f=$WORK/$1.toml
	cat >"$f" <<-EOF
		job = "$1"
		data_dir = "$WORK/ferry-data"
		status_addr = "off"
		progress_interval = "1s"
		log_format = "json"
		fence = "${2:-multi}"
		${BENCH_FERRY_CONF:-}
	EOF
	echo "$f"
}

digest_of() { # PORT FILE: digest of a server or cluster (any node)
	"$BIN/digest" -addr "127.0.0.1:$1" -ignore __ferry:,__bench: >"$2" 2>>"$LOGS/digest.log"
}
# same_data NAME_A PORT_A NAME_B PORT_B: "MATCH …" or "MISMATCH …"
same_data() {
	[ "$BENCH_DIGEST" = 1 ] || { echo "not checked (BENCH_DIGEST=0)"; return 0; }
	local a=$LOGS/digest-$1.txt b=$LOGS/digest-$3.txt
	[ -s "$a" ] || digest_of "$2" "$a"
	digest_of "$4" "$b"
	if cmp -s "$a" "$b"; then
		echo "MATCH ($(tail -2 "$a" | tr '\n' ' '))"
	else
		echo "MISMATCH: diff $a $b"
	fi
}

# ---------------------------------------------------------------- setup

log "building the bench tools into $BIN"
go build -o "$BIN/" ./bench/gen ./bench/digest ./bench/lagwatch ./bench/runstat
# Measure a private copy: a 'make build' elsewhere must not swap the binary mid-run.
cp "$FERRY" "$BIN/ferry"
FERRY=$BIN/ferry
# CPU used by everything that is not this run, sampled every second.
"$BIN/lagwatch" cpu -root $$ >"$LOGS/cpu-others.log" 2>/dev/null &
PIDS+=("$!")

cores=$(nproc)
say "# ferry bench $TS: $("$FERRY" version 2>/dev/null | head -1); $(redis-server --version | awk '{print $1, $3}'); $(go version | awk '{print $3}')"
say "# machine: $cores cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM; load avg $(cut -d' ' -f1-3 /proc/loadavg)"
say "# BENCH_KEYS=$BENCH_KEYS BENCH_BIG=$BENCH_BIG RUNS=$RUNS BENCH_ONLY=$BENCH_ONLY load: redis-benchmark -t $LOAD_TESTS -n $LOAD_N -P $LOAD_P -r $LOAD_R"
say "# figures: medians of RUNS runs (raw runs in brackets); ratio = ferry / anchor unless said otherwise"
say "# results: $OUT"

want() { case ",$BENCH_ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

SRC_DIGEST=$LOGS/digest-source.txt
# The main source: standalone, the generated data set in 4 dbs.
main_source() {
	[ -n "${PID[src]:-}" ] && return 0
	srv_start src --repl-diskless-sync yes --repl-diskless-sync-delay 0
	log "generating $BENCH_KEYS keys (big keys: $BENCH_BIG) into the source on port ${PORT[src]}"
	local t0
	t0=$(now)
	"$BIN/gen" -addr "127.0.0.1:${PORT[src]}" -n "$BENCH_KEYS" -big="$([ "$BENCH_BIG" = 1 ] && echo true || echo false)" 2>"$LOGS/gen.log"
	local gs
	gs=$(since "$t0")
	SRC_KEYS=$(keys_of "${PORT[src]}")
	say "[data] source: $SRC_KEYS keys in 4 dbs, used_memory $(awk -v b="$(info_field "${PORT[src]}" memory used_memory)" 'BEGIN{printf "%.0f", b/1048576}') MB, generated in ${gs}s ($(tail -1 "$LOGS/gen.log" | sed 's/^gen: //'))"
}

# ---------------------------------------------------------------- 2. import

section_import() {
	main_source
	local q0 t0 s
	q0=$(quiet_mark)
	log "import: SAVE"
	t0=$(now)
	rcli "${PORT[src]}" save >/dev/null
	local save_s
	save_s=$(since "$t0")
	mv "$WORK/srv/src/dump.rdb" "$WORK/dump.rdb"
	local rdb_bytes
	rdb_bytes=$(stat -c %s "$WORK/dump.rdb")
	say "[import] dump.rdb: $(mb "$rdb_bytes") MB, SAVE took ${save_s}s"

	# anchor: redis-server starting on the file
	local starts=() loads=() r
	for ((r = 1; r <= RUNS; r++)); do
		mkdir -p "$WORK/srv/load"
		ln -f "$WORK/dump.rdb" "$WORK/srv/load/dump.rdb"
		s=$(wait_quiet)
		ST0=$(now)
		t0=$(now)
		srv_start load --dbfilename dump.rdb
		starts+=("$(since "$t0")")
		loads+=("$(grep -o 'DB loaded from disk: [0-9.]* seconds' "$WORK/srv/load/redis.log" | tail -1 | awk '{print $5}')")
		echo "anchor run $r: start_to_ping_s=${starts[-1]} log_loaded_s=${loads[-1]} keys=$(keys_of "${PORT[load]}") ($(step_log "$ST0" "$s"))" >>"$LOGS/import.log"
		srv_stop load
	done

	# ferry sync --rdb into an empty server
	local conf walls=() rss=() check=""
	conf=$(ferry_conf import)
	for ((r = 1; r <= RUNS; r++)); do
		srv_start imp
		s=$(wait_quiet)
		ST0=$(now)
		"$BIN/runstat" -o "$LOGS/import-ferry-$r.stats" -- "$FERRY" sync -c "$conf" --rdb "$WORK/dump.rdb" \
			--target "redis://127.0.0.1:${PORT[imp]}" >"$LOGS/import-ferry-$r.out" 2>"$LOGS/import-ferry-$r.log" || {
			say "[import] ferry FAILED (run $r, exit $(kv "$LOGS/import-ferry-$r.stats" exit)): $(tail -1 "$LOGS/import-ferry-$r.log")"
			srv_stop imp
			return 1
		}
		walls+=("$(kv "$LOGS/import-ferry-$r.stats" wall_s)")
		rss+=("$(kv "$LOGS/import-ferry-$r.stats" maxrss_mb)")
		local k
		k=$(keys_of "${PORT[imp]}")
		echo "ferry run $r: $(cat "$LOGS/import-ferry-$r.stats" | tr -d '\n') keys=$k/$SRC_KEYS; $(cat "$LOGS/import-ferry-$r.out") ($(step_log "$ST0" "$s"))" >>"$LOGS/import.log"
		[ "$k" = "$SRC_KEYS" ] || check+="run $r: target has $k keys, source $SRC_KEYS; "
		if [ "$r" = "$RUNS" ]; then check+="digest $(same_data source "${PORT[src]}" import-target "${PORT[imp]}")"; fi
		srv_stop imp
	done
	local fw fs fl rmax
	fw=$(median "${walls[@]}"); fs=$(median "${starts[@]}"); fl=$(median "${loads[@]}")
	rmax=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
	say "[import] anchor redis-server start on dump.rdb: load_s=$fs [${starts[*]}] (its log: DB loaded in $fl s)"
	say "[import] ferry sync --rdb: import_s=$fw [${walls[*]}] = $(awk -v k="$SRC_KEYS" -v s="$fw" 'BEGIN{printf "%.0f", k/s}') keys/s, $(awk -v b="$rdb_bytes" -v s="$fw" 'BEGIN{printf "%.1f", b/1e6/s}') MB/s of RDB"
	say "[import] ratio import_s/load_s = $(ratio "$fw" "$fs")x; peak_rss_mb=$rmax [${rss[*]}] (bar: < 200 MB at 1M mixed keys: $(bar "$rmax" "<" 200))"
	say "[import] check: ${check:-ok}; $(quiet_note "$q0")"
}

# ---------------------------------------------------------------- 3. fullsync

section_fullsync() {
	main_source
	local q0 r mode s
	q0=$(quiet_mark)
	declare -A times
	local conf ferry_t=() ferry_rss=() scan_t=() scan_rss=() check=""
	conf=$(ferry_conf fullsync)
	SRC_KEYS=$(keys_of "${PORT[src]}")
	for ((r = 1; r <= RUNS; r++)); do
		for mode in disabled on-empty-db; do
			srv_start rep --repl-diskless-load "$mode"
			s=$(wait_quiet)
			ST0=$(now)
			"$BIN/lagwatch" wait -replicaof -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[rep]}" >"$LOGS/fullsync-native-$mode-$r.txt"
			times[$mode]+="$(kv "$LOGS/fullsync-native-$mode-$r.txt" counts_equal_s) "
			echo "native repl-diskless-load=$mode run $r: $(cat "$LOGS/fullsync-native-$mode-$r.txt") ($(step_log "$ST0" "$s"))" >>"$LOGS/fullsync.log"
			srv_stop rep
		done
		srv_start fs
		s=$(wait_quiet)
		ST0=$(now)
		"$BIN/runstat" -o "$LOGS/fullsync-ferry-$r.stats" -- "$FERRY" migrate -c "$conf" --source "redis://127.0.0.1:${PORT[src]}" \
			--target "redis://127.0.0.1:${PORT[fs]}" >"$LOGS/fullsync-ferry-$r.out" 2>"$LOGS/fullsync-ferry-$r.log" || {
			say "[fullsync] ferry FAILED (run $r, exit $(kv "$LOGS/fullsync-ferry-$r.stats" exit)): $(tail -1 "$LOGS/fullsync-ferry-$r.log")"
			srv_stop fs
			return 1
		}
		ferry_t+=("$(kv "$LOGS/fullsync-ferry-$r.stats" wall_s)")
		ferry_rss+=("$(kv "$LOGS/fullsync-ferry-$r.stats" maxrss_mb)")
		local k sk
		k=$(keys_of "${PORT[fs]}"); sk=$(keys_of "${PORT[src]}")
		echo "ferry run $r: $(tr -d '\n' <"$LOGS/fullsync-ferry-$r.stats") keys=$k/$sk; $(cat "$LOGS/fullsync-ferry-$r.out") ($(step_log "$ST0" "$s"))" >>"$LOGS/fullsync.log"
		[ "$k" = "$sk" ] || check+="run $r: target has $k keys, source $sk; "
		if [ "$r" = "$RUNS" ]; then
			rm -f "$SRC_DIGEST" # the native runs' sentinel keys changed the source
			check+="digest $(same_data source "${PORT[src]}" fullsync-target "${PORT[fs]}")"
		fi
		srv_stop fs
		# The same migrate with the scan reader (SCAN + DUMP, as for a
		# source that forbids PSYNC).
		srv_start fs
		s=$(wait_quiet)
		ST0=$(now)
		"$BIN/runstat" -o "$LOGS/fullsync-scan-$r.stats" -- "$FERRY" migrate -c "$conf" --reader scan --source "redis://127.0.0.1:${PORT[src]}" \
			--target "redis://127.0.0.1:${PORT[fs]}" >"$LOGS/fullsync-scan-$r.out" 2>"$LOGS/fullsync-scan-$r.log" || {
			say "[fullsync] ferry --reader scan FAILED (run $r, exit $(kv "$LOGS/fullsync-scan-$r.stats" exit)): $(tail -1 "$LOGS/fullsync-scan-$r.log")"
			srv_stop fs
			return 1
		}
		scan_t+=("$(kv "$LOGS/fullsync-scan-$r.stats" wall_s)")
		scan_rss+=("$(kv "$LOGS/fullsync-scan-$r.stats" maxrss_mb)")
		k=$(keys_of "${PORT[fs]}"); sk=$(keys_of "${PORT[src]}")
		echo "ferry --reader scan run $r: $(tr -d '\n' <"$LOGS/fullsync-scan-$r.stats") keys=$k/$sk; $(cat "$LOGS/fullsync-scan-$r.out") ($(step_log "$ST0" "$s"))" >>"$LOGS/fullsync.log"
		[ "$k" = "$sk" ] || check+="scan run $r: target has $k keys, source $sk; "
		if [ "$r" = "$RUNS" ]; then
			check+=", scan digest $(same_data source "${PORT[src]}" fullsync-scan-target "${PORT[fs]}")"
		fi
		srv_stop fs
	done
	local nd nl fm fsc
	# shellcheck disable=SC2086
	nd=$(median ${times[disabled]}); nl=$(median ${times[on-empty-db]}); fm=$(median "${ferry_t[@]}")
	say "[fullsync] anchor native replica, repl-diskless-load disabled: ${nd}s [${times[disabled]% }]"
	say "[fullsync] anchor native replica, repl-diskless-load on-empty-db: ${nl}s [${times[on-empty-db]% }]"
	say "[fullsync] ferry migrate: ${fm}s [${ferry_t[*]}], peak_rss_mb=$(printf '%s\n' "${ferry_rss[@]}" | sort -g | tail -1)"
	say "[fullsync] ratio ferry/native-disk-load = $(ratio "$fm" "$nd")x, ferry/native-diskless-load = $(ratio "$fm" "$nl")x"
	fsc=$(median "${scan_t[@]}")
	say "[fullsync] ferry migrate --reader scan: ${fsc}s [${scan_t[*]}], peak_rss_mb=$(printf '%s\n' "${scan_rss[@]}" | sort -g | tail -1)"
	say "[fullsync] ratio scan/psync = $(ratio "$fsc" "$fm")x, scan/native-disk-load = $(ratio "$fsc" "$nd")x"
	say "[fullsync] check: ${check:-ok}; $(quiet_note "$q0")"
}

# ---------------------------------------------------------------- 4. steady

# steady_runs WHO DST_PORT: RUNS loads with the lag probe; appends to $LOGS/steady-WHO.txt
steady_runs() {
	local who=$1 dst=$2 r s
	for ((r = 1; r <= RUNS; r++)); do
		s=$(wait_quiet)
		ST0=$(now)
		"$BIN/lagwatch" lag -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:$dst" -csv "$LOGS/steady-$who-$r.csv" \
			-load-out "$LOGS/steady-$who-$r.bench" -- \
			redis-benchmark -h 127.0.0.1 -p "${PORT[src]}" -t "$LOAD_TESTS" -n "$LOAD_N" -P "$LOAD_P" -r "$LOAD_R" -q >"$LOGS/steady-$who-$r.txt"
		local rps
		rps=$(tr '\r' '\n' <"$LOGS/steady-$who-$r.bench" | awk -F': ' '/requests per second/{split($2, a, " "); printf "%s=%.0f ", $1, a[1]}')
		echo "$who run $r: $(cat "$LOGS/steady-$who-$r.txt") rps: $rps($(step_log "$ST0" "$s"))" | tee -a "$LOGS/steady.log" >>"$LOGS/steady-$who.txt"
	done
}
steady_med() { # WHO KEY: median over the runs
	local f=$LOGS/steady-$1.txt
	# shellcheck disable=SC2046
	median $(grep -o " $2=[^ ]*" "$f" | sed 's/.*=//')
}

section_steady() {
	main_source
	local q0 conf fpid
	q0=$(quiet_mark)
	conf=$(ferry_conf steady)
	srv_start st
	"$BIN/runstat" -o "$LOGS/steady-ferry.stats" -- "$FERRY" sync -c "$conf" --source "redis://127.0.0.1:${PORT[src]}" \
		--target "redis://127.0.0.1:${PORT[st]}" >"$LOGS/steady-ferry.out" 2>"$LOGS/steady-ferry.log" &
	fpid=$!
	PIDS+=("$fpid")
	"$BIN/lagwatch" wait -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[st]}" >"$LOGS/steady-ferry-attach.txt"
	log "steady: ferry attached ($(cat "$LOGS/steady-ferry-attach.txt"))"
	steady_runs ferry "${PORT[st]}"
	stop_pid "$fpid" 120
	local check
	rm -f "$SRC_DIGEST"
	check="ferry $(tr -d '\n' <"$LOGS/steady-ferry.stats"); $(cat "$LOGS/steady-ferry.out"); digest $(same_data source "${PORT[src]}" steady-target "${PORT[st]}")"
	srv_stop st

	srv_start sr
	"$BIN/lagwatch" wait -replicaof -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[sr]}" >"$LOGS/steady-native-attach.txt"
	steady_runs native "${PORT[sr]}"
	srv_stop sr
	rm -f "$SRC_DIGEST"

	local w
	for w in native ferry; do
		local label="ferry sync" 
		[ $w = native ] && label="anchor native replica"
		say "[steady] $label: source write_rate=$(steady_med $w write_rate) ops/s, apply_rate=$(steady_med $w apply_rate) ops/s, lag p50=$(steady_med $w lag_p50_ms) p99=$(steady_med $w lag_p99_ms) max=$(steady_med $w lag_max_ms) ms, catch-up after load=$(steady_med $w catchup_s)s"
	done
	local p99 cu
	p99=$(steady_med ferry lag_p99_ms); cu=$(steady_med ferry catchup_s)
	say "[steady] ratio ferry/native: apply_rate $(ratio "$(steady_med ferry apply_rate)" "$(steady_med native apply_rate)")x, source write_rate $(ratio "$(steady_med ferry write_rate)" "$(steady_med native write_rate)")x, lag p99 $(ratio "$p99" "$(steady_med native lag_p99_ms)")x"
	say "[steady] bars: lag p99 <= 100 ms: $(bar "$p99" "<=" 100) ($p99 ms); caught up within 1 s after the load: $(bar "$cu" "<=" 1) (${cu}s)"
	say "[steady] apply_rate = source commands (INFO commandstats delta of set/lpush/incr/hset, heartbeats excluded) / (load start -> last heartbeat seen on the target)"
	say "[steady] check: $check; $(quiet_note "$q0")"
}

# ---------------------------------------------------------------- 5. fence

rates_of() { # KIND MODE: the valid drain rates, space-separated
	awk -v m="$2" '{for (i = 1; i <= NF; i++) if (split($i, a, "=") == 2 && a[1] == m) printf "%s ", a[2]}' "$LOGS/fence-$1.rates" | sed 's/ $//'
}

# fence_attach CONF TARGET_PORT LOGNAME: run ferry sync until the target is in
# sync with the fence source, then stop it (it keeps its resume point).
fence_attach() {
	local fp
	"$FERRY" sync -c "$1" --source "redis://127.0.0.1:${PORT[fsrc]}" --target "redis://127.0.0.1:$2" \
		>"$LOGS/$3.out" 2>"$LOGS/$3.log" &
	fp=$!
	PIDS+=("$fp")
	echo "$3: $("$BIN/lagwatch" wait -timeout 30m -src "127.0.0.1:${PORT[fsrc]}" -dst "127.0.0.1:$2")" >>"$LOGS/fence.log"
	stop_pid "$fp" 120
}

# fence_kind KIND: KIND = standalone | cluster. Targets A (fence multi) and B
# (fence off) follow the same source; per run: both stopped, one load builds a
# backlog on the source, then each ferry restarts alone and drains it.
fence_kind() {
	local kind=$1 ta tb confa confb r m s f0 f1 valid note
	if [ "$kind" = cluster ]; then
		cluster_start fca 3; cluster_start fcb 3
		ta=${PORT[fca-0]}; tb=${PORT[fcb-0]}
	else
		srv_start fsa; srv_start fsb
		ta=${PORT[fsa]}; tb=${PORT[fsb]}
	fi
	confa=$(ferry_conf "fence-$kind-multi" multi)
	confb=$(ferry_conf "fence-$kind-off" off)
	declare -A tgt=([multi]=$ta [off]=$tb) conf=([multi]=$confa [off]=$confb)
	# attach both (full sync of what the source holds), then stop them
	for m in multi off; do
		fence_attach "${conf[$m]}" "${tgt[$m]}" "fence-$kind-$m-attach"
	done
	local backlog
	backlog=$(rcli "${PORT[fsrc]}" config get repl-backlog-size | tail -1)
	for ((r = 1; r <= RUNS; r++)); do
		local c0 o0 c1 o1 cmds t0
		c0=$(cmdstat_sum "${PORT[fsrc]}"); o0=$(info_field "${PORT[fsrc]}" replication master_repl_offset)
		t0=$(now)
		redis-benchmark -h 127.0.0.1 -p "${PORT[fsrc]}" -t "$LOAD_TESTS" -n "$LOAD_N" -P "$LOAD_P" -r "$LOAD_R" -q >"$LOGS/fence-$kind-load-$r.bench" 2>&1
		local load_s
		load_s=$(since "$t0")
		c1=$(cmdstat_sum "${PORT[fsrc]}"); o1=$(info_field "${PORT[fsrc]}" replication master_repl_offset)
		cmds=$((c1 - c0))
		echo "$kind run $r: backlog of $cmds commands, $(mb $((o1 - o0))) MB of stream (load took ${load_s}s without a replica)" >>"$LOGS/fence.log"
		if [ $((o1 - o0)) -ge "$backlog" ]; then
			say "[fence] $kind: the load ($((o1 - o0)) bytes) does not fit the source's repl-backlog-size ($backlog): lower BENCH_LOAD_N"
			return 1
		fi
		local order="multi off"
		[ $((r % 2)) = 0 ] && order="off multi"
		for m in $order; do
			s=$(wait_quiet)
			ST0=$(now)
			f0=$(info_field "${PORT[fsrc]}" stats sync_full)
			"$BIN/lagwatch" drain -timeout 60m -src "127.0.0.1:${PORT[fsrc]}" -dst "127.0.0.1:${tgt[$m]}" -cmds "$cmds" \
				-tool-out "$LOGS/fence-$kind-$m-$r.log" -- \
				"$BIN/runstat" -o "$LOGS/fence-$kind-$m-$r.stats" -- \
				"$FERRY" sync -c "${conf[$m]}" --source "redis://127.0.0.1:${PORT[fsrc]}" --target "redis://127.0.0.1:${tgt[$m]}" \
				>"$LOGS/fence-$kind-$m-$r.txt"
			valid=1 note="partial resync"
			f1=$(info_field "${PORT[fsrc]}" stats sync_full)
			[ "$f1" = "$f0" ] || { valid=0; note="INVALID: the restarted ferry did a full resync instead of a partial one ($(grep -o '"message":"[^"]*resync[^"]*"' "$LOGS/fence-$kind-$m-$r.log" | head -1))"; }
			echo "$kind fence=$m run $r: $(cat "$LOGS/fence-$kind-$m-$r.txt") $(tr -d '\n' <"$LOGS/fence-$kind-$m-$r.stats"); $note ($(step_log "$ST0" "$s"))" >>"$LOGS/fence.log"
			if [ $valid = 1 ]; then
				echo " $m=$(kv "$LOGS/fence-$kind-$m-$r.txt" apply_rate)" >>"$LOGS/fence-$kind.rates"
			else
				FENCE_WARN+="$kind fence=$m run $r: $note; "
				# the drain was cut short inside a snapshot: let it finish
				fence_attach "${conf[$m]}" "${tgt[$m]}" "fence-$kind-$m-$r-reattach"
			fi
		done
	done
	touch "$LOGS/fence-$kind.rates"
	local fm fo rates_m rates_o
	rates_m=$(rates_of "$kind" multi); rates_o=$(rates_of "$kind" off)
	# shellcheck disable=SC2086
	fm=$(median $rates_m); fo=$(median $rates_o)
	local label="standalone target"
	[ "$kind" = cluster ] && label="3-master cluster target"
	say "[fence] $label: fenced (multi) drain rate=$fm cmds/s [${rates_m:-no valid run}], anchor fence=off: $fo cmds/s [${rates_o:-no valid run}]"
	local rr
	rr=$(ratio "$fm" "$fo")
	say "[fence] $label: ratio fenced/unfenced = ${rr}x (bar: >= 0.80: $(bar "$rr" ">=" 0.8))"
	rm -f "$LOGS/digest-fence-source.txt"
	FENCE_CHECK+="$kind multi: $(same_data fence-source "${PORT[fsrc]}" "fence-$kind-multi" "$ta"); $kind off: $(same_data fence-source "${PORT[fsrc]}" "fence-$kind-off" "$tb"); "
	if [ "$kind" = cluster ]; then cluster_stop fca 3; cluster_stop fcb 3; else srv_stop fsa; srv_stop fsb; fi
}

section_fence() {
	local q0 need
	q0=$(quiet_mark)
	FENCE_WARN="" FENCE_CHECK=""
	# the whole load must stay in the source's backlog: ~70 bytes per command
	need=$(((LOAD_N * 4 * 70 * 3 / 2 / 1048576 + 64) * 1048576))
	srv_start fsrc --repl-backlog-size "$need"
	local kind
	for kind in ${BENCH_FENCE_KINDS:-standalone cluster}; do
		fence_kind "$kind"
	done
	say "[fence] method: drain rate = commands of one redis-benchmark load (commandstats delta) / time from restarting a stopped 'ferry sync' (resume with PSYNC continue) until sentinels written after the load show on every target master; fenced and unfenced drain the same backlog, alternating order"
	say "[fence] check: ${FENCE_WARN}${FENCE_CHECK}$(quiet_note "$q0")"
	srv_stop fsrc
}

# ---------------------------------------------------------------- 6. cluster-source

section_cluster_source() {
	local q0 big s
	q0=$(quiet_mark)
	big=$([ "$BENCH_BIG" = 1 ] && echo true || echo false)
	cluster_start csrc 3
	srv_start c1src --repl-diskless-sync yes --repl-diskless-sync-delay 0
	local p
	for p in $(cluster_ports csrc 3); do
		rcli "$p" config set repl-diskless-sync yes >/dev/null
	done
	log "cluster-source: generating $BENCH_KEYS keys into a 3-master cluster and into one server (db 0)"
	"$BIN/gen" -addr "127.0.0.1:${PORT[csrc-0]}" -n "$BENCH_KEYS" -big="$big" 2>"$LOGS/gen-cluster.log"
	"$BIN/gen" -addr "127.0.0.1:${PORT[c1src]}" -dbs 1 -n "$BENCH_KEYS" -big="$big" 2>"$LOGS/gen-single.log"
	local same ck
	# shellcheck disable=SC2046
	ck=$(keys_of $(cluster_ports csrc 3))
	same=$(same_data cs-cluster "${PORT[csrc-0]}" cs-single "${PORT[c1src]}")
	local conf
	conf=$(ferry_conf clustersource)
	srv_start ct1
	s=$(wait_quiet)
	ST0=$(now)
	local rc=0
	"$BIN/runstat" -o "$LOGS/cluster-source-ferry.stats" -- "$FERRY" migrate -c "$conf" --source "redis://127.0.0.1:${PORT[csrc-0]}" \
		--target "redis://127.0.0.1:${PORT[ct1]}" >"$LOGS/cluster-source-ferry.out" 2>"$LOGS/cluster-source-ferry.log" || rc=$?
	local k
	k=$(keys_of "${PORT[ct1]}")
	echo "cluster source: rc=$rc keys=$k/$ck $(cat "$LOGS/cluster-source-ferry.stats" 2>/dev/null) $(cat "$LOGS/cluster-source-ferry.out") ($(step_log "$ST0" "$s"))" >>"$LOGS/cluster-source.log"
	if [ "$rc" != 0 ]; then
		say "[cluster-source] SKIPPED: not supported by this build (ferry exit $rc: $(tail -1 "$LOGS/cluster-source-ferry.log" | cut -c1-300))"
		srv_stop ct1; srv_stop c1src; cluster_stop csrc 3
		return 0
	fi
	if [ "$k" != "$ck" ]; then
		say "[cluster-source] SKIPPED: not supported by this build: ferry exited 0 but copied $k of $ck keys (it replicated only the node it was given; a cluster source is not detected)"
		srv_stop ct1; srv_stop c1src; cluster_stop csrc 3
		return 0
	fi
	local cs_t cs_rss check
	cs_t=$(kv "$LOGS/cluster-source-ferry.stats" wall_s); cs_rss=$(kv "$LOGS/cluster-source-ferry.stats" maxrss_mb)
	check="datasets: $same; cluster->target digest $(same_data cs-single "${PORT[c1src]}" cs-target1 "${PORT[ct1]}")"
	srv_stop ct1

	srv_start ct2
	s=$(wait_quiet)
	ST0=$(now)
	"$BIN/runstat" -o "$LOGS/cluster-source-single.stats" -- "$FERRY" migrate -c "$conf" --source "redis://127.0.0.1:${PORT[c1src]}" \
		--target "redis://127.0.0.1:${PORT[ct2]}" >"$LOGS/cluster-source-single.out" 2>"$LOGS/cluster-source-single.log"
	echo "single source: $(cat "$LOGS/cluster-source-single.stats") $(cat "$LOGS/cluster-source-single.out") ($(step_log "$ST0" "$s"))" >>"$LOGS/cluster-source.log"
	local one_t
	one_t=$(kv "$LOGS/cluster-source-single.stats" wall_s)
	srv_stop ct2
	say "[cluster-source] ferry migrate from a 3-master cluster: ${cs_t}s (peak_rss_mb=$cs_rss); anchor: the same data on one server: ${one_t}s (peak_rss_mb=$(kv "$LOGS/cluster-source-single.stats" maxrss_mb)); one run each"
	say "[cluster-source] ratio 3-shard/1-shard = $(ratio "$cs_t" "$one_t")x"
	say "[cluster-source] check: $check; $(quiet_note "$q0")"
	srv_stop c1src; cluster_stop csrc 3
}

# ---------------------------------------------------------------- gobench (opt-in)

section_gobench() {
	go test -run '^$' -bench . -benchmem -count 1 ./bench ./rdb ./spool ./router >"$LOGS/gobench.txt" 2>&1
	say "[gobench] go test -bench . ./bench ./rdb ./spool ./router (absolute figures, no anchor):"
	grep '^Benchmark' "$LOGS/gobench.txt" | awk '{$1=$1; print "[gobench]   " $0}' | tee -a "$SUM"
}

# ---------------------------------------------------------------- main

# kill_tree PID: SIGTERM a process and everything it started, then wait for them.
kill_tree() {
	local all=() p c i
	local queue=("$1")
	while [ ${#queue[@]} -gt 0 ]; do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		all+=("$p")
		for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do queue+=("$c"); done
	done
	for ((i = ${#all[@]} - 1; i >= 0; i--)); do kill -TERM "${all[i]}" 2>/dev/null || true; done
	for p in "${all[@]}"; do
		for ((i = 0; i < 600; i++)); do alive "$p" || break; sleep 0.05; done
		alive "$p" && kill -KILL "$p" 2>/dev/null || true
	done
	wait "$1" 2>/dev/null || true
}

SEC_PID=
on_exit() {
	local rc=$?
	trap - INT TERM
	if [ -n "$SEC_PID" ] && alive "$SEC_PID"; then
		log "interrupted: stopping section processes"
		kill_tree "$SEC_PID"
	fi
	stop_all
	if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
	if [ -s "$SUM" ]; then
		echo
		echo "==================== $SUM"
		cat "$SUM"
	fi
	exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failed=0
for sec in import fullsync steady fence cluster-source gobench; do
	want "$sec" || continue
	log "== section $sec"
	t_sec=$(now)
	# The main source lives in this shell (import, fullsync and steady share it).
	case $sec in import | fullsync | steady) main_source ;; esac
	# Each section runs in a subshell that stops what it started when it ends;
	# a failing section is reported and the next one runs.
	set +e
	(
		set -e
		PIDS=()
		trap stop_all EXIT
		trap 'exit 143' TERM
		"section_${sec//-/_}"
	) &
	SEC_PID=$!
	wait "$SEC_PID"
	rc=$?
	SEC_PID=
	set -e
	if [ $rc != 0 ]; then
		say "[$sec] FAILED (exit $rc; logs in $LOGS)"
		failed=1
	fi
	log "== section $sec done in $(since "$t_sec")s"
	if [ "$sec" = steady ] && [ -n "${PID[src]:-}" ]; then srv_stop src; fi
done
if [ -n "${PID[src]:-}" ]; then srv_stop src; fi
say "# done in ${SECONDS}s; $(quiet_note 0)"
exit $failed

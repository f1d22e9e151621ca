#!/usr/bin/env bash
# bench/run.sh — ferry's speed and memory, as ratios against anchors measured in
# the same run on the same machine (see bench/README.md). `make bench` builds
# bin/ferry and runs this.
#
# Environment (defaults in brackets):
#   BENCH_SECTIONS [import fullsync steady cluster fence cluster-source profile]
#                         sections to run, space- or comma-separated (also: gobench);
#                         BENCH_ONLY is the older name of the same setting
#   BENCH_QUICK [0]       1 = a smoke check of the scripts: small data set, one run, short
#                         loads, no quiet wait (figures meaningless); any setting below wins
#   BENCH_KEYS [1000000]  regular keys of the generated data set (big keys on top)
#   BENCH_BIG [1]         0 = no big keys (1M-field hash, 1M list, 200k set/zset, 100k stream, 8 MB string)
#   RUNS [3]              repetitions of each timed step; medians are reported
#   BENCH_LOAD_N [1000000] requests per test of the write load (redis-benchmark -n)
#   BENCH_LOAD_R [100000] key space of the write load (redis-benchmark -r)
#   QUIET_MAX [120] QUIET_PCT [15]  wait at most QUIET_MAX s before each timed step until no
#                         process uses more than QUIET_PCT % of a core
#   PROFILE_SECONDS [20]  CPU profile window of the profile section (under the load)
#   PROFILE_STRACE [1]    0 = no strace pass in the profile section
#   PROFILE_FENCE_OFF [1] 0 = no fence=off window in the profile section
#   PROFILE_NATIVE [1]    0 = no native-replica window in the profile section
#   FERRY [bin/ferry]     the binary to measure
#   BENCH_OUT [bench/results/<UTC timestamp>]  summary.txt, logs
#   BENCH_WORK [$BENCH_OUT/work]  servers' dirs, RDB files, spool (removed at the end)
#   BENCH_KEEP [0]        1 = keep BENCH_WORK
#   BENCH_DIGEST [1]      0 = skip the data digests (faster; no equality check)
#   BENCH_FENCE_KINDS [standalone cluster]  targets of the fence section
#   BENCH_FERRY_CONF []   extra lines for every ferry config (e.g. 'max_inflight_bytes = "64MiB"')
set -euo pipefail
set -E
# The whole script is one brace group: bash parses it completely before
# running it, so editing this file while a bench runs cannot change the run.
{
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	# Small enough for a smoke check of every section in a few minutes on a
	# busy machine; the figures mean nothing.
	: "${BENCH_KEYS:=20000}" "${BENCH_BIG:=0}" "${RUNS:=1}" "${BENCH_LOAD_N:=50000}" "${BENCH_LOAD_R:=10000}"
	: "${QUIET_MAX:=0}" "${PROFILE_SECONDS:=5}"
fi
BENCH_KEYS=${BENCH_KEYS:-1000000}
BENCH_BIG=${BENCH_BIG:-1}
RUNS=${RUNS:-3}
SECTIONS_ALL="import fullsync steady cluster fence cluster-source profile"
BENCH_SECTIONS=${BENCH_SECTIONS:-${BENCH_ONLY:-$SECTIONS_ALL}}
BENCH_SECTIONS=${BENCH_SECTIONS//,/ }
# The steady-state load of issue 15's table (the anchor row of the targets).
LOAD_N=${BENCH_LOAD_N:-1000000}
LOAD_TESTS=set,lpush,incr,hset
LOAD_P=32
LOAD_R=${BENCH_LOAD_R:-100000}
# LOAD: the load's command, less the source's port (-p PORT after it).
LOAD=(redis-benchmark -h 127.0.0.1 -t "$LOAD_TESTS" -n "$LOAD_N" -P "$LOAD_P" -r "$LOAD_R" -q)
QUIET_MAX=${QUIET_MAX:-120}
QUIET_PCT=${QUIET_PCT:-15}
PROFILE_SECONDS=${PROFILE_SECONDS:-20}
PROFILE_STRACE=${PROFILE_STRACE:-1}
PROFILE_FENCE_OFF=${PROFILE_FENCE_OFF:-1}
PROFILE_NATIVE=${PROFILE_NATIVE:-1}
# Documented bounds (README "Memory") and the targets of issue 15.
RSS_IMPORT_MB=200
RSS_SYNC_MB=256
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
for sec in $BENCH_SECTIONS; do
	case " $SECTIONS_ALL gobench " in *" $sec "*) ;; *) echo "bench: unknown section '$sec' (known: $SECTIONS_ALL gobench)" >&2; exit 2 ;; esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS must be a positive integer, not '$RUNS'" >&2; exit 2; }
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
		kill -CONT "$pid" 2>/dev/null || true # a paused one (steady's turns) acts on it only then
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
# cluster_start NAME N [redis-server args...]: N masters NAME-0..N-1, all slots, cluster_state:ok.
cluster_start() {
	local name=$1 n=$2 i addrs=() ok
	shift 2
	for ((i = 0; i < n; i++)); do
		srv_start "$name-$i" --cluster-enabled yes --cluster-config-file "$WORK/srv/$name-$i/nodes.conf" --cluster-node-timeout 5000 "$@"
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
cpu_sample() { { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{ match($0, /.*\)/); c=substr($0, index($0,"(")+1, RLENGTH-index($0,"(")-1); split(substr($0, RLENGTH+2), f, " "); gsub(/ /, "_", c); print $1, f[12]+f[13], c }'; }
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

# ferry_conf NAME [FENCE [STATUS_ADDR]]: a job file for one job; prints its path.
ferry_conf() {
	local f=$WORK/$1.toml
	cat >"$f" <<-EOF
		name = "$1"
		data_dir = "$WORK/ferry-data"
		status_addr = "${3:-off}"
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

# Cleanup from here on, whatever happens: the section's processes, every pid
# started here, the work directory.
# kill_tree PID: SIGTERM a process and everything it started, then wait for them.
kill_tree() {
	local all=() p c i
	local queue=("$1")
	while [ ${#queue[@]} -gt 0 ]; do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		all+=("$p")
		for c in $(ps -o pid= --ppid "$p" 2>/dev/null || true); do queue+=("$c"); done
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
say "# BENCH_KEYS=$BENCH_KEYS BENCH_BIG=$BENCH_BIG RUNS=$RUNS BENCH_SECTIONS=\"$BENCH_SECTIONS\"$([ "${BENCH_QUICK:-0}" = 1 ] && echo " QUICK (smoke check: figures meaningless)") load: redis-benchmark -t $LOAD_TESTS -n $LOAD_N -P $LOAD_P -r $LOAD_R"
say "# figures: medians of RUNS runs (raw runs in brackets); ratio = ferry / anchor unless said otherwise"
say "# results: $OUT"

want() { case " $BENCH_SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }

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
	say "[import] ratio import_s/load_s = $(ratio "$fw" "$fs")x; peak RSS $rmax MB [${rss[*]}]"
	say "[import] bound peak RSS <= ${RSS_IMPORT_MB} MB: $(bar "$rmax" "<=" "$RSS_IMPORT_MB") (${rmax} MB, worst run)"
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
	local rmax rl
	rmax=$(printf '%s\n' "${ferry_rss[@]}" | sort -g | tail -1)
	rl=$(ratio "$fm" "$nl")
	say "[fullsync] ferry migrate: ${fm}s [${ferry_t[*]}], peak RSS ${rmax} MB [${ferry_rss[*]}]"
	say "[fullsync] ratio ferry/native-disk-load = $(ratio "$fm" "$nd")x, ferry/native-diskless-load = ${rl}x"
	say "[fullsync] target full sync <= 1.0x native diskless load: $(bar "$rl" "<=" 1.0) (${rl}x); peak RSS <= ${RSS_SYNC_MB} MB: $(bar "$rmax" "<=" "$RSS_SYNC_MB") (${rmax} MB, worst run)"
	fsc=$(median "${scan_t[@]}")
	say "[fullsync] ferry migrate --reader scan: ${fsc}s [${scan_t[*]}], peak_rss_mb=$(printf '%s\n' "${scan_rss[@]}" | sort -g | tail -1)"
	say "[fullsync] ratio scan/psync = $(ratio "$fsc" "$fm")x, scan/native-disk-load = $(ratio "$fsc" "$nd")x"
	fullsync_pinned
	say "[fullsync] check: ${check:-ok}; $(quiet_note "$q0")"
}

# proc_cpu PID...: CPU seconds of the processes and their reaped children
# (a server's fork child counts once it exits).
proc_cpu() { local p; for p in "$@"; do sed 's/.*) //' "/proc/$p/stat"; done | awk '{t += $12+$13+$14+$15} END{printf "%.2f", t/100}'; }
# cpu_since C0 PID...: CPU seconds the processes used since proc_cpu said C0.
cpu_since() { awk -v a="$1" -v b="$(proc_cpu "${@:2}")" 'BEGIN{printf "%.1f", b-a}'; }
# forks_reaped PORT...: wait (at most 5 s) until no server has a snapshot
# child. A diskless replica is synced before its source's cron reaps the fork
# child (every 100 ms), and a child's CPU counts in its parent's /proc only
# once reaped: read at once, the native anchor lost ~40 % of the sources'
# CPU (cluster bed runs of three sources: 17.4 s read at once, 29.0 s read
# 1.5 s later).
forks_reaped() {
	local p t busy
	for ((t = 0; t < 50; t++)); do
		busy=0
		for p in "$@"; do [ "$(info_field "$p" persistence rdb_bgsave_in_progress)" = 0 ] || busy=1; done
		[ "$busy" = 0 ] && return 0
		sleep 0.1
	done
	log "a source's snapshot child outlived the wait: its CPU may be missing"
}
# pin CORES PID...: every thread of the processes on CORES (a fork inherits it).
pin() { local p; for p in "${@:2}"; do taskset -a -p -c "$1" "$p" >/dev/null; done; }

# fullsync_pinned: the diskless anchor and ferry again, with the source on
# core 0 and everything else (replica, or ferry and its target) on the other
# cores. On a small machine the source's fork child, which sets the pace of
# both, is short of CPU: any CPU ferry and its target use beyond a replica's
# is taken from it. Pinned, the pair shows whether ferry keeps pace with the
# source when it does not share its core (as on separate machines). The
# source's CPU per run (its fork child included) tells how much of a
# difference is the source's own pace.
fullsync_pinned() {
	[ "$cores" -ge 2 ] || { say "[fullsync] pinned: skipped (one core)"; return 0; }
	local rest="1-$((cores - 1))" r s c0 nat=() fer=() natc=() ferc=()
	pin 0 "${PID[src]}"
	for ((r = 1; r <= RUNS; r++)); do
		srv_start rep --repl-diskless-load on-empty-db
		pin "$rest" "${PID[rep]}"
		s=$(wait_quiet)
		ST0=$(now)
		c0=$(proc_cpu "${PID[src]}")
		taskset -c "$rest" "$BIN/lagwatch" wait -replicaof -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[rep]}" >"$LOGS/fullsync-pinned-native-$r.txt"
		nat+=("$(kv "$LOGS/fullsync-pinned-native-$r.txt" counts_equal_s)")
		forks_reaped "${PORT[src]}"
		natc+=("$(cpu_since "$c0" "${PID[src]}")")
		echo "pinned native run $r: $(cat "$LOGS/fullsync-pinned-native-$r.txt") source_cpu_s=${natc[-1]} ($(step_log "$ST0" "$s"))" >>"$LOGS/fullsync.log"
		srv_stop rep
		srv_start fs
		pin "$rest" "${PID[fs]}"
		s=$(wait_quiet)
		ST0=$(now)
		c0=$(proc_cpu "${PID[src]}")
		taskset -c "$rest" "$BIN/runstat" -o "$LOGS/fullsync-pinned-ferry-$r.stats" -- "$FERRY" migrate -c "$(ferry_conf fullsync-pinned)" \
			--source "redis://127.0.0.1:${PORT[src]}" --target "redis://127.0.0.1:${PORT[fs]}" >"$LOGS/fullsync-pinned-ferry-$r.out" 2>"$LOGS/fullsync-pinned-ferry-$r.log" || {
			say "[fullsync] pinned ferry FAILED (run $r, exit $(kv "$LOGS/fullsync-pinned-ferry-$r.stats" exit)): $(tail -1 "$LOGS/fullsync-pinned-ferry-$r.log")"
		}
		fer+=("$(kv "$LOGS/fullsync-pinned-ferry-$r.stats" wall_s)")
		forks_reaped "${PORT[src]}"
		ferc+=("$(cpu_since "$c0" "${PID[src]}")")
		echo "pinned ferry run $r: $(tr -d '\n' <"$LOGS/fullsync-pinned-ferry-$r.stats") source_cpu_s=${ferc[-1]} ($(step_log "$ST0" "$s"))" >>"$LOGS/fullsync.log"
		srv_stop fs
	done
	pin "0-$((cores - 1))" "${PID[src]}"
	local n f
	n=$(median "${nat[@]}"); f=$(median "${fer[@]}")
	say "[fullsync] pinned (source on core 0, the rest on $rest): native diskless ${n}s [${nat[*]}], source CPU [${natc[*]}] s; ferry ${f}s [${fer[*]}], source CPU [${ferc[*]}] s; ratio $(ratio "$f" "$n")x"
}

# ---------------------------------------------------------------- 4. steady

# steady_run WHO DST_PORT R [CORES]: load R with the lag probe; appends to $LOGS/steady-WHO.txt
# A heartbeat every 20 ms gives a 7 s load ~350 samples: with one every
# 100 ms (~70) the p99 was the run's worst sample, and varied 11-921 ms for
# the native replica alone between runs.
# With CORES the load generator runs on core 0, the source's, and the lag
# probe on CORES, the replica's or ferry's and its target's: as on separate
# machines, whatever CPU ferry and its target use beyond a replica's is not
# the source's, and the load's duration shows whether ferry keeps pace.
steady_run() {
	local who=$1 dst=$2 r=$3 s load=() probe=()
	if [ -n "${4:-}" ]; then
		load=(taskset -c 0)
		probe=(taskset -c "$4")
	fi
	s=$(wait_quiet)
	ST0=$(now)
	"${probe[@]}" "$BIN/lagwatch" lag -interval 20ms -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:$dst" -csv "$LOGS/steady-$who-$r.csv" \
		-load-out "$LOGS/steady-$who-$r.bench" -- \
		"${load[@]}" "${LOAD[@]}" -p "${PORT[src]}" >"$LOGS/steady-$who-$r.txt"
	local rps
	rps=$(tr '\r' '\n' <"$LOGS/steady-$who-$r.bench" | awk -F': ' '/requests per second/{split($2, a, " "); printf "%s=%.0f ", $1, a[1]}')
	echo "$who run $r: $(cat "$LOGS/steady-$who-$r.txt") rps: $rps($(step_log "$ST0" "$s"))" | tee -a "$LOGS/steady.log" >>"$LOGS/steady-$who.txt"
}
# The loads alternate, ferry's then the replica's, so that both meet the
# same hour: on this kind of VM the anchor's loads of one run spread by 20 %
# and more, and several loads of one side after those of the other compared
# two hours as much as two replication paths. Both are attached before the
# first load; the side whose turn it is not is paused (SIGSTOP) and its link
# cut on the source, and at its next turn it reconnects and resumes with a
# partial resync from the source's backlog (sized for a load), as after any
# dropped link, and catches up before its load. A paused side that stayed
# connected would make the source keep everything written meanwhile in
# fresh memory (its replication buffer is shared by the replicas and cannot
# be trimmed behind the slowest): measured, that slowed every load by a
# third, on either side's turn, and hid the difference between the sides.
#
# steady_link_id SIDE: the CLIENT ID of SIDE's replication link on the
# source: ferry's is named ferry-reader-*, the native replica's unnamed.
steady_link_id() {
	rcli "${PORT[src]}" client list type replica | awk -v side="$1" '{
		id = ""; name = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^id=/) id = substr($i, 4)
			if ($i ~ /^name=/) name = substr($i, 6)
		}
		if ((side == "ferry") == (name ~ /^ferry-reader-/)) print id
	}'
}
# steady_turn SIDE: SIDE (ferry or native) reads the source again, the other
# side is paused and its link cut; returns once SIDE has caught up.
steady_turn() {
	local dst=st other=native stop=${PID[sr]} cont=$STEADY_FERRY id
	if [ "$1" = native ]; then
		dst=sr other=ferry stop=$STEADY_FERRY cont=${PID[sr]}
	fi
	kill -STOP "$stop"
	for id in $(steady_link_id "$other"); do rcli "${PORT[src]}" client kill id "$id" >/dev/null; done
	kill -CONT "$cont"
	echo "$1 turn: caught up $("$BIN/lagwatch" wait -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[$dst]}")" >>"$LOGS/steady.log"
}
# steady_rounds SUFFIX [CORES]: RUNS rounds of a load with ferry, then one
# with the native replica (results under ferrySUFFIX and nativeSUFFIX).
steady_rounds() {
	local r
	for ((r = 1; r <= RUNS; r++)); do
		steady_turn ferry
		steady_run "ferry$1" "${PORT[st]}" "$r" "${2:-}"
		steady_turn native
		steady_run "native$1" "${PORT[sr]}" "$r" "${2:-}"
	done
}
# steady_pinned: steady_rounds with the source on core 0 and the rest
# (ferry and its target, the replica) on the other cores.
steady_pinned() {
	[ "$cores" -ge 2 ] || return 0
	local rest="1-$((cores - 1))"
	pin 0 "${PID[src]}"
	pin "$rest" "$STEADY_FERRY" "${PID[st]}" "${PID[sr]}"
	steady_rounds -pinned "$rest"
	pin "0-$((cores - 1))" "${PID[src]}" "$STEADY_FERRY" "${PID[st]}" "${PID[sr]}"
}
runs_of() { grep -o " $2=[^ ]*" "$LOGS/steady-$1.txt" | sed 's/.*=//' | tr '\n' ' ' | sed 's/ $//'; }
steady_med() { # WHO KEY: median over the runs
	local f=$LOGS/steady-$1.txt
	# shellcheck disable=SC2046
	median $(grep -o " $2=[^ ]*" "$f" | sed 's/.*=//')
}

# child_of PID: the first child of PID (ferry under runstat), or PID itself.
child_of() {
	local c
	c=$(ps -o pid= --ppid "$1" 2>/dev/null | head -1 | tr -d ' ')
	echo "${c:-$1}"
}
# hwm_reset PID / hwm_mb PID: the process's peak RSS (VmHWM) from now on.
# Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0), so
# the live phase is measured apart from the full sync that attached it.
hwm_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || log "cannot reset VmHWM of pid $1: peak RSS includes the attach"; }
hwm_mb() { awk '/^VmHWM:/{printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo n/a; }

section_steady() {
	main_source
	local q0 conf fpid hwm_attach hwm_live backlog
	q0=$(quiet_mark)
	backlog=$(rcli "${PORT[src]}" config get repl-backlog-size | tail -1)
	# What one load writes (~250 MB of commands), twice over.
	rcli "${PORT[src]}" config set repl-backlog-size 512mb >/dev/null
	# A paused ferry renews its lease late: the lease must outlast a turn.
	conf=$(BENCH_FERRY_CONF="${BENCH_FERRY_CONF:-}"$'\n''lease_ttl = "5m"' ferry_conf steady)
	srv_start st
	srv_start sr
	"$BIN/runstat" -o "$LOGS/steady-ferry.stats" -- "$FERRY" sync -c "$conf" --source "redis://127.0.0.1:${PORT[src]}" \
		--target "redis://127.0.0.1:${PORT[st]}" >"$LOGS/steady-ferry.out" 2>"$LOGS/steady-ferry.log" &
	fpid=$!
	PIDS+=("$fpid")
	"$BIN/lagwatch" wait -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[st]}" >"$LOGS/steady-ferry-attach.txt"
	log "steady: ferry attached ($(cat "$LOGS/steady-ferry-attach.txt"))"
	STEADY_FERRY=$(child_of "$fpid")
	hwm_attach=$(hwm_mb "$STEADY_FERRY")
	"$BIN/lagwatch" wait -replicaof -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[sr]}" >"$LOGS/steady-native-attach.txt"
	log "steady: native replica attached ($(cat "$LOGS/steady-native-attach.txt"))"
	# Two loads, not measured, both sides attached: the backlog fills up
	# (its memory taken once), so no turn pays for its growth.
	local w
	for w in 1 2; do
		"${LOAD[@]}" -p "${PORT[src]}" >/dev/null 2>&1
	done
	hwm_reset "$STEADY_FERRY"
	steady_rounds ""
	hwm_live=$(hwm_mb "$STEADY_FERRY")
	steady_pinned
	steady_turn ferry # the last load reaches the target before the digest
	kill -CONT "${PID[sr]}"
	stop_pid "$fpid" 120
	local check
	rm -f "$SRC_DIGEST"
	check="ferry $(tr -d '\n' <"$LOGS/steady-ferry.stats"); $(cat "$LOGS/steady-ferry.out"); digest $(same_data source "${PORT[src]}" steady-target "${PORT[st]}")"
	srv_stop st
	srv_stop sr
	rm -f "$SRC_DIGEST"
	rcli "${PORT[src]}" config set repl-backlog-size "$backlog" >/dev/null

	for w in native ferry; do
		local label="ferry sync"
		[ $w = native ] && label="anchor native replica"
		say "[steady] $label: load_s=$(steady_med $w load_s) [$(runs_of $w load_s)], source write_rate=$(steady_med $w write_rate) ops/s, apply_rate=$(steady_med $w apply_rate) ops/s, lag p50=$(steady_med $w lag_p50_ms) p99=$(steady_med $w lag_p99_ms) [$(runs_of $w lag_p99_ms)] max=$(steady_med $w lag_max_ms) ms, caught up $(steady_med $w catchup_s)s after the load"
	done
	local p99 np99 cu lr pr
	p99=$(steady_med ferry lag_p99_ms); np99=$(steady_med native lag_p99_ms); cu=$(steady_med ferry catchup_s)
	lr=$(ratio "$(steady_med ferry load_s)" "$(steady_med native load_s)")
	pr=$(ratio "$p99" "$np99")
	say "[steady] ratio ferry/native: load duration ${lr}x, lag p50 $(ratio "$(steady_med ferry lag_p50_ms)" "$(steady_med native lag_p50_ms)")x, lag p99 ${pr}x, apply_rate $(ratio "$(steady_med ferry apply_rate)" "$(steady_med native apply_rate)")x"
	say "[steady] target live: load duration <= 1.05x native: $(bar "$lr" "<=" 1.05) (${lr}x)"
	say "[steady] target live: lag p99 <= 1.5x native: $(bar "$pr" "<=" 1.5) (${pr}x); lag p99 < 100 ms: $(bar "$p99" "<" 100) ($p99 ms)"
	say "[steady] target live: caught up <= 1 s after the load: $(bar "$cu" "<=" 1) (${cu}s)"
	if [ "$cores" -ge 2 ]; then
		say "[steady] pinned (source and load generator on core 0; the replica, or ferry and its target, on 1-$((cores - 1))): load_s native $(steady_med native-pinned load_s) [$(runs_of native-pinned load_s)], ferry $(steady_med ferry-pinned load_s) [$(runs_of ferry-pinned load_s)] = $(ratio "$(steady_med ferry-pinned load_s)" "$(steady_med native-pinned load_s)")x; lag p99 native $(steady_med native-pinned lag_p99_ms) [$(runs_of native-pinned lag_p99_ms)], ferry $(steady_med ferry-pinned lag_p99_ms) [$(runs_of ferry-pinned lag_p99_ms)] ms; ferry caught up $(steady_med ferry-pinned catchup_s)s after the load"
	fi
	say "[steady] peak RSS of ferry: live phase ${hwm_live} MB (bound ${RSS_SYNC_MB} MB: $(bar "$hwm_live" "<=" "$RSS_SYNC_MB")); attach (full sync) ${hwm_attach} MB (bound ${RSS_SYNC_MB} MB: $(bar "$hwm_attach" "<=" "$RSS_SYNC_MB"))"
	say "[steady] load duration = redis-benchmark's wall time on the source; lag = heartbeat every 20 ms on the source, polled every 2 ms on the target; apply_rate = source commands (commandstats delta of set/lpush/incr/hset, heartbeats excluded) / (load start -> last heartbeat seen on the target)"
	say "[steady] check: $check; $(quiet_note "$q0")"
}

# ---------------------------------------------------------------- 5. profile

# cpu_ticks PID: utime+stime of a process (all its threads), in clock ticks.
cpu_ticks() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return 0; }
	echo "${st##*) }" | awk '{print $12 + $13}'
}
# machine_ticks: busy ticks of all cores (user+nice+system+irq+softirq+steal).
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
io_field() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
# metric ADDR NAME: a ferry counter summed over its labels
metric() { { curl -fsS --max-time 10 "http://$1/metrics" 2>/dev/null || true; } | awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $NF} END{printf "%.0f\n", s}'; }
# cmdstats PORT: "cmd calls usec" per command of INFO commandstats
cmdstats() { rcli "$1" info commandstats | awk -F'[:=,]' '/^cmdstat_/{sub(/^cmdstat_/, "", $1); print $1, $3, $5}'; }
# snap NAME: counters of the profile window into $LOGS/profile-NAME.snap
snap() {
	{
		echo "time $(now)"
		echo "machine $(machine_ticks)"
		echo "ferry $(cpu_ticks "$PF_PID")"
		echo "source $(cpu_ticks "${PID[src]}")"
		echo "target $(cpu_ticks "${PID[pt]}")"
		echo "syscr $(io_field "$PF_PID" syscr)"
		echo "syscw $(io_field "$PF_PID" syscw)"
		echo "rchar $(io_field "$PF_PID" rchar)"
		echo "wchar $(io_field "$PF_PID" wchar)"
		echo "batches $(metric "$PF_ADDR" ferry_writer_batches_total)"
		echo "ops $(metric "$PF_ADDR" ferry_writer_ops_total)"
		echo "applied $(metric "$PF_ADDR" ferry_commands_applied_total)"
		echo "wbytes $(metric "$PF_ADDR" ferry_writer_bytes_total)"
		# a full resync inside a window (the source dropped a replica that
		# fell behind) makes it invalid
		echo "sync_full $(info_field "${PORT[src]}" stats sync_full)"
		cmdstats "${PORT[pt]}" | sed 's/^/tgt_/'
		cmdstats "${PORT[src]}" | sed 's/^/src_/'
	} >"$LOGS/profile-$1.snap"
}
# delta A B KEY [COLUMN]: the difference of KEY between two snapshots
delta() { awk -v k="$3" -v c="${4:-2}" 'FNR == 1 {f++} $1 == k {v[f] = $c} END{printf "%.0f\n", v[2] - v[1]}' "$LOGS/profile-$1.snap" "$LOGS/profile-$2.snap"; }
per() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN{if (b + 0 == 0) print "n/a"; else printf "%." d "f", a / b}'; }

# load_loop: the steady-state load against the source, over and over, until
# killed (the profile windows must fall inside a load). A SIGTERM stops the
# running redis-benchmark too (wait returns at once on a trapped signal).
load_loop() {
	local bp=
	trap - ERR
	trap '[ -n "$bp" ] && kill "$bp" 2>/dev/null; exit 0' TERM
	while :; do
		"${LOAD[@]}" -p "${PORT[src]}" >>"$LOGS/profile-load.txt" 2>&1 &
		bp=$!
		wait "$bp" || return 0
	done
}

# The CPU profile of ferry sync under the steady-state load (pprof from the
# status server), the CPU of ferry, source and target over the same window,
# ferry's syscalls and context switches per flight (a writer batch the target
# acknowledged), the target's time per command (the fence's MULTI/EXEC and
# marker SET included), and an strace -c pass for the syscall mix.
section_profile() {
	if ! command -v curl >/dev/null; then
		say "[profile] SKIPPED: curl not found on PATH (it fetches the profile and /metrics)"
		return 0
	fi
	main_source
	local conf flags=() fpid lpid
	pick_port
	PF_ADDR=127.0.0.1:$PICKED
	conf=$(ferry_conf profile multi "$PF_ADDR")
	# Newer builds serve /debug/pprof only when asked (--pprof, or pprof = true
	# in the file); older ones always do, and reject the unknown key.
	if "$FERRY" sync --help 2>&1 | grep -q -- '-pprof'; then
		flags+=(--pprof)
	else
		printf 'job = "probe"\nsource = "redis://127.0.0.1:1"\ntarget = "redis://127.0.0.1:2"\npprof = true\n' >"$WORK/pprof-probe.toml"
		if "$FERRY" config check -c "$WORK/pprof-probe.toml" >/dev/null 2>&1; then
			echo 'pprof = true' >>"$conf"
		fi
	fi
	srv_start pt
	"$BIN/runstat" -o "$LOGS/profile-ferry.stats" -- "$FERRY" sync -c "$conf" "${flags[@]}" --source "redis://127.0.0.1:${PORT[src]}" \
		--target "redis://127.0.0.1:${PORT[pt]}" >"$LOGS/profile-ferry.out" 2>"$LOGS/profile-ferry.log" &
	fpid=$!
	PIDS+=("$fpid")
	"$BIN/lagwatch" wait -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[pt]}" >"$LOGS/profile-attach.txt"
	PF_PID=$(child_of "$fpid")
	if ! curl -fsS --max-time 10 -o /dev/null "http://$PF_ADDR/debug/pprof/"; then
		say "[profile] SKIPPED: ferry serves no /debug/pprof on its status address $PF_ADDR (flags: ${flags[*]:-none}; see $LOGS/profile-ferry.log)"
		stop_pid "$fpid" 120; srv_stop pt
		return 0
	fi
	: >"$LOGS/profile-load.txt"
	load_loop &
	lpid=$!
	PIDS+=("$lpid")
	sleep 1 # the load under way
	local perf_pid=""
	if command -v perf >/dev/null; then
		perf stat -e task-clock,context-switches,cpu-migrations -p "$PF_PID" -o "$LOGS/profile-perf-stat.txt" -- sleep "$PROFILE_SECONDS" 2>/dev/null &
		perf_pid=$!
		PIDS+=("$perf_pid")
	fi
	snap a
	if ! curl -fsS --max-time $((PROFILE_SECONDS + 30)) -o "$LOGS/profile-cpu.pb.gz" "http://$PF_ADDR/debug/pprof/profile?seconds=$PROFILE_SECONDS"; then
		say "[profile] FAILED: no CPU profile from http://$PF_ADDR/debug/pprof/profile"
		kill_tree "$lpid"; stop_pid "$fpid" 120; srv_stop pt
		return 1
	fi
	snap b
	[ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null
	local st_s=$(((PROFILE_SECONDS + 1) / 2))
	if [ "$PROFILE_STRACE" = 1 ] && command -v strace >/dev/null; then
		# strace slows every syscall down: its own window, counts only
		snap c
		timeout -s INT "$st_s" strace -c -f -p "$PF_PID" -o "$LOGS/profile-strace.txt" 2>/dev/null || true
		snap d
	fi
	stop_pid "$fpid" 120
	srv_stop pt
	# The next two windows attach a fresh target first: without the load,
	# like the first. Under the looped load a 1M-key full sync outlasts the
	# source's client-output-buffer-limit for replicas (what the load writes
	# meanwhile is buffered on the source until the snapshot is sent), the
	# source drops the link and the attach starts over, for ferry and for a
	# native replica alike.
	kill_tree "$lpid"
	# The same load with fence = "off" into a fresh target: what MULTI/EXEC
	# and the marker SETs cost ferry and the target per applied command.
	if [ "$PROFILE_FENCE_OFF" = 1 ]; then
		local conf_off
		pick_port
		PF_ADDR=127.0.0.1:$PICKED
		conf_off=$(ferry_conf profile-off off "$PF_ADDR")
		if grep -q '^pprof = true' "$conf"; then echo 'pprof = true' >>"$conf_off"; fi
		srv_start pt
		"$BIN/runstat" -o "$LOGS/profile-off-ferry.stats" -- "$FERRY" sync -c "$conf_off" "${flags[@]}" --source "redis://127.0.0.1:${PORT[src]}" \
			--target "redis://127.0.0.1:${PORT[pt]}" >"$LOGS/profile-off-ferry.out" 2>"$LOGS/profile-off-ferry.log" &
		fpid=$!
		PIDS+=("$fpid")
		"$BIN/lagwatch" wait -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[pt]}" >"$LOGS/profile-off-attach.txt"
		PF_PID=$(child_of "$fpid")
		load_loop &
		lpid=$!
		PIDS+=("$lpid")
		sleep 1
		snap e
		sleep "$st_s"
		snap f
		kill_tree "$lpid"
		stop_pid "$fpid" 120
		srv_stop pt
	fi
	# The anchor: a native replica of the source under the same load.
	if [ "$PROFILE_NATIVE" = 1 ]; then
		srv_start pt
		"$BIN/lagwatch" wait -replicaof -src "127.0.0.1:${PORT[src]}" -dst "127.0.0.1:${PORT[pt]}" >"$LOGS/profile-native-attach.txt"
		PF_PID=0 PF_ADDR=127.0.0.1:1
		load_loop &
		lpid=$!
		PIDS+=("$lpid")
		sleep 1
		snap g
		sleep "$st_s"
		snap h
		kill_tree "$lpid"
		srv_stop pt
	fi

	# ---- report
	local mt ft sc tc ba op ap
	mt=$(delta a b machine); ft=$(delta a b ferry); sc=$(delta a b source); tc=$(delta a b target)
	ba=$(delta a b batches); op=$(delta a b ops); ap=$(delta a b applied)
	local secs hz
	secs=$(awk -v a="$(awk '$1 == "time" {print $2}' "$LOGS/profile-a.snap")" -v b="$(awk '$1 == "time" {print $2}' "$LOGS/profile-b.snap")" 'BEGIN{printf "%.2f", b - a}')
	hz=$(getconf CLK_TCK)
	say "[profile] window ${secs}s under redis-benchmark -t $LOAD_TESTS -n $LOAD_N -P $LOAD_P -r $LOAD_R (looped), ferry sync fence=multi, standalone -> standalone"
	say "[profile] CPU in % of one core: ferry $(per $((ft * 100)) "$(awk -v s="$secs" -v h="$hz" 'BEGIN{print s*h}')" 0)%, source redis $(per $((sc * 100)) "$(awk -v s="$secs" -v h="$hz" 'BEGIN{print s*h}')" 0)%, target redis $(per $((tc * 100)) "$(awk -v s="$secs" -v h="$hz" 'BEGIN{print s*h}')" 0)%, whole machine $(per $((mt * 100)) "$(awk -v s="$secs" -v h="$hz" 'BEGIN{print s*h}')" 0)% of $(nproc)00%"
	say "[profile] share of the machine's busy CPU: ferry $(per $((ft * 100)) "$mt" 0)%, source $(per $((sc * 100)) "$mt" 0)%, target $(per $((tc * 100)) "$mt" 0)% (the rest: redis-benchmark, the probes, other users)"
	say "[profile] applied $ap commands in $ba flights ($(per "$op" "$ba" 1) ops and $(per "$(delta a b wbytes)" "$ba" 0) bytes per flight); ferry CPU $(per "$(awk -v t="$ft" -v h="$hz" 'BEGIN{print t/h*1e6}')" "$ap" 2) us per applied command"
	say "[profile] syscalls (/proc/PID/io, no tracer): $(per "$(delta a b syscr)" "$ba" 1) reads + $(per "$(delta a b syscw)" "$ba" 1) writes per flight; $(per "$(delta a b rchar)" "$(delta a b syscr)" 0) bytes per read, $(per "$(delta a b wchar)" "$(delta a b syscw)" 0) bytes per write"
	if [ -s "$LOGS/profile-perf-stat.txt" ]; then
		local cs
		cs=$(awk '/context-switches/{gsub(/,/, "", $1); print $1}' "$LOGS/profile-perf-stat.txt")
		say "[profile] context switches (perf stat): ${cs:-n/a} in the window = $(per "${cs:-0}" "$ba" 1) per flight"
	fi
	# the target's time per command: the fence's MULTI/EXEC and marker SET
	say "[profile] target redis, commands in the window (calls, usec, share of its command time):"
	awk 'FNR == 1 {f++} /^tgt_/ {c[$1] = c[$1]; if (f == 1) {a[$1] = $2; u[$1] = $3} else {b[$1] = $2; w[$1] = $3}} END{for (k in b) {dc = b[k] - a[k]; du = w[k] - u[k]; if (dc > 0) {print k, dc, du; t += du}} print "TOTAL", 0, t}' \
		"$LOGS/profile-a.snap" "$LOGS/profile-b.snap" | sort -k3 -g -r | awk 'NR == 1 {t = $3; next} {printf "[profile]   %-14s calls=%d usec=%d (%.1f%%)\n", substr($1, 5), $2, $3, t ? 100 * $3 / t : 0}' | head -12 | tee -a "$SUM"
	# CPU per applied command: the load's commands the source ran in the
	# window (what the replica or ferry applies over it, to within the lag),
	# the same denominator for ferry, ferry with fence off and a native
	# replica; not the target's count, which a folded run (fold) lowers.
	local w label rep
	declare -A repl=()
	for w in "a b fence=multi" "e f fence=off" "g h native-replica"; do
		set -- $w
		[ -s "$LOGS/profile-$2.snap" ] || continue
		label=$3
		if [ "$(delta "$1" "$2" sync_full)" != 0 ]; then
			say "[profile] CPU, $label: INVALID: the source did a full resync during the window (the replica fell behind; see the source's log)"
			continue
		fi
		rep=$(awk -v h="$(getconf CLK_TCK)" 'FNR == 1 {f++}
			$1 ~ /^src_(set|lpush|incr|hset)$/ {c[f] += $2}
			$1 == "time" {tm[f] = $2}
			$1 == "ferry" || $1 == "source" || $1 == "target" {t[f, $1] = $2}
			END{n = c[2] - c[1]; if (n <= 0) {print "n/a"; exit}
				us = 1e6 / h
				printf "%.3f %.3f %.3f %.3f %.0f %.0f\n", (t[2, "source"] - t[1, "source"]) * us / n, (t[2, "target"] - t[1, "target"]) * us / n,
					(t[2, "ferry"] - t[1, "ferry"]) * us / n, (t[2, "target"] - t[1, "target"] + t[2, "ferry"] - t[1, "ferry"]) * us / n,
					n / (tm[2] - tm[1]), n / (tm[2] - tm[1])}' "$LOGS/profile-$1.snap" "$LOGS/profile-$2.snap")
		# shellcheck disable=SC2086
		set -- $rep
		[ $# = 6 ] || { say "[profile] CPU, $label: n/a"; continue; }
		repl[$label]=$4
		say "[profile] CPU, $label: target $2 us + ferry $3 us = $4 us per applied command ($6/s applied); source $1 us per command it ran ($5/s)"
	done
	[ -n "${repl[fence=off]:-}" ] && say "[profile] fence cost: replication CPU per applied command, fence=multi / fence=off = $(ratio "${repl[fence=multi]:-n/a}" "${repl[fence=off]}")x"
	[ -n "${repl[native-replica]:-}" ] && say "[profile] replication CPU per applied command, ferry (fence=multi, target+ferry) / native replica = $(ratio "${repl[fence=multi]:-n/a}" "${repl[native-replica]}")x"
	# EXEC's usec includes the commands it runs (Redis 7): what is left is the
	# transaction's own cost plus call() bookkeeping of its commands.
	awk 'FNR == 1 {f++} /^tgt_/ {if (f == 1) {a[$1] = $2; u[$1] = $3} else {b[$1] = $2; w[$1] = $3}}
		END{for (k in b) {du = w[k] - u[k]; if (k == "tgt_exec") ex = du; else if (k == "tgt_multi") mu = du; else if (k != "tgt_info" && k != "tgt_select") inner += du}
			n = b["tgt_exec"] - a["tgt_exec"]
			if (n > 0) printf "[profile] fence on the target: %d MULTI/EXEC; EXEC beyond its queued commands %.1f us per EXEC (%.0f%% of the target'"'"'s command time; includes call() bookkeeping of the queued commands), MULTI %.2f us\n", n, (ex - inner) / n, 100 * (ex - inner) / ex, mu / n}' \
		"$LOGS/profile-a.snap" "$LOGS/profile-b.snap" | tee -a "$SUM"
	if [ -s "$LOGS/profile-strace.txt" ]; then
		local sba
		sba=$(delta c d batches)
		say "[profile] strace -c -f over ${st_s}s ($sba flights; strace slows syscalls, counts only), calls per flight (errors: EAGAIN reads, futex timeouts):"
		awk -v b="$sba" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {e = (NF == 6) ? $5 : 0; if (b > 0) printf "[profile]   %-16s %8d calls %6d errors  %.2f per flight\n", $NF, $4, e, $4 / b}' "$LOGS/profile-strace.txt" | sort -k3 -g -r | head -8 | tee -a "$SUM"
		awk -v b="$sba" '$NF == "total" && b > 0 {printf "[profile]   all syscalls: %.1f per flight\n", $4 / b}' "$LOGS/profile-strace.txt" | tee -a "$SUM"
	fi
	# the CPU profile: top functions, and flat time grouped by package
	go tool pprof -top -nodecount=40 "$LOGS/profile-cpu.pb.gz" >"$LOGS/profile-top.txt" 2>/dev/null || true
	go tool pprof -top -cum -nodecount=60 "$LOGS/profile-cpu.pb.gz" >"$LOGS/profile-top-cum.txt" 2>/dev/null || true
	go tool pprof -top -nodecount=100000 "$LOGS/profile-cpu.pb.gz" 2>/dev/null | awk '
		$1 ~ /(ms|s)$/ && $2 ~ /%$/ {
			v = $1; if (v ~ /ms$/) {sub(/ms$/, "", v); v /= 1000} else {sub(/s$/, "", v)}
			fn = $6; for (i = 7; i <= NF; i++) fn = fn " " $i
			pkg = fn; sub(/^github.com\/ferry-dev\/ferry\//, "", pkg); sub(/^github.com\/[^\/]*\/[^\/]*\//, "&", pkg)
			n = split(pkg, parts, "."); p = parts[1]
			sub(/^internal\//, "", p)
			if (fn ~ /^(runtime|internal\/runtime)/) p = "runtime"
			if (fn ~ /body$/ || fn ~ /^(internal\/bytealg|bytes\.)/) p = "bytes (IndexByte, memequal)"
			if (fn ~ /^(syscall|internal\/poll|net\.)/ || fn ~ /^net$/) p = "syscall/net"
			flat[p] += v; tot += v
		}
		END {for (p in flat) printf "%.3f %s\n", flat[p], p; printf "%.3f TOTAL\n", tot}' | sort -g -r >"$LOGS/profile-packages.txt"
	local total
	total=$(awk '$2 == "TOTAL" {print $1}' "$LOGS/profile-packages.txt")
	say "[profile] pprof: $total s of ferry CPU sampled in ${PROFILE_SECONDS}s; flat CPU by package (top; full listing: $LOGS/profile-top*.txt):"
	awk -v t="$total" '$2 != "TOTAL" && NR <= 14 {printf "[profile]   %-28s %5.1f%%\n", $2, t ? 100 * $1 / t : 0}' "$LOGS/profile-packages.txt" | tee -a "$SUM"
	# where the live path spends ferry's CPU: cumulative shares of its stages
	# (they overlap: parsing and the batch hand-off run inside the stream consumer)
	go tool pprof -top -cum -nodecount=100000 "$LOGS/profile-cpu.pb.gz" 2>/dev/null >"$LOGS/profile-cum-all.txt" || true
	say "[profile] stages (cumulative share of ferry's sampled CPU; nested stages overlap their parent):"
	while IFS='|' read -r label re; do
		awk -v l="$label" -v re="$re" '$5 ~ /%$/ && $6 ~ re {v = $5; sub(/%/, "", v); if (v + 0 > m) m = v + 0} END{printf "[profile]   %-62s %5.1f%%\n", l, m}' "$LOGS/profile-cum-all.txt" | tee -a "$SUM"
	done <<-'EOF'
		source socket -> spool (reader PSync.stream)|reader\.\(\*PSync\)\.stream$
		stream consumer: spool -> parse -> apply -> batch (job stream)|job\.\(\*stream\)\.stream$
		  command parsing (resp Reader.ReadCommand)|resp\.\(\*Reader\)\.ReadCommand$
		  applier (apply Applier.command: route, filter, re-encode)|apply\.\(\*Applier\)\.command$
		    the command into the writer batch (writer Batch.Add*)|writer\.\(\*Batch\)\.Add(Encoded)?$
		  spool reads (spool Spool.Read)|spool\.\(\*Spool\)\.Read$
		  batch hand-off to the writer (writer Writer.Submit)|writer\.\(\*Writer\)\.Submit$
		spool writes (spool Spool.Write)|spool\.\(\*Spool\)\.Write$
		writer send (session.send: plan, MULTI/markers/EXEC, write)|writer\.\(\*session\)\.send$
		  flight plan with the fence markers (writer planFlight)|writer\.planFlight$
		writer reply reader (session.receive: +QUEUED, EXEC replies)|writer\.\(\*session\)\.receive$
		scheduler, wake-ups (runtime.findRunnable)|^runtime\.findRunnable$
		futex wake/sleep (runtime.futex)|^runtime\.futex$
		garbage collection (runtime.gcBgMarkWorker)|^runtime\.gcBgMarkWorker$
		allocation (runtime.mallocgc)|^runtime\.mallocgc$
		read/write syscalls (syscall.Syscall)|^syscall\.Syscall$
	EOF
	say "[profile] top functions (flat):"
	awk '$1 ~ /(ms|s)$/ && $2 ~ /%$/ {n++; if (n <= 15) printf "[profile]   %6s %6s  %s\n", $2, $5, $6}' "$LOGS/profile-top.txt" | tee -a "$SUM"
	say "[profile] files: $LOGS/profile-cpu.pb.gz (go tool pprof -http=: FILE), profile-top.txt, profile-top-cum.txt, profile-strace.txt, profile-*.snap"
	say "[profile] note: shares are relative and hold on a busy machine; absolute CPU figures do not"
}

# ---------------------------------------------------------------- 5. cluster

# A 3-master source cluster into a 3-master target cluster with `ferry
# migrate`, against the native anchor: one fresh standalone replica per source
# master, all sent REPLICAOF at once (lagwatch replicas), in both load modes.
section_cluster() {
	local q0 big r mode s conf check="" sk
	q0=$(quiet_mark)
	big=$([ "$BENCH_BIG" = 1 ] && echo true || echo false)
	cluster_start ccs 3 --repl-diskless-sync yes --repl-diskless-sync-delay 0
	log "cluster: generating $BENCH_KEYS keys into a 3-master source cluster"
	"$BIN/gen" -addr "127.0.0.1:${PORT[ccs-0]}" -n "$BENCH_KEYS" -big="$big" 2>"$LOGS/gen-cluster-cluster.log"
	# shellcheck disable=SC2046
	sk=$(keys_of $(cluster_ports ccs 3))
	say "[cluster] source: 3-master cluster, $sk keys, used_memory $(for p in $(cluster_ports ccs 3); do info_field "$p" memory used_memory; done | awk '{s+=$1} END{printf "%.0f", s/1048576}') MB"
	conf=$(ferry_conf cluster)
	declare -A times
	local ferry_t=() ferry_rss=()
	for ((r = 1; r <= RUNS; r++)); do
		for mode in disabled on-empty-db; do
			local pairs=() i
			for i in 0 1 2; do
				srv_start "ccr-$i" --repl-diskless-load "$mode"
				pairs+=(-pair "127.0.0.1:${PORT[ccs-$i]}=127.0.0.1:${PORT[ccr-$i]}")
			done
			s=$(wait_quiet)
			ST0=$(now)
			"$BIN/lagwatch" replicas "${pairs[@]}" >"$LOGS/cluster-native-$mode-$r.txt"
			times[$mode]+="$(kv "$LOGS/cluster-native-$mode-$r.txt" synced_s) "
			echo "native, one replica per source master at once, repl-diskless-load=$mode run $r: $(cat "$LOGS/cluster-native-$mode-$r.txt") ($(step_log "$ST0" "$s"))" >>"$LOGS/cluster.log"
			for i in 0 1 2; do srv_stop "ccr-$i"; done
		done
		cluster_start cct 3
		s=$(wait_quiet)
		ST0=$(now)
		"$BIN/runstat" -o "$LOGS/cluster-ferry-$r.stats" -- "$FERRY" migrate -c "$conf" --source "redis://127.0.0.1:${PORT[ccs-0]}" \
			--target "redis://127.0.0.1:${PORT[cct-0]}" >"$LOGS/cluster-ferry-$r.out" 2>"$LOGS/cluster-ferry-$r.log" || {
			say "[cluster] ferry FAILED (run $r, exit $(kv "$LOGS/cluster-ferry-$r.stats" exit)): $(tail -1 "$LOGS/cluster-ferry-$r.log" | cut -c1-300)"
			cluster_stop cct 3; cluster_stop ccs 3
			return 1
		}
		ferry_t+=("$(kv "$LOGS/cluster-ferry-$r.stats" wall_s)")
		ferry_rss+=("$(kv "$LOGS/cluster-ferry-$r.stats" maxrss_mb)")
		local k
		# shellcheck disable=SC2046
		k=$(keys_of $(cluster_ports cct 3))
		echo "ferry run $r: $(tr -d '\n' <"$LOGS/cluster-ferry-$r.stats") keys=$k/$sk; $(cat "$LOGS/cluster-ferry-$r.out") ($(step_log "$ST0" "$s"))" >>"$LOGS/cluster.log"
		[ "$k" = "$sk" ] || check+="run $r: target has $k keys, source $sk; "
		if [ "$r" = "$RUNS" ]; then check+="digest $(same_data cluster-source "${PORT[ccs-0]}" cluster-target "${PORT[cct-0]}")"; fi
		cluster_stop cct 3
	done
	local nd nl fm rmax rl
	# shellcheck disable=SC2086
	nd=$(median ${times[disabled]}); nl=$(median ${times[on-empty-db]}); fm=$(median "${ferry_t[@]}")
	rmax=$(printf '%s\n' "${ferry_rss[@]}" | sort -g | tail -1)
	rl=$(ratio "$fm" "$nl")
	say "[cluster] anchor one native replica per source master at once, repl-diskless-load disabled: ${nd}s [${times[disabled]% }]"
	say "[cluster] anchor one native replica per source master at once, repl-diskless-load on-empty-db: ${nl}s [${times[on-empty-db]% }]"
	say "[cluster] ferry migrate 3-master cluster -> 3-master cluster: ${fm}s [${ferry_t[*]}], peak RSS ${rmax} MB [${ferry_rss[*]}]"
	say "[cluster] ratio ferry/native-disk-load = $(ratio "$fm" "$nd")x, ferry/native-diskless-load = ${rl}x"
	say "[cluster] target cluster <= 1.1x native per-shard anchor (diskless load): $(bar "$rl" "<=" 1.1) (${rl}x); peak RSS <= ${RSS_SYNC_MB} MB: $(bar "$rmax" "<=" "$RSS_SYNC_MB") (${rmax} MB, worst run)"
	cluster_pinned "$sk"
	say "[cluster] check: ${check:-ok}; $(quiet_note "$q0")"
	cluster_stop ccs 3
}

# cluster_pinned SOURCE_KEYS: the diskless anchor and ferry again, the source
# masters on core 0 and the rest on the other cores (see fullsync_pinned).
cluster_pinned() {
	[ "$cores" -ge 2 ] || { say "[cluster] pinned: skipped (one core)"; return 0; }
	local rest="1-$((cores - 1))" r s i c0 nat=() fer=() natc=() ferc=()
	local srcs=("${PID[ccs-0]}" "${PID[ccs-1]}" "${PID[ccs-2]}")
	pin 0 "${srcs[@]}"
	for ((r = 1; r <= RUNS; r++)); do
		local pairs=()
		for i in 0 1 2; do
			srv_start "ccr-$i" --repl-diskless-load on-empty-db
			pin "$rest" "${PID[ccr-$i]}"
			pairs+=(-pair "127.0.0.1:${PORT[ccs-$i]}=127.0.0.1:${PORT[ccr-$i]}")
		done
		s=$(wait_quiet)
		ST0=$(now)
		c0=$(proc_cpu "${srcs[@]}")
		taskset -c "$rest" "$BIN/lagwatch" replicas "${pairs[@]}" >"$LOGS/cluster-pinned-native-$r.txt"
		nat+=("$(kv "$LOGS/cluster-pinned-native-$r.txt" synced_s)")
		forks_reaped "${PORT[ccs-0]}" "${PORT[ccs-1]}" "${PORT[ccs-2]}"
		natc+=("$(cpu_since "$c0" "${srcs[@]}")")
		echo "pinned native run $r: $(cat "$LOGS/cluster-pinned-native-$r.txt") sources_cpu_s=${natc[-1]} ($(step_log "$ST0" "$s"))" >>"$LOGS/cluster.log"
		for i in 0 1 2; do srv_stop "ccr-$i"; done
		cluster_start cct 3
		pin "$rest" "${PID[cct-0]}" "${PID[cct-1]}" "${PID[cct-2]}"
		s=$(wait_quiet)
		ST0=$(now)
		c0=$(proc_cpu "${srcs[@]}")
		taskset -c "$rest" "$BIN/runstat" -o "$LOGS/cluster-pinned-ferry-$r.stats" -- "$FERRY" migrate -c "$(ferry_conf cluster-pinned)" \
			--source "redis://127.0.0.1:${PORT[ccs-0]}" --target "redis://127.0.0.1:${PORT[cct-0]}" >"$LOGS/cluster-pinned-ferry-$r.out" 2>"$LOGS/cluster-pinned-ferry-$r.log" || {
			say "[cluster] pinned ferry FAILED (run $r, exit $(kv "$LOGS/cluster-pinned-ferry-$r.stats" exit)): $(tail -1 "$LOGS/cluster-pinned-ferry-$r.log" | cut -c1-300)"
		}
		fer+=("$(kv "$LOGS/cluster-pinned-ferry-$r.stats" wall_s)")
		forks_reaped "${PORT[ccs-0]}" "${PORT[ccs-1]}" "${PORT[ccs-2]}"
		ferc+=("$(cpu_since "$c0" "${srcs[@]}")")
		# shellcheck disable=SC2046
		echo "pinned ferry run $r: $(tr -d '\n' <"$LOGS/cluster-pinned-ferry-$r.stats") keys=$(keys_of $(cluster_ports cct 3))/$1 sources_cpu_s=${ferc[-1]} ($(step_log "$ST0" "$s"))" >>"$LOGS/cluster.log"
		cluster_stop cct 3
	done
	pin "0-$((cores - 1))" "${srcs[@]}"
	local n f
	n=$(median "${nat[@]}"); f=$(median "${fer[@]}")
	say "[cluster] pinned (source masters on core 0, the rest on $rest): native diskless ${n}s [${nat[*]}], sources' CPU [${natc[*]}] s; ferry ${f}s [${fer[*]}], sources' CPU [${ferc[*]}] s; ratio $(ratio "$f" "$n")x"
}

# ---------------------------------------------------------------- 6. fence

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
	# the target servers' names, for their CPU over each drain
	declare -A tnames=([multi]=fsa [off]=fsb)
	[ "$kind" = cluster ] && tnames=([multi]="fca-0 fca-1 fca-2" [off]="fcb-0 fcb-1 fcb-2")
	tgt_ticks() { local n t=0; for n in ${tnames[$1]}; do t=$((t + $(cpu_ticks "${PID[$n]}"))); done; echo "$t"; }
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
		"${LOAD[@]}" -p "${PORT[fsrc]}" >"$LOGS/fence-$kind-load-$r.bench" 2>&1
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
			local tt0 tt1 fcpu tcpu
			tt0=$(tgt_ticks "$m")
			"$BIN/lagwatch" drain -timeout 60m -src "127.0.0.1:${PORT[fsrc]}" -dst "127.0.0.1:${tgt[$m]}" -cmds "$cmds" \
				-tool-out "$LOGS/fence-$kind-$m-$r.log" -- \
				"$BIN/runstat" -o "$LOGS/fence-$kind-$m-$r.stats" -- \
				"$FERRY" sync -c "${conf[$m]}" --source "redis://127.0.0.1:${PORT[fsrc]}" --target "redis://127.0.0.1:${tgt[$m]}" \
				>"$LOGS/fence-$kind-$m-$r.txt"
			tt1=$(tgt_ticks "$m")
			# CPU per drained command, in µs: ferry's from its rusage, the
			# targets' from /proc (ticks of 10 ms)
			fcpu=$(awk -v u="$(kv "$LOGS/fence-$kind-$m-$r.stats" user_s)" -v s="$(kv "$LOGS/fence-$kind-$m-$r.stats" sys_s)" -v n="$cmds" 'BEGIN{printf "%.3f", (u + s) * 1e6 / n}')
			tcpu=$(awk -v t="$((tt1 - tt0))" -v n="$cmds" 'BEGIN{printf "%.3f", t * 1e4 / n}')
			valid=1 note="partial resync"
			f1=$(info_field "${PORT[fsrc]}" stats sync_full)
			[ "$f1" = "$f0" ] || { valid=0; note="INVALID: the restarted ferry did a full resync instead of a partial one ($(grep -o '"message":"[^"]*resync[^"]*"' "$LOGS/fence-$kind-$m-$r.log" | head -1))"; }
			echo "$kind fence=$m run $r: $(cat "$LOGS/fence-$kind-$m-$r.txt") $(tr -d '\n' <"$LOGS/fence-$kind-$m-$r.stats") cpu_us_per_cmd ferry=$fcpu targets=$tcpu; $note ($(step_log "$ST0" "$s"))" >>"$LOGS/fence.log"
			if [ $valid = 1 ]; then
				echo " $m=$(kv "$LOGS/fence-$kind-$m-$r.txt" apply_rate)" >>"$LOGS/fence-$kind.rates"
				echo "$m $fcpu $tcpu" >>"$LOGS/fence-$kind.cpu"
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
	touch "$LOGS/fence-$kind.cpu"
	local cpu_line="" fc tc
	for m in multi off; do
		# shellcheck disable=SC2046
		fc=$(median $(awk -v m="$m" '$1 == m {print $2}' "$LOGS/fence-$kind.cpu"))
		# shellcheck disable=SC2046
		tc=$(median $(awk -v m="$m" '$1 == m {print $3}' "$LOGS/fence-$kind.cpu"))
		cpu_line+="$m: ferry ${fc:-n/a} us + targets ${tc:-n/a} us; "
	done
	say "[fence] $label: CPU per drained command (medians) ${cpu_line%; }"
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

# ---------------------------------------------------------------- 7. cluster-source

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
	# The writer's pure part only (its other benchmarks run a redis-server).
	go test -run '^$' -bench PlanFlight -benchmem -count 1 ./writer >>"$LOGS/gobench.txt" 2>&1
	say "[gobench] go test -bench . ./bench ./rdb ./spool ./router; -bench PlanFlight ./writer (absolute figures, no anchor):"
	grep '^Benchmark' "$LOGS/gobench.txt" | awk '{$1=$1; print "[gobench]   " $0}' | tee -a "$SUM"
}

# ---------------------------------------------------------------- main


failed=0
ORDER="import fullsync steady profile cluster fence cluster-source gobench"
# main_last: the last wanted section that uses the main source (stopped after it)
main_last=
for sec in import fullsync steady profile; do want "$sec" && main_last=$sec; done
for sec in $ORDER; do
	want "$sec" || continue
	log "== section $sec"
	t_sec=$(now)
	# The main source lives in this shell (import, fullsync and steady share it).
	case $sec in import | fullsync | steady | profile) main_source ;; esac
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
	if [ "$sec" = "$main_last" ] && [ -n "${PID[src]:-}" ]; then srv_stop src; fi
done
if [ -n "${PID[src]:-}" ]; then srv_stop src; fi
say "# done in ${SECONDS}s; $(quiet_note 0)"
exit $failed
}

#!/usr/bin/env bash
# bench/compare.sh: Tidings and Nchan side by side, in one run, on one machine.
#
# Each scenario of issue 5 runs `tidings bench` against a freshly started Tidings and a freshly
# started Nchan (nginx-light + libnginx-mod-nchan), alternating, RUNS times each; the figures
# quoted are medians. Both servers get one worker on CPU $SERVER_CPU (taskset); the generator
# runs on CPU $GEN_CPU. Results go to docs/benchmarks.md with SVG plots under docs/bench/.
#
#   bench/compare.sh                 # every scenario, 3 runs each (about 30 minutes)
#   QUICK=1 bench/compare.sh         # 1 run each, smaller N (about 8 minutes)
#   SCENARIOS="2 4" bench/compare.sh # a subset
#   TIDINGS_BIN=/path/to/tidings     # use this binary instead of building one
#
# Servers are stopped by the PIDs this script started, never by name.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${QUICK:-0}
RUNS=${RUNS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
SCENARIOS=${SCENARIOS:-"1 2 3 4 5 6 7 8"}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
DOC=${DOC:-$ROOT/docs/benchmarks.md}
PLOTS=${PLOTS:-$ROOT/docs/bench}
WORK=$(mktemp -d /tmp/tidings-compare.XXXXXX)
RES=$WORK/results
mkdir -p "$RES" "$PLOTS"
BIN=${TIDINGS_BIN:-$ROOT/target/release/tidings}
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so

say() { printf '\n== %s\n' "$*" >&2; }

# --- setup -------------------------------------------------------------------------------
if ! command -v nginx >/dev/null || [ ! -f "$NCHAN_MODULE" ]; then
  say "installing nginx-light and libnginx-mod-nchan"
  apt-get update -qq && apt-get install -y -qq nginx-light libnginx-mod-nchan jq >/dev/null
fi
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
if [ -z "${TIDINGS_BIN:-}" ]; then
  say "building tidings (release)"
  (cd "$ROOT" && cargo build --release -p tidings)
fi

# shellcheck source=bench/servers.sh
. "$ROOT/bench/servers.sh"
trap 'stop_server; rm -rf "$WORK"' EXIT

# run_case NAME SERVER ARGS... : RUNS runs against a fresh SERVER each; the median goes to
# $RES/NAME-SERVER.json and each run's command to $RES/NAME-SERVER.cmd.
run_case() {
  local name=$1 server=$2; shift 2
  local files=() i
  for i in $(seq "$RUNS"); do
    "start_$server"
    local out=$RES/$name-$server-$i.json
    say "$name $server run $i/$RUNS: tidings bench --server $server $*"
    if ! taskset -c "$GEN_CPU" "$BIN" bench --server "$server" --url "http://127.0.0.1:$PORT" \
        --server-pid "$MEASURE_PID" --label "$server" --quiet --json "$out" "$@" >"$out.txt" 2>&1; then
      echo "(this run reported a failure; its figures are kept and marked)" >>"$out.txt"
    fi
    cat "$out.txt" >&2
    stop_server
    [ -s "$out" ] && files+=("$out")
  done
  if [ ${#files[@]} -gt 0 ]; then
    "$BIN" bench median --out "$RES/$name-$server.json" "${files[@]}"
    echo "tidings bench --server $server --url http://127.0.0.1:PORT --server-pid PID $*" >"$RES/$name-$server.cmd"
  fi
}

# both NAME ARGS... : the case against Tidings and Nchan, interleaved run by run.
both() {
  local name=$1; shift
  local saved=$RUNS r
  RUNS=1
  for r in $(seq "$saved"); do
    run_case "$name-r$r" tidings "$@"
    run_case "$name-r$r" nchan "$@"
  done
  RUNS=$saved
  for s in tidings nchan; do
    local f=() 
    for r in $(seq "$RUNS"); do [ -s "$RES/$name-r$r-$s.json" ] && f+=("$RES/$name-r$r-$s.json"); done
    [ ${#f[@]} -gt 0 ] && "$BIN" bench median --out "$RES/$name-$s.json" "${f[@]}"
    [ -s "$RES/$name-r1-$s.cmd" ] && cp "$RES/$name-r1-$s.cmd" "$RES/$name-$s.cmd"
  done
}

# tidings_only NAME ARGS...
tidings_only() {
  local name=$1; shift
  run_case "$name" tidings "$@"
}

# --- scenarios ---------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
  IDLE_NS="1000 5000"; BIG=5000; SMALL=1000; DUR=8s; POLLN=500
else
  IDLE_NS="1000 5000 15000"; BIG=10000; SMALL=1000; DUR=20s; POLLN=1000
fi
BIG_RATE=$((100000 / BIG)); SMALL_RATE=$((100000 / SMALL))

for s in $SCENARIOS; do
  case $s in
  1) for t in ws sse; do for n in $IDLE_NS; do
       both "s1-idle-$t-$n" --transport "$t" --subscribers "$n" --idle --duration 2s --warmup 2s
     done; done ;;
  2) for t in ws sse; do
       both "s2-fanout-$t-$SMALL" --transport "$t" --subscribers "$SMALL" --rate "$SMALL_RATE" --duration "$DUR"
       both "s2-fanout-$t-$BIG" --transport "$t" --subscribers "$BIG" --rate "$BIG_RATE" --duration "$DUR"
     done ;;
  3) for t in ws sse; do
       # Scenario 2 at 10k subscribers is the same load (10 msg/s); run it again only if missing.
       [ -s "$RES/s2-fanout-$t-$BIG-tidings.json" ] ||
         both "s2-fanout-$t-$BIG" --transport "$t" --subscribers "$BIG" --rate "$BIG_RATE" --duration "$DUR"
     done ;;
  4) for t in ws sse; do
       both "s4-max-$t" --transport "$t" --subscribers "$BIG" --rate 0 --max-ahead 20 --duration "$DUR"
     done ;;
  5) both "s5-longpoll" --transport longpoll --subscribers "$POLLN" --rate 20 --duration "$DUR"
     both "s5-poll" --transport poll --subscribers "$POLLN" --rate 1 --poll-interval 1s --duration "$DUR" ;;
  6) for t in stream iframe; do
       tidings_only "s6-$t-$SMALL" --transport "$t" --subscribers "$SMALL" --rate "$SMALL_RATE" --duration "$DUR"
       tidings_only "s6-$t-$BIG" --transport "$t" --subscribers "$BIG" --rate "$BIG_RATE" --duration "$DUR"
     done
     both "s6-chunked-$SMALL" --transport stream --subscribers "$SMALL" --rate "$SMALL_RATE" --duration "$DUR" ;;
  7) both "s7-slow" --transport ws --subscribers "$SMALL" --slow 1 --size 4096 --rate 50 --duration "$DUR" ;;
  8) both "s8-storm" --transport sse --subscribers "$BIG" --rate 10 --duration "$DUR" --storm-at 4s --drain 20s ;;
  *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done

# --- report ------------------------------------------------------------------------------
# Medians (and their commands) are kept under docs/bench/results, so a partial rerun
# (SCENARIOS=…) updates its cases and keeps the others'; a full run starts clean.
KEEP=$PLOTS/results
[ "$SCENARIOS" = "1 2 3 4 5 6 7 8" ] && rm -rf "$KEEP"
mkdir -p "$KEEP"
for f in "$RES"/*.json "$RES"/*.cmd; do
  case $(basename "$f") in *-r[0-9]*-* | *-[0-9].json | plot-*) continue ;; esac
  cp "$f" "$KEEP/"
done
echo "$QUICK $RUNS" >"$KEEP/MODE"
"$(dirname "$0")/report.sh" "$KEEP" "$DOC" "$PLOTS" "$BIN" "$QUICK" "$RUNS"
say "wrote $DOC and plots under $PLOTS"

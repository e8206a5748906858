#!/usr/bin/env bash
# bench/profile.sh NAME BENCH-ARGS...: profile a server under one bench load.
#
# Starts a fresh server on CPU 0, the way bench/compare.sh does (bench/servers.sh): Tidings with
# one tokio worker, or, with SERVER=nchan, Nchan as one nginx worker. Runs `tidings bench
# BENCH-ARGS` on CPU 1, records the server with `perf record -e cpu-clock -g` (hardware counters
# do not work on these machines) for the middle of the run, and writes the flat profile, with
# the inclusive time of the kernel's receive paths, to docs/bench/profile-NAME.txt
# (profile-NAME-nchan.txt for Nchan), which docs/benchmarks.md then quotes. Profiling both
# under the same load shows how much of each one's cost per delivery is the kernel's, which
# both pay.
#
#   bench/profile.sh ws-10k --transport ws --subscribers 10000 --rate 10 --duration 20s
#   SERVER=nchan bench/profile.sh ws-10k --transport ws --subscribers 10000 --rate 10 --duration 20s
#
# Rust release code here has no frame pointers, so call chains are partial; the flat
# (self-time) profile is the reliable part.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=$1; shift
SERVER=${SERVER:-tidings}
BIN=${TIDINGS_BIN:-$ROOT/target/release/tidings}
SUFFIX=$([ "$SERVER" = nchan ] && echo "-nchan" || true)
OUT=${OUT:-$ROOT/docs/bench/profile-$NAME$SUFFIX.txt}
DELAY=${DELAY:-8}   # seconds before recording: connecting and warm-up
SECS=${SECS:-8}     # seconds recorded
SERVER_CPU=0
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
if [ "$SERVER" = nchan ] && { ! command -v nginx >/dev/null || [ ! -f "$NCHAN_MODULE" ]; }; then
  apt-get update -qq && apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
fi
[ -n "${TIDINGS_BIN:-}" ] || (cd "$ROOT" && cargo build --release -p tidings)
WORK=$(mktemp -d /tmp/tidings-profile.XXXXXX)
# shellcheck source=bench/servers.sh
. "$ROOT/bench/servers.sh"
trap 'stop_server; rm -rf "$WORK"' EXIT
"start_$SERVER"
taskset -c 1 "$BIN" bench --server "$SERVER" --url "http://127.0.0.1:$PORT" --server-pid "$MEASURE_PID" \
  --quiet "$@" >"$WORK/bench.txt" 2>&1 &
GEN=$!
sleep "$DELAY"
# Nchan's figures are the worker's (the master only waits); Tidings is one process.
perf record -q -e cpu-clock -g -p "${MEASURE_PID##*,}" -o "$WORK/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$GEN" || true
{
  echo "# $SERVER under: tidings bench $*"
  grep -E "deliveries/s|server CPU|latency" "$WORK/bench.txt" | sed 's/^/# /'
  echo "# share of server CPU by binary:"
  perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -4 | sed 's/ *$//;s/^/# /' || true
  echo "# top functions (self time):"
  perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -30 | sed -E 's/ +- +- *$//;s/ +$//' | cut -c1-150 || true  # head's early exit is no failure
  # On loopback the receiving side of TCP (the generator's sockets, their wake-ups, their
  # delayed ACKs) runs on the sending CPU, inside the server's send calls and timer interrupts.
  echo "# inclusive time of kernel paths (children included):"
  perf report -i "$WORK/perf.data" --children --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+% +[0-9.]+% +\[k\] (net_rx_action|tcp_v4_rcv|sock_def_readable|tcp_delack_timer|run_timer_softirq)( |-)*$' |
    awk '{printf "#   %7s  %s\n", $1, $4}' || true
} >"$OUT"
cat "$OUT"

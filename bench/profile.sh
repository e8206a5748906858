#!/usr/bin/env bash
# bench/profile.sh NAME BENCH-ARGS...: profile the Tidings server under one bench load.
#
# Starts a fresh release Tidings on CPU 0 (one tokio worker, as bench/compare.sh does), runs
# `tidings bench BENCH-ARGS` on CPU 1, records the server with `perf record -e cpu-clock -g`
# (hardware counters do not work on these machines) for the middle of the run, and writes
# the flat profile to docs/bench/profile-NAME.txt, which docs/benchmarks.md then quotes.
#
#   bench/profile.sh ws-10k --transport ws --subscribers 10000 --rate 10 --duration 20s
#
# Rust release code here has no frame pointers, so call chains are partial; the flat
# (self-time) profile is the reliable part. The server is stopped by its PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=$1; shift
BIN=${TIDINGS_BIN:-$ROOT/target/release/tidings}
OUT=${OUT:-$ROOT/docs/bench/profile-$NAME.txt}
DELAY=${DELAY:-8}   # seconds before recording: connecting and warm-up
SECS=${SECS:-8}     # seconds recorded
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
[ -n "${TIDINGS_BIN:-}" ] || (cd "$ROOT" && cargo build --release -p tidings)
WORK=$(mktemp -d /tmp/tidings-profile.XXXXXX)
PORT=$(for p in $(shuf -i 20000-32000 -n 200); do
  (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; break; }; done)
printf 'listen = "127.0.0.1:%s"\ndemos = false\nshutdown_grace = "1s"\n[channel_defaults]\nhistory_size = 1000\n' \
  "$PORT" >"$WORK/tidings.toml"
TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/tidings.toml" >"$WORK/log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
taskset -c 1 "$BIN" bench --url "http://127.0.0.1:$PORT" --server-pid "$SERVER" --quiet "$@" >"$WORK/bench.txt" 2>&1 &
GEN=$!
sleep "$DELAY"
perf record -q -e cpu-clock -g -p "$SERVER" -o "$WORK/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$GEN" || true
{
  echo "# tidings bench $*"
  grep -E "deliveries/s|server CPU|latency" "$WORK/bench.txt" | sed 's/^/# /'
  echo "# share of server CPU by binary:"
  perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -4 | sed 's/ *$//;s/^/# /'
  echo "# top functions (self time):"
  perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -30 | sed -E 's/ +- +- *$//;s/ +$//' | cut -c1-150
} >"$OUT"
cat "$OUT"

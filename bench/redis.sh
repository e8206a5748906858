#!/usr/bin/env bash
# bench/redis.sh: cross-node delivery on Redis against one node on the memory broker (issue 4).
#
# Starts a private redis-server on a free port, two Tidings nodes on it (broker = "redis") and
# one Tidings node on the memory broker, then runs the same `tidings bench` loads:
#   memory:  publish to the memory node, subscribe on the memory node;
#   redis:   publish to node A, subscribe on node B, so every delivery crosses Redis.
# Each server gets one tokio worker; the Tidings servers share CPU 0 (only one is busy at a
# time in the memory run, two in the Redis run), redis-server and the generator share CPU 1.
#
#   bench/redis.sh                  # fixed rate and max throughput, 3 runs each
#   RUNS=1 bench/redis.sh           # quicker
#   TIDINGS_BIN=/path/to/tidings    # use this binary instead of building one
#
# Writes a Markdown table to stdout and JSON results under $WORK. Processes are stopped by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SUBS=${SUBS:-1000}
DURATION=${DURATION:-10s}
WORK=$(mktemp -d /tmp/tidings-redis-bench.XXXXXX)
BIN=${TIDINGS_BIN:-$ROOT/target/release/tidings}
if [ -z "${TIDINGS_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p tidings >&2)
fi
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

node() { # node NAME BROKER -> prints "PID PORT"
  local port; port=$(free_port)
  cat >"$WORK/$1.toml" <<EOT
listen = "127.0.0.1:$port"
demos = false
broker = "$2"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT"
[channel_defaults]
history_size = 1000
EOT
  TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  echo "$pid $port"
}

REDIS_PORT=$(free_port)
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

read -r MEM_PID MEM_PORT < <(node memory memory); PIDS+=("$MEM_PID")
read -r A_PID A_PORT < <(node a redis); PIDS+=("$A_PID")
read -r B_PID B_PORT < <(node b redis); PIDS+=("$B_PID")

run() { # run LABEL PUB_PORT SUB_PORT PIDS RATE
  local label=$1 out="$WORK/$1-$5-r$6.json"
  taskset -c 1 "$BIN" bench --quiet --label "$label" --url "http://127.0.0.1:$3" \
    --publish-url "http://127.0.0.1:$2/api/channels/{ch}/messages" --server-pid "$4" \
    --transport ws --subscribers "$SUBS" --rate "$5" --duration "$DURATION" --warmup 2s --json "$out" >/dev/null
  echo "$out"
}

echo "| setup | load | deliveries/s | p50 ms | p99 ms | max ms | server CPU µs/delivery | lost |"
echo "|---|---|---|---|---|---|---|---|"
for rate in 100 0; do
  for setup in memory redis; do
    files=()
    for r in $(seq "$RUNS"); do
      if [ "$setup" = memory ]; then
        files+=("$(run memory "$MEM_PORT" "$MEM_PORT" "$MEM_PID" "$rate" "$r")")
      else
        files+=("$(run redis "$A_PORT" "$B_PORT" "$A_PID,$B_PID" "$rate" "$r")")
      fi
    done
    merged="$WORK/$setup-$rate-median.json"
    "$BIN" bench median --out "$merged" "${files[@]}" >/dev/null 2>&1 || cp "${files[0]}" "$merged"
    python3 - "$merged" "$setup" "$rate" "$SUBS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); setup, rate, subs = sys.argv[2:]
lat = d.get("latency_ms") or {}
def g(k):
    v = lat.get(k)
    return f"{v:.1f}" if isinstance(v, (int, float)) else "-"
cpu = d.get("server_cpu_us_per_delivery")
cpu = f"{cpu:.2f}" if isinstance(cpu, (int, float)) else "-"
load = f"{subs} WS subscribers, " + ("as fast as delivery allows" if rate == "0" else f"{rate} msg/s")
name = "2 nodes on Redis (publish on A, subscribe on B)" if setup == "redis" else "1 node, memory broker"
print(f"| {name} | {load} | {d.get('deliveries_per_s', 0):,.0f} | {g('p50')} | {g('p99')} | {g('max')} | {cpu} | {d.get('lost')} |")
PY
  done
done
echo
echo "Results: $WORK"

#!/usr/bin/env bash
# Runs every test of Tidings, installing what the tests need first:
#   - Debian packages: redis-server (the Redis broker tests start their own on free ports) and
#     chromium (the browser tests drive it headless through playwright-core);
#   - npm packages of clients/js (playwright-core, terser).
# Then: formatting and lint gates, the Rust workspace tests, the client's node unit tests, and
# the real-browser tests. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  step "installing ${missing[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "npm packages for clients/js"
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (protocol, core, memory + Redis brokers, server integration)"
cargo test --workspace

step "bench smoke run (5 s, SSE and WebSocket; fails on any loss)"
cargo build -p tidings
SMOKE_LOG=$(mktemp)
target/debug/tidings serve --listen 127.0.0.1:0 >"$SMOKE_LOG" 2>/dev/null &
SMOKE_PID=$!
trap 'kill $SMOKE_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$SMOKE_LOG" && break; sleep 0.1; done
SMOKE_URL=$(sed -n 's/^tidings listening on //p' "$SMOKE_LOG")
for t in sse ws; do
  target/debug/tidings bench --url "$SMOKE_URL" --transport "$t" --subscribers 20 --rate 50 --duration 5s
done
kill $SMOKE_PID

step "tidings.js unit tests (node --test)"
(cd clients/js && node --test test/unit/)

step "SSE oracle (eventsource-parser) and browser tests (headless Chromium via playwright-core)"
(cd clients/js && TIDINGS_BIN="$PWD/../../target/debug/tidings" node --test test/server/)
(cd clients/js && TIDINGS_BIN="$PWD/../../target/debug/tidings" node --test --test-concurrency=1 test/browser/)

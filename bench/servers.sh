# bench/servers.sh: sourced by bench/compare.sh and bench/profile.sh. Starts and stops the two
# servers under test the same way for both: Tidings with one tokio worker, Nchan as one nginx
# worker, each pinned to CPU $SERVER_CPU. Expects WORK (a scratch directory), BIN (the tidings
# binary), SERVER_CPU and NCHAN_MODULE to be set. Servers are stopped by the PIDs started here,
# never by name.

free_port() {
  local p
  for p in $(shuf -i 20000-32000 -n 200); do
    if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2; return 1
}

wait_port() {
  local i
  for i in $(seq 200); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; return 1
}

SERVER_PID=""   # what we started (Tidings, or the nginx master)
MEASURE_PID=""  # what we measure (Tidings, or master,worker)
PORT=""

start_tidings() {
  PORT=$(free_port)
  cat >"$WORK/tidings.toml" <<EOF
listen = "127.0.0.1:$PORT"
demos = false
shutdown_grace = "1s"
[channel_defaults]
history_size = 1000
history_bytes = 8388608
EOF
  TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN" serve --config "$WORK/tidings.toml" \
    >"$WORK/tidings.log" 2>&1 &
  SERVER_PID=$!
  MEASURE_PID=$SERVER_PID
  wait_port "$PORT"
}

start_nchan() {
  PORT=$(free_port)
  local p=$WORK/nginx
  mkdir -p "$p/logs" "$p/tmp"
  cat >"$p/nginx.conf" <<EOF
load_module $NCHAN_MODULE;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $p/nginx.pid;
error_log $p/logs/error.log warn;
events { worker_connections 19500; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $p/tmp;
  proxy_temp_path $p/tmp;
  fastcgi_temp_path $p/tmp;
  uwsgi_temp_path $p/tmp;
  scgi_temp_path $p/tmp;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  nchan_message_buffer_length 1000;
  nchan_message_timeout 5m;
  nchan_shared_memory_size 256m;
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    location ~ ^/pub/(.+)\$ { nchan_publisher; nchan_channel_id \$1; }
    location ~ ^/sub/ws/(.+)\$ { nchan_subscriber websocket; nchan_channel_id \$1; }
    location ~ ^/sub/sse/(.+)\$ { nchan_subscriber eventsource; nchan_channel_id \$1; }
    location ~ ^/sub/lp/(.+)\$ { nchan_subscriber longpoll; nchan_channel_id \$1; }
    location ~ ^/sub/poll/(.+)\$ { nchan_subscriber intervalpoll; nchan_channel_id \$1; }
    location ~ ^/sub/chunked/(.+)\$ { nchan_subscriber chunked; nchan_channel_id \$1; }
  }
}
EOF
  taskset -c "$SERVER_CPU" nginx -p "$p" -c "$p/nginx.conf" >"$p/logs/stdout" 2>&1 &
  SERVER_PID=$!
  wait_port "$PORT"
  local worker=""
  for _ in $(seq 50); do
    worker=$(pgrep -P "$SERVER_PID" | head -1 || true)
    [ -n "$worker" ] && break
    sleep 0.05
  done
  MEASURE_PID="$SERVER_PID${worker:+,$worker}"
}

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

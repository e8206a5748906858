tidings bench --server nchan --url http://127.0.0.1:PORT --server-pid PID --transport sse --subscribers 15000 --idle --duration 2s --warmup 2s

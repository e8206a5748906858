tidings bench --server tidings --url http://127.0.0.1:PORT --server-pid PID --transport ws --subscribers 5000 --idle --duration 2s --warmup 2s

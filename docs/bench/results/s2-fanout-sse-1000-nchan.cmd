tidings bench --server nchan --url http://127.0.0.1:PORT --server-pid PID --transport sse --subscribers 1000 --rate 100 --duration 20s

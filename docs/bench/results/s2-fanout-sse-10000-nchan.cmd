tidings bench --server nchan --url http://127.0.0.1:PORT --server-pid PID --transport sse --subscribers 10000 --rate 10 --duration 20s

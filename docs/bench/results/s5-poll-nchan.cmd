tidings bench --server nchan --url http://127.0.0.1:PORT --server-pid PID --transport poll --subscribers 1000 --rate 1 --poll-interval 1s --duration 20s

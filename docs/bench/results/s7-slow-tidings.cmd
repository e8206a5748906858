tidings bench --server tidings --url http://127.0.0.1:PORT --server-pid PID --transport ws --subscribers 1000 --slow 1 --size 4096 --rate 50 --duration 20s

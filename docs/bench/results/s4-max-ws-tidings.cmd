tidings bench --server tidings --url http://127.0.0.1:PORT --server-pid PID --transport ws --subscribers 10000 --rate 0 --max-ahead 20 --duration 20s

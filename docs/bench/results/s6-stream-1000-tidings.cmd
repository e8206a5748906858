tidings bench --server tidings --url http://127.0.0.1:PORT --server-pid PID --transport stream --subscribers 1000 --rate 100 --duration 20s

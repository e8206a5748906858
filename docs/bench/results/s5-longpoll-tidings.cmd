tidings bench --server tidings --url http://127.0.0.1:PORT --server-pid PID --transport longpoll --subscribers 1000 --rate 20 --duration 20s

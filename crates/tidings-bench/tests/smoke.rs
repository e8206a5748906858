//! Smoke test: a short run of every transport against the real server on 127.0.0.1:0, which
//! proves each wire parser against what the server actually sends and that nothing is lost.
//! (The benchmark proper is bench/compare.sh; this only checks the tool works.)

use clap::Parser;
use tidings_bench::{run, Args};
use tidings_server::Config;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

async fn start_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let toml = "demos = false\nlisten = \"127.0.0.1:0\"\n";
    let config = Config::load(Some(toml), [], []).expect("valid test config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let broker = tidings_server::memory_broker(&config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tidings_server::run(listener, config, broker, async move {
        let _ = rx.await;
    }));
    (url, tx)
}

async fn bench(url: &str, rate: &str, extra: &[&str]) -> tidings_bench::report::Report {
    let mut argv = vec![
        "bench",
        "--url",
        url,
        "--subscribers",
        "6",
        "--channels",
        "2",
        "--rate",
        rate,
        "--duration",
        "600ms",
        "--warmup",
        "200ms",
        "--drain",
        "3s",
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    let args = Cli::parse_from(argv).args;
    run::bench(&args).await.expect("the bench run works")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_delivers_everything_once_in_order() {
    let (url, _stop) = start_server().await;
    for t in ["ws", "sse", "stream", "iframe", "longpoll", "poll"] {
        let extra: &[&str] = if t == "poll" {
            &["--transport", t, "--poll-interval", "100ms"]
        } else {
            &["--transport", t]
        };
        let r = bench(&url, "40", extra).await;
        assert_eq!(r.connected, 6, "{t}");
        assert!(r.published >= 40, "{t}: published {}", r.published);
        assert_eq!(r.delivered, r.expected, "{t}: {r:#?}");
        assert_eq!(
            (r.lost, r.duplicates, r.reordered, r.garbage),
            (0, 0, 0, 0),
            "{t}"
        );
        let (arrival, read) = (&r.latency_ms, &r.read_latency_ms);
        assert!(arrival.count == r.delivered && arrival.max > 0.0, "{t}");
        assert_eq!(read.count, r.delivered, "{t}");
        // Latency runs to the kernel's arrival stamp, which comes before the read.
        assert!(
            arrival.p50 <= read.p50 && arrival.max <= read.max,
            "{t}: {r:#?}"
        );
        if cfg!(target_os = "linux") {
            assert!(arrival.mean < read.mean, "{t}: no arrival stamps: {r:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_resumes_sse_without_loss_and_as_fast_as_possible_works() {
    let (url, _stop) = start_server().await;
    let r = bench(&url, "40", &["--transport", "sse", "--storm-at", "300ms"]).await;
    let storm = r.storm.clone().expect("a storm happened");
    assert_eq!((r.lost, storm.not_recovered), (0, 0), "{r:#?}");
    assert!(r.reconnects >= 6);
    let r = bench(&url, "0", &["--transport", "ws", "--max-ahead", "5"]).await;
    assert!(r.published > 40 && r.lost == 0, "{r:#?}");
}

//! The binary end to end: `serve` on port 0, `subscribe` over every transport, `publish`,
//! `check-config`, and SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start() -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("TIDINGS_DEMOS", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tidings serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let url = line
            .trim()
            .strip_prefix("tidings listening on ")
            .expect("ready line")
            .to_owned();
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(url: &str, channel: &str, data: &str) -> String {
    let out = Command::new(BIN)
        .args(["publish", channel, data, "--url", url])
        .output()
        .expect("publish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn subscribe_over_every_transport_prints_messages_in_order() {
    let s = Serve::start();
    for transport in ["sse", "ws", "stream", "iframe", "longpoll", "poll"] {
        let ch = format!("cli-{transport}");
        let first = publish(&s.url, &ch, "m0");
        let cursor = first
            .split("\"cursor\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("cursor")
            .to_owned();
        let child = Command::new(BIN)
            .args([
                "subscribe",
                &ch,
                "--transport",
                transport,
                "--since",
                &cursor,
                "-n",
                "3",
                "--interval",
                "100",
                "--url",
                &s.url,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("subscribe");
        std::thread::sleep(Duration::from_millis(300));
        for i in 1..=3 {
            publish(&s.url, &ch, &format!("m{i}"));
        }
        let started = Instant::now();
        let out = child.wait_with_output().expect("subscribe output");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            out.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "m1\nm2\nm3\n",
            "{transport}"
        );
    }
}

#[test]
fn publish_reports_errors_and_check_config_names_bad_keys() {
    let s = Serve::start();
    let out = Command::new(BIN)
        .args(["publish", "bad name", "x", "--url", &s.url])
        .output()
        .expect("publish");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_channel"));
    let dir = std::env::temp_dir().join(format!("tidings-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[namespaces.chat]\nslow_consumer = \"sometimes\"\n").expect("write");
    let out = Command::new(BIN)
        .args(["check-config", bad.to_str().expect("path")])
        .output()
        .expect("check");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("namespaces.chat.slow_consumer"));
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:9999\"\n[namespaces.news]\nhistory_size = 10\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check-config", good.to_str().expect("path")])
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace news: history 10 msgs"));
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully() {
    let mut s = Serve::start();
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    loop {
        if let Some(code) = s.child.try_wait().expect("wait") {
            assert!(code.success(), "exit status {code:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

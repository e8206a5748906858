//! Groups of subscribers as the coordinator sees them: in this process, or in a child process.
//!
//! `--processes K` re-executes this binary K times as `tidings bench --child I …`, each child
//! with its share of the subscribers and its own source address (127.0.0.2+I), because one
//! process may hold only so many open files and one source address only ~28k ports.
//!
//! The protocol is JSON lines. A child writes `{"snapshot":…}` on stdout every few tens of ms
//! and, at the end, `{"outcome":…}`. The coordinator writes commands on the child's stdin:
//! `{"go":true}` (publishing starts: begin counting CPU), `{"storm":NS}` and
//! `{"finish":{"last":[…],"drain_ms":N,"storm_ns":NS}}`. A child exits after its outcome, or
//! when its stdin closes (the coordinator died).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

use crate::args::Args;
use crate::group::{Group, Outcome, Snapshot};
use crate::procstat;
use crate::target::Targets;

/// A line from a child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Report {
    Snapshot(Snapshot),
    Outcome(Box<Outcome>),
}

/// A command to a child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Command {
    Go(bool),
    Storm(u64),
    Finish {
        last: Vec<u64>,
        drain_ms: u64,
        storm_ns: u64,
    },
}

/// A group the coordinator drives.
pub enum Handle {
    /// In this process (whose own CPU time the coordinator counts).
    Local(Group),
    Remote(Remote),
}

/// A child process running a group.
pub struct Remote {
    child: Child,
    stdin: ChildStdin,
    latest: Arc<Mutex<Snapshot>>,
    outcome: Option<oneshot::Receiver<Outcome>>,
}

impl Handle {
    /// The group's latest counters.
    pub fn snapshot(&self) -> Snapshot {
        match self {
            Handle::Local(group) => group.snapshot(),
            Handle::Remote(r) => r.latest.lock().map(|s| s.clone()).unwrap_or_default(),
        }
    }

    /// Publishing starts.
    pub async fn go(&mut self) -> anyhow::Result<()> {
        match self {
            Handle::Local(group) => {
                group.go();
                Ok(())
            }
            Handle::Remote(r) => r.send(&Command::Go(true)).await,
        }
    }

    /// Drops every connection.
    pub async fn storm(&mut self, ns: u64) -> anyhow::Result<()> {
        match self {
            Handle::Local(group) => {
                group.storm();
                Ok(())
            }
            Handle::Remote(r) => r.send(&Command::Storm(ns)).await,
        }
    }

    /// Drains and stops the group; returns its outcome.
    pub async fn finish(
        self,
        last: Vec<u64>,
        drain: Duration,
        storm_ns: u64,
    ) -> anyhow::Result<Outcome> {
        match self {
            Handle::Local(group) => Ok(group.finish(&last, drain, storm_ns).await),
            Handle::Remote(mut r) => {
                let drain_ms = drain.as_millis() as u64;
                r.send(&Command::Finish {
                    last,
                    drain_ms,
                    storm_ns,
                })
                .await?;
                let rx = r.outcome.take().context("outcome already taken")?;
                let o = tokio::time::timeout(drain + Duration::from_secs(30), rx)
                    .await
                    .context("a child generator did not report in time")?
                    .context("a child generator died before reporting; see its stderr above")?;
                let _ = r.child.wait().await;
                Ok(o)
            }
        }
    }
}

impl Remote {
    async fn send(&mut self, c: &Command) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(c)?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .context("a child generator is gone; see its stderr above")
    }

    /// Spawns child `index` with subscribers `first..first+count`.
    pub fn spawn(
        a: &Args,
        prefix: &str,
        index: usize,
        first: usize,
        count: usize,
    ) -> anyhow::Result<Remote> {
        let exe = std::env::current_exe().context("cannot find this executable to re-run it")?;
        let subscribe = match &a.subscribe_url {
            Some(s) => s.clone(),
            None => crate::target::default_subscribe(a.server, a.transport, &a.url)?,
        };
        let source = format!("127.0.0.{}", 2 + index);
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("bench")
            .args([
                "--child",
                &index.to_string(),
                "--child-first",
                &first.to_string(),
            ])
            .args(["--server", &format!("{:?}", a.server).to_lowercase()])
            .args(["--transport", a.transport.as_str()])
            .args(["--url", &a.url, "--subscribe-url", &subscribe])
            .args([
                "--subscribers",
                &count.to_string(),
                "--channels",
                &a.channels.to_string(),
            ])
            .args(["--prefix", prefix, "--source-ip", &source])
            .args([
                "--poll-interval",
                &format!("{}ms", a.poll_interval.as_millis()),
            ])
            .args(["--slow", &a.slow.to_string()])
            .args(["--rate", &a.rate.to_string()])
            .args(["--connect-concurrency", &a.connect_concurrency.to_string()])
            .arg("--quiet");
        if a.allow_remote {
            cmd.arg("--allow-remote");
        }
        for h in &a.headers {
            cmd.args(["--header", h]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn().context("cannot start a child generator")?;
        let stdin = child.stdin.take().context("no child stdin")?;
        let stdout = child.stdout.take().context("no child stdout")?;
        let latest = Arc::new(Mutex::new(Snapshot::default()));
        let (tx, rx) = oneshot::channel();
        let l2 = latest.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Report>(&line) {
                    Ok(Report::Snapshot(s)) => {
                        if let Ok(mut l) = l2.lock() {
                            *l = s;
                        }
                    }
                    Ok(Report::Outcome(o)) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(*o);
                        }
                    }
                    Err(e) => eprintln!("child {index}: unreadable line ({e}): {line}"),
                }
            }
        });
        Ok(Remote {
            child,
            stdin,
            latest,
            outcome: Some(rx),
        })
    }
}

/// Runs as a child: a group driven by commands on stdin.
pub async fn run_child(a: &Args, first: usize) -> anyhow::Result<()> {
    let prefix = a.prefix.clone().context("a child needs --prefix")?;
    let targets = Targets::new(a, &prefix)?;
    let group = Group::start(a, targets, first, a.subscribers)?;
    let group = Arc::new(tokio::sync::Mutex::new(Some(group)));
    let period = if a.rate == 0.0 { 20 } else { 500 };
    let g2 = group.clone();
    let reporter = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        loop {
            tokio::time::sleep(Duration::from_millis(period)).await;
            let snap = match &*g2.lock().await {
                Some(g) => g.snapshot(),
                None => return,
            };
            let mut line = serde_json::to_vec(&Report::Snapshot(snap)).unwrap_or_default();
            line.push(b'\n');
            if out.write_all(&line).await.is_err() {
                return;
            }
            let _ = out.flush().await;
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut cpu0 = 0.0;
    while let Some(line) = lines.next_line().await? {
        match serde_json::from_str::<Command>(&line).context("bad command from the coordinator")? {
            Command::Go(_) => {
                cpu0 = procstat::cpu_secs("self").unwrap_or(0.0);
                if let Some(g) = &mut *group.lock().await {
                    g.go();
                }
            }
            Command::Storm(_) => {
                if let Some(g) = &*group.lock().await {
                    g.storm();
                }
            }
            Command::Finish {
                last,
                drain_ms,
                storm_ns,
            } => {
                let g = group.lock().await.take().context("finished twice")?;
                reporter.abort();
                let mut o = g
                    .finish(&last, Duration::from_millis(drain_ms), storm_ns)
                    .await;
                o.cpu_secs = procstat::cpu_secs("self").unwrap_or(0.0) - cpu0;
                let mut out = tokio::io::stdout();
                let mut line = serde_json::to_vec(&Report::Outcome(Box::new(o)))?;
                line.push(b'\n');
                out.write_all(&line).await?;
                out.flush().await?;
                return Ok(());
            }
        }
    }
    bail!("the coordinator went away")
}

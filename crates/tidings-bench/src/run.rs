//! The coordinator: start the subscriber groups, wait until they are connected, publish for
//! the duration (with a storm if asked), drain, and turn the groups' outcomes into a
//! [`Report`].
//!
//! The measurement window runs from the first publish to the last delivery: server CPU time
//! and deliveries are both counted over it, so CPU per delivery excludes connection setup.
//! RSS per connection is measured before publishing, against the RSS read before the first
//! subscriber connected, so it is only meaningful on a freshly started server.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::args::Args;
use crate::child::{Handle, Remote};
use crate::group::{Group, Outcome, Snapshot};
use crate::procstat::{self, cpu_sum, rss_sum};
use crate::progress::Line;
use crate::publisher::{self, Plan};
use crate::report::{LatencyMs, Report, Storm};
use crate::slot::{histogram, now_ns};
use crate::target::Targets;

const SPECTRUM: [f64; 24] = [
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 97.0, 98.0,
    99.0, 99.5, 99.7, 99.9, 99.95, 99.97, 99.99, 100.0,
];

fn check(a: &Args) -> anyhow::Result<()> {
    if a.subscribers == 0 || a.channels == 0 {
        bail!("--subscribers and --channels must be at least 1");
    }
    if a.processes == 0 || a.processes > 250 {
        bail!("--processes must be 1 to 250");
    }
    if !(a.rate >= 0.0 && a.rate.is_finite()) {
        bail!("--rate must be 0 (as fast as delivery allows) or a positive number per channel");
    }
    if !(0.0..100.0).contains(&a.slow) {
        bail!("--slow is a percentage below 100");
    }
    for p in &a.server_pid {
        if procstat::cpu_secs(&p.to_string()).is_none() {
            bail!("--server-pid {p}: no such process (or /proc/{p}/stat is unreadable)");
        }
    }
    Ok(())
}

fn total(snaps: &[Snapshot]) -> Snapshot {
    let mut t = Snapshot::default();
    for s in snaps {
        t.ready += s.ready;
        t.delivered += s.delivered;
        t.rx += s.rx;
        t.tx += s.tx;
        t.reconnects += s.reconnects;
        if t.error.is_none() {
            t.error.clone_from(&s.error);
        }
    }
    t
}

/// Runs one benchmark.
pub async fn bench(a: &Args) -> anyhow::Result<Report> {
    check(a)?;
    let nofile = procstat::raise_nofile();
    let per_process = a.subscribers.div_ceil(a.processes) as u64;
    if per_process + 64 > nofile {
        bail!(
            "{per_process} subscribers per process exceed the open-file limit ({nofile}); \
             use --processes {}",
            (a.subscribers as u64).div_ceil(nofile.saturating_sub(64).max(1))
        );
    }
    let prefix = a
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench-{:x}-", now_ns() / 1000 % 0xff_ffff));
    let targets = Targets::new(a, &prefix)?;
    let pids = &a.server_pid;
    let mut line = Line::new(a.quiet);
    let rss_before = rss_sum(pids);

    let mut handles = Vec::new();
    if a.processes == 1 {
        handles.push(Handle::Local(Group::start(
            a,
            targets.clone(),
            0,
            a.subscribers,
        )?));
    } else {
        let mut first = 0;
        for i in 0..a.processes {
            let count = a.subscribers / a.processes + usize::from(i < a.subscribers % a.processes);
            handles.push(Handle::Remote(Remote::spawn(a, &prefix, i, first, count)?));
            first += count;
        }
    }
    let connect_by = Instant::now() + Duration::from_secs(30 + a.subscribers as u64 / 500);
    loop {
        let t = total(&handles.iter().map(Handle::snapshot).collect::<Vec<_>>());
        line.show(&format!("connecting {}/{}", t.ready, a.subscribers));
        if t.ready as usize >= a.subscribers {
            break;
        }
        if Instant::now() >= connect_by {
            line.finish();
            bail!(
                "only {} of {} subscribers connected in time; last error: {}",
                t.ready,
                a.subscribers,
                t.error
                    .as_deref()
                    .unwrap_or("none (the server may be slow to accept)")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(a.warmup).await;
    let rss_connected = rss_sum(pids);

    let srv0 = cpu_sum(pids);
    let self0 = procstat::cpu_secs("self").unwrap_or(0.0);
    for h in &mut handles {
        h.go().await?;
    }
    let start = Instant::now();
    let start_ns = now_ns();
    let until = start + a.duration;
    let progress = Arc::new(publisher::Progress::new(a.channels));
    let mut publishing = (!a.idle).then(|| {
        let plan = Arc::new(Plan {
            server: a.server,
            urls: targets.publish.clone(),
            size: a.size,
            rate: a.rate,
            max_ahead: a.max_ahead.max(1),
            workers: a.publishers,
            api_key: a.api_key.clone(),
        });
        tokio::spawn(publisher::run(plan, progress.clone(), start, until))
    });
    let tick = Duration::from_millis(if a.rate == 0.0 { 5 } else { 50 });
    let mut storm_ns = 0;
    let mut rss_max = rss_connected;
    let mut last_show = (Instant::now(), 0u64);
    loop {
        // A snapshot walks every subscriber: take one often only when the publisher needs
        // fresh floors (`--rate 0`), else once a second for the progress line.
        let show = last_show.0.elapsed() >= Duration::from_secs(1);
        let snaps: Vec<Snapshot> = if a.rate == 0.0 || show {
            handles.iter().map(Handle::snapshot).collect()
        } else {
            Vec::new()
        };
        if a.rate == 0.0 {
            for (ch, f) in progress.floor.iter().enumerate() {
                let m = snaps
                    .iter()
                    .map(|s| s.floor.get(ch).copied().unwrap_or(u64::MAX))
                    .min();
                f.store(m.unwrap_or(u64::MAX), Relaxed);
            }
        }
        if let Some(at) = a.storm_at.filter(|_| storm_ns == 0 && !a.idle) {
            if start.elapsed() >= at {
                storm_ns = now_ns();
                for h in &mut handles {
                    h.storm(storm_ns).await?;
                }
            }
        }
        if show {
            let t = total(&snaps);
            let rate = (t.delivered - last_show.1) as f64 / last_show.0.elapsed().as_secs_f64();
            last_show = (Instant::now(), t.delivered);
            if let Some(r) = rss_sum(pids) {
                rss_max = Some(rss_max.unwrap_or(0).max(r));
            }
            line.show(&format!(
                "{:>5.1}s  published {}  delivered {} ({:.0}/s)  connected {}  reconnects {}  rx {:.1} MB",
                start.elapsed().as_secs_f64(),
                progress.published.load(Relaxed),
                t.delivered,
                rate,
                t.ready,
                t.reconnects,
                t.rx as f64 / 1e6
            ));
        }
        let done = match &publishing {
            Some(p) => p.is_finished(),
            None => Instant::now() >= until,
        };
        if done {
            break;
        }
        tokio::time::sleep(tick).await;
    }
    if let Some(p) = publishing.take() {
        p.await.context("the publisher panicked")??;
    }
    let last: Vec<u64> = progress.last.iter().map(|l| l.load(Relaxed)).collect();
    let finishing = handles
        .into_iter()
        .map(|h| {
            let last = last.clone();
            let drain = if a.idle { Duration::ZERO } else { a.drain };
            tokio::spawn(h.finish(last, drain, storm_ns))
        })
        .collect::<Vec<_>>();
    let mut o = Outcome::default();
    for f in finishing {
        o.merge(&f.await.context("a group panicked")??);
    }
    line.finish();
    let wall = start.elapsed().as_secs_f64();
    let server_cpu = match (srv0, cpu_sum(pids)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rss_end = rss_sum(pids);
    let gen_cpu = procstat::cpu_secs("self").unwrap_or(0.0) - self0 + o.cpu_secs;
    Ok(build(
        a,
        &o,
        &progress,
        Measured {
            start_ns,
            wall,
            server_cpu,
            gen_cpu,
            rss: [rss_before, rss_connected, rss_max.max(rss_end), rss_end],
            storm_ns,
        },
    ))
}

struct Measured {
    start_ns: u64,
    wall: f64,
    server_cpu: Option<f64>,
    gen_cpu: f64,
    rss: [Option<u64>; 4],
    storm_ns: u64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A histogram of (µs, count) pairs.
fn from_pairs(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = histogram();
    for &(v, n) in pairs {
        let _ = h.record_n(v, n);
    }
    h
}

impl LatencyMs {
    fn of(h: &Histogram<u64>) -> LatencyMs {
        LatencyMs {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            count: h.len(),
        }
    }
}

fn build(a: &Args, o: &Outcome, p: &publisher::Progress, m: Measured) -> Report {
    let h = from_pairs(&o.latency);
    let read = from_pairs(&o.read_latency);
    let window = if o.last_delivery_ns > m.start_ns {
        (o.last_delivery_ns - m.start_ns) as f64 / 1e9
    } else {
        a.duration.as_secs_f64()
    };
    let delivered = o.delivered;
    let per = |x: f64| {
        if delivered > 0 {
            x / delivered as f64
        } else {
            0.0
        }
    };
    let published = p.published.load(Relaxed);
    let cores = procstat::cores() as u64;
    let gen_load = m.gen_cpu / (m.wall.max(1e-9) * cores as f64);
    let [before, connected, max, end] = m.rss;
    let rss_per_conn = match (before, connected) {
        (Some(b), Some(c)) if o.ready > 0 => Some((c as f64 - b as f64) / o.ready as f64),
        _ => None,
    };
    let server_transport = format!("{:?}", a.server).to_lowercase();
    let label = a.label.clone().unwrap_or_else(|| {
        format!(
            "{server_transport} {} n={}",
            a.transport.as_str(),
            a.subscribers
        )
    });
    Report {
        label,
        server: server_transport,
        transport: a.transport.as_str().to_owned(),
        subscribers: a.subscribers as u64,
        channels: a.channels as u64,
        rate: a.rate,
        size: a.size as u64,
        duration_s: a.duration.as_secs_f64(),
        processes: a.processes as u64,
        idle: a.idle,
        connected: o.ready,
        slow: o.slow,
        published,
        publish_rate: published as f64 / a.duration.as_secs_f64().max(1e-9),
        expected: o.expected,
        delivered,
        window_s: window,
        deliveries_per_s: delivered as f64 / window.max(1e-9),
        lost: o.lost,
        duplicates: o.duplicates,
        reordered: o.reordered,
        subscribers_with_loss: o.subscribers_with_loss,
        resets: o.resets,
        reconnects: o.reconnects,
        garbage: o.garbage,
        latency_ms: LatencyMs::of(&h),
        read_latency_ms: LatencyMs::of(&read),
        spectrum: if h.is_empty() {
            Vec::new()
        } else {
            SPECTRUM
                .iter()
                .map(|&q| (q, ms(h.value_at_quantile(q / 100.0))))
                .collect()
        },
        rx_bytes: o.rx,
        tx_bytes: o.tx,
        bytes_per_delivery: per((o.rx + o.tx) as f64),
        requests: o.requests,
        requests_per_delivery: per(o.requests as f64),
        empty_responses: o.empty,
        empty_share: if o.requests > 0 {
            o.empty as f64 / o.requests as f64
        } else {
            0.0
        },
        server_cpu_s: m.server_cpu,
        server_cpu_us_per_delivery: m.server_cpu.filter(|_| delivered > 0).map(|c| per(c * 1e6)),
        server_cpu_load: m.server_cpu.map(|c| c / m.wall.max(1e-9)),
        deliveries_per_server_cpu_s: m
            .server_cpu
            .filter(|c| *c > 0.0)
            .map(|c| delivered as f64 / c),
        rss_before_kib: before,
        rss_connected_kib: connected,
        rss_max_kib: max,
        rss_end_kib: end,
        rss_per_conn_kib: rss_per_conn,
        generator_cpu_s: m.gen_cpu,
        generator_cores: cores,
        generator_load: gen_load,
        generator_bound: gen_load > 0.9,
        storm: (m.storm_ns > 0).then(|| Storm {
            at_s: (m.storm_ns - m.start_ns) as f64 / 1e9,
            recovery_ms: o.recovery_ns as f64 / 1e6,
            not_recovered: o.not_recovered,
        }),
        errors: o.errors.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    }
}

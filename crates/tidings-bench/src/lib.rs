//! `tidings bench`: a load generator for every Tidings transport, and for Nchan in the same run.
//!
//! N subscribers over one transport, spread over C channels; a publisher at a fixed rate per
//! channel, or as fast as delivery allows; payloads stamped with channel, sequence number and
//! send time (see [`payload`]). The report gives deliveries per second, loss, duplicates and
//! reordering from the sequence numbers, latency percentiles (to the message's arrival at the
//! subscriber's socket, by the kernel's receive stamp, and to the generator's read; see
//! [`net`]), bytes and requests per delivery, the server's CPU time per delivery and RSS (with
//! `--server-pid`), and the generator's own CPU use. `--processes` spreads subscribers over
//! child processes and source addresses. See docs/benchmarks.md for the side-by-side
//! comparison with Nchan.
//!
//! Layout: pure wire code ([`payload`], [`framing`], [`http1`], [`tracker`]) is tested on
//! exact bytes; [`subscriber`] and [`publisher`] do the I/O; [`group`] and [`child`] hold
//! subscribers in this or a child process; [`run`](mod@run) coordinates; [`report`] and
//! [`plot`] print.

pub mod args;
pub mod child;
pub mod framing;
pub mod group;
pub mod http1;
pub mod net;
pub mod payload;
pub mod plot;
pub mod procstat;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod run;
pub mod slot;
pub mod subscriber;
pub mod target;
pub mod tracker;

use anyhow::{bail, Context};

pub use args::Args;
use args::Sub;
use report::Report;

fn read_reports(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a bench JSON result", f.display()))
        })
        .collect()
}

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `tidings bench` with `a`. Fails when any message was lost, so a smoke run in CI can
/// rely on the exit code.
pub async fn run(a: Args) -> anyhow::Result<()> {
    match &a.command {
        Some(Sub::Plot {
            out,
            title,
            results,
        }) => {
            let runs = read_reports(results)?
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<Vec<Report>, _>>()
                .context("a result file does not match this version of tidings bench")?;
            return write(out, &plot::svg(title, &runs));
        }
        Some(Sub::Median { out, results }) => {
            let m = report::median(&read_reports(results)?);
            return write(out, &serde_json::to_string_pretty(&m)?);
        }
        None => {}
    }
    if a.child.is_some() {
        return child::run_child(&a, a.child_first).await;
    }
    let r = run::bench(&a).await?;
    print!("{}", r.table());
    if let Some(p) = &a.json {
        write(p, &serde_json::to_string_pretty(&r)?)?;
    }
    if let Some(p) = &a.svg {
        write(p, &plot::svg(&r.label, std::slice::from_ref(&r)))?;
    }
    if r.generator_bound {
        eprintln!(
            "warning: the generator used {:.0}% of its {} core(s): these figures may measure the \
             generator, not the server; give it more cores (taskset), fewer subscribers, or --processes",
            r.generator_load * 100.0,
            r.generator_cores
        );
    }
    for e in &r.errors {
        eprintln!("subscriber error: {e}");
    }
    if r.connected < r.subscribers {
        bail!(
            "only {} of {} subscribers were connected",
            r.connected,
            r.subscribers
        );
    }
    if r.lost > 0 {
        bail!(
            "{} messages lost across {} subscribers (see the table); the delivery contract requires 0",
            r.lost,
            r.subscribers_with_loss
        );
    }
    if r.garbage > 0 {
        bail!(
            "{} payloads were not ours or arrived on the wrong channel",
            r.garbage
        );
    }
    Ok(())
}

//! `tidings check-config FILE`: validate and print the effective settings.

use std::path::PathBuf;

/// Flags of `check-config`.
#[derive(clap::Args)]
pub struct Args {
    /// The TOML file to check.
    file: PathBuf,
}

/// Validates the file (plus environment) and prints a summary.
pub fn run(args: Args) -> anyhow::Result<()> {
    let c = super::serve::load(Some(&args.file), None)?;
    println!("{}: ok", args.file.display());
    println!("listen = {}", c.listen);
    println!("broker = {:?}", c.broker);
    println!(
        "api_key = {}",
        if c.api_key.is_some() {
            "set"
        } else {
            "none (API answers loopback only)"
        }
    );
    println!("demos = {}", c.demos);
    let mut names: Vec<_> = c.namespaces.by_name.keys().collect();
    names.sort();
    for n in names {
        let o = &c.namespaces.by_name[n];
        println!(
            "namespace {n}: history {} msgs / {} B / {:?}, client_publish = {}, slow_consumer = {}",
            o.history_size,
            o.history_bytes,
            o.history_ttl,
            o.client_publish,
            o.slow_consumer.as_str()
        );
    }
    Ok(())
}

//! The `tidings` binary: parse flags, set up tracing, and run one command.
//!
//! `serve` binds and calls `tidings_server::run`; `publish`, `subscribe` and `check-config` are
//! small clients of the HTTP API, one file each under `cmd/`.

mod cmd;
mod http;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tidings: a real-time web push server with one channel model over six transports.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (in-memory broker and demos at http://127.0.0.1:8080/ by default).
    Serve(cmd::serve::Args),
    /// Publish one message: DATA, or `-` to read it from stdin.
    Publish(cmd::publish::Args),
    /// Subscribe over one transport and print each message as it arrives.
    Subscribe(cmd::subscribe::Args),
    /// Validate a config file (plus TIDINGS_* environment) and print the result.
    CheckConfig(cmd::check_config::Args),
    /// Load-test a server (Tidings or Nchan) over one transport and report cost and latency.
    Bench(Box<tidings_bench::Args>),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(a) => cmd::serve::run(a).await,
            Command::Publish(a) => cmd::publish::run(a).await,
            Command::Subscribe(a) => cmd::subscribe::run(a).await,
            Command::CheckConfig(a) => cmd::check_config::run(a),
            Command::Bench(a) => tidings_bench::run(*a).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

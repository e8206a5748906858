//! `tidings serve [--config FILE] [--listen ADDR]`

use std::path::PathBuf;

use anyhow::Context;
use tidings_server::config::{BrokerKind, Config};

/// Flags of `serve`.
#[derive(clap::Args)]
pub struct Args {
    /// TOML config file; TIDINGS_* environment variables and flags override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides `listen`); port 0 picks a free port.
    #[arg(long)]
    listen: Option<String>,
}

/// Loads the layered config: file, environment, flags.
pub fn load(config: Option<&PathBuf>, listen: Option<&str>) -> anyhow::Result<Config> {
    let text = match config {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?,
        ),
        None => None,
    };
    let overrides = listen.map(|l| ("listen".to_owned(), toml::Value::String(l.to_owned())));
    Ok(Config::load(text.as_deref(), std::env::vars(), overrides)?)
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = load(args.config.as_ref(), args.listen.as_deref())?;
    let broker = match config.broker {
        BrokerKind::Memory => tidings_server::memory_broker(&config),
        BrokerKind::Redis => tidings_server::redis_broker(&config).await?,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server using it? pick another with --listen",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    // Tests and scripts wait for this line to learn the port.
    println!("tidings listening on http://{addr}");
    if config.demos {
        tracing::info!("demos at http://{addr}/ (clock, chat, ticker)");
    }
    tidings_server::run(listener, config, broker, shutdown).await?;
    Ok(())
}

/// Installs the SIGTERM and Ctrl-C handlers now (before the ready line is printed, so a signal
/// sent right after it is never missed) and returns the future that completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("cannot install the Ctrl-C handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

//! `tidings publish CHANNEL [DATA|-]`

use std::io::Read;

use anyhow::bail;
use bytes::Bytes;

use crate::http;

/// Flags of `publish`.
#[derive(clap::Args)]
pub struct Args {
    /// Channel to publish to.
    channel: String,
    /// The data; `-` or nothing reads stdin.
    data: Option<String>,
    /// Event name (default `message`).
    #[arg(long)]
    event: Option<String>,
    /// Send the data as binary (application/octet-stream).
    #[arg(long)]
    binary: bool,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TIDINGS_URL")]
    url: String,
    /// API key (sent as a Bearer token).
    #[arg(long, env = "TIDINGS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// Publishes and prints the reply.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let data = match a.data.as_deref() {
        Some("-") | None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            Bytes::from(buf)
        }
        Some(d) => Bytes::from(d.to_owned()),
    };
    let mut url = format!(
        "{}/api/channels/{}/messages",
        a.url.trim_end_matches('/'),
        http::segment(&a.channel)
    );
    if let Some(e) = &a.event {
        url.push_str(&format!("?event={}", http::segment(e)));
    }
    let mut headers = vec![(
        "content-type",
        if a.binary {
            "application/octet-stream"
        } else {
            "text/plain; charset=utf-8"
        }
        .to_owned(),
    )];
    if let Some(k) = &a.api_key {
        headers.push(("authorization", format!("Bearer {k}")));
    }
    let c = http::client();
    let res = http::send(&c, hyper::Method::POST, &url, &headers, data).await?;
    let status = res.status();
    let body = http::body(res).await?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    println!("{text}");
    Ok(())
}

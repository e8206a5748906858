//! The demo pages and the demo publisher.
//!
//! Pages are compiled into the binary, so `tidings serve` needs no files on disk. When demos are
//! on (the default), a task publishes the time to `demo:clock` once a second and made-up quotes
//! to `demo:ticker` (event `quote`) twice a second, until shutdown.

use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use tidings_protocol::{ChannelName, Payload};

use crate::state::State;

macro_rules! page {
    ($name:ident, $file:literal, $ct:literal) => {
        /// Serves the embedded asset.
        pub async fn $name() -> impl IntoResponse {
            (
                [
                    (header::CONTENT_TYPE, $ct),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                include_str!($file),
            )
        }
    };
}

page!(index, "../assets/index.html", "text/html; charset=utf-8");
page!(clock, "../assets/clock.html", "text/html; charset=utf-8");
page!(chat, "../assets/chat.html", "text/html; charset=utf-8");
page!(ticker, "../assets/ticker.html", "text/html; charset=utf-8");
page!(css, "../assets/demo.css", "text/css; charset=utf-8");
/// The browser client: its parts joined in the order of `clients/js/parts.mjs` (a browser test
/// checks that this is the same list).
const CLIENT_JS: &str = concat!(
    include_str!("../../../clients/js/src/protocol.js"),
    include_str!("../../../clients/js/src/transports.js"),
    include_str!("../../../clients/js/src/link.js"),
    include_str!("../../../clients/js/src/client.js"),
);

/// Serves the browser client at `/tidings.js`.
pub async fn client_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CLIENT_JS,
    )
}

const SYMBOLS: [(&str, f64); 6] = [
    ("ACME", 123.45),
    ("GLOBX", 48.10),
    ("INITECH", 17.82),
    ("UMBRL", 301.50),
    ("HOOLI", 942.00),
    ("STARK", 512.30),
];

/// Formats ms since the Unix epoch as UTC `HH:MM:SS`.
pub fn hms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// Runs the demo publisher until shutdown.
pub async fn publisher(state: State) {
    let clock = ChannelName::new("demo:clock").expect("valid channel");
    let ticker = ChannelName::new("demo:ticker").expect("valid channel");
    let mut prices: Vec<f64> = SYMBOLS.iter().map(|(_, p)| *p).collect();
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        if n.is_multiple_of(2) {
            let now = tidings_core::memory::now_ms();
            let data = format!("{{\"time\":{now},\"text\":\"{}\"}}", hms(now));
            if let Err(e) = state.hub.publish(&clock, None, Payload::text(data)).await {
                tracing::warn!("demo clock publish failed: {e}");
            }
        }
        let i = (n as usize) % SYMBOLS.len();
        let change = (rand::random::<f64>() - 0.5) * prices[i] * 0.01;
        prices[i] = (prices[i] + change).max(1.0);
        let data = format!(
            "{{\"symbol\":\"{}\",\"price\":{:.2},\"change\":{:.2}}}",
            SYMBOLS[i].0, prices[i], change
        );
        if let Err(e) = state
            .hub
            .publish(&ticker, Some("quote".into()), Payload::text(data))
            .await
        {
            tracing::warn!("demo ticker publish failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_time() {
        assert_eq!(super::hms(1_764_510_068_000), "13:41:08");
    }
}

//! The WebSocket `Origin` check, a middleware layer in front of `/ws` routes.
//!
//! Browsers send cookies with cross-site WebSocket handshakes, and the same-origin policy does
//! not apply to them, so a page on any site could otherwise open a socket as the user
//! (cross-site WebSocket hijacking). Allowed: requests without `Origin` (non-browser clients),
//! the same origin as the `Host` header, `localhost`/`127.0.0.1`/`[::1]` on any port, and every
//! origin in `allowed_origins` (`*` allows all).

use axum::extract::{Request, State as Axum};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Code};
use crate::state::State;

/// True when `origin` may open a WebSocket on a server reached as `host`.
pub fn allowed(origin: &str, host: Option<&str>, list: &[String]) -> bool {
    if list
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if host.is_some_and(|h| h.eq_ignore_ascii_case(rest)) {
        return true;
    }
    let hostname = if rest.starts_with('[') {
        rest.split_once(']').map(|(h, _)| &h[1..]).unwrap_or(rest)
    } else {
        rest.split(':').next().unwrap_or(rest)
    };
    matches!(hostname, "localhost" | "127.0.0.1" | "::1")
}

/// The middleware.
pub async fn check(Axum(state): Axum<State>, req: Request, next: Next) -> Response {
    if let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok());
        if !allowed(origin, host, &state.config.allowed_origins) {
            return ApiError::new(
                Code::Forbidden,
                format!("WebSocket from origin {origin:?} is not allowed; add it to allowed_origins in the server config"),
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn same_origin_localhost_and_list() {
        assert!(allowed("http://example.com", Some("example.com"), &[]));
        assert!(allowed("http://localhost:3000", Some("example.com"), &[]));
        assert!(allowed("http://[::1]:3000", None, &[]));
        assert!(allowed(
            "https://app.example",
            Some("push.example"),
            &["https://app.example".into()]
        ));
        assert!(!allowed("https://evil.example", Some("push.example"), &[]));
        assert!(!allowed(
            "https://localhost.evil.example",
            Some("push.example"),
            &[]
        ));
        assert!(!allowed("null", Some("push.example"), &[]));
        assert!(allowed("https://any", None, &["*".into()]));
    }
}

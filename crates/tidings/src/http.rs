//! A small HTTP/1 client over hyper for the CLI commands.

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// The client type.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new client.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and returns the response with its body unread.
pub async fn send(
    c: &HttpClient,
    method: hyper::Method,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> anyhow::Result<hyper::Response<Incoming>> {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(body))
        .with_context(|| format!("bad URL {url}"))?;
    c.request(req)
        .await
        .with_context(|| format!("cannot reach {url}; is `tidings serve` running there?"))
}

/// Reads a whole body.
pub async fn body(res: hyper::Response<Incoming>) -> anyhow::Result<Bytes> {
    Ok(res
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow!("reading the response: {e}"))?
        .to_bytes())
}

/// Percent-encodes a channel name for a path segment (`/` becomes `%2F`).
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

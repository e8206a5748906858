//! Where to publish and subscribe: URL templates expanded per channel.
//!
//! `{ch}` in a template is the channel name. The defaults follow each server's paths (Tidings'
//! docs/protocol.md; the Nchan locations that bench/compare.sh configures), so one set of
//! flags drives either. Only `http://` and `ws://` are supported: the bench measures the
//! server, not TLS. Addresses are resolved once; unless `--allow-remote`, only loopback
//! targets are accepted, so a mistyped host never becomes a load test of someone else.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

use crate::args::{Args, Server, Transport};

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `ws://` rather than `http://`.
    pub ws: bool,
    /// `host:port`, for the Host header.
    pub authority: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Path and query.
    pub target: String,
}

impl Url {
    /// Parses and resolves `url`.
    pub fn parse(url: &str, allow_remote: bool) -> anyhow::Result<Url> {
        let mut cache = HashMap::new();
        Url::parse_cached(url, allow_remote, &mut cache)
    }

    /// Parses `url`, resolving each authority once through `cache`.
    pub fn parse_cached(
        url: &str,
        allow_remote: bool,
        cache: &mut HashMap<String, SocketAddr>,
    ) -> anyhow::Result<Url> {
        let (ws, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (true, r)
        } else {
            bail!("{url:?}: only http:// and ws:// URLs are supported");
        };
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = match cache.get(authority) {
            Some(a) => *a,
            None => {
                let a = resolve(authority, url, allow_remote)?;
                cache.insert(authority.to_owned(), a);
                a
            }
        };
        Ok(Url {
            ws,
            authority: authority.to_owned(),
            addr,
            target: target.to_owned(),
        })
    }

    /// The URL as text.
    pub fn to_text(&self) -> String {
        let scheme = if self.ws { "ws" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.target)
    }
}

fn resolve(authority: &str, url: &str, allow_remote: bool) -> anyhow::Result<SocketAddr> {
    let has_port = authority
        .rsplit(':')
        .next()
        .is_some_and(|p| p.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    let with_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority:?} in {url:?}"))?
        .next()
        .with_context(|| format!("{authority:?} has no address"))?;
    if !allow_remote && !addr.ip().is_loopback() {
        bail!("{url:?} is not on this machine; pass --allow-remote to load a remote server");
    }
    Ok(addr)
}

/// The default publish template.
pub fn default_publish(server: Server, base: &str) -> String {
    let base = base.trim_end_matches('/');
    match server {
        Server::Tidings => format!("{base}/api/channels/{{ch}}/messages"),
        Server::Nchan => format!("{base}/pub/{{ch}}"),
    }
}

/// The default subscribe template.
pub fn default_subscribe(server: Server, t: Transport, base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let ws_base = base.replacen("http://", "ws://", 1);
    Ok(match (server, t) {
        (Server::Tidings, Transport::Ws) => format!("{ws_base}/ws/{{ch}}"),
        (Server::Tidings, Transport::Iframe) => format!("{base}/iframe/{{ch}}?callback=cb"),
        (Server::Tidings, t) => format!("{base}/{}/{{ch}}", t.as_str()),
        (Server::Nchan, Transport::Ws) => format!("{ws_base}/sub/ws/{{ch}}"),
        (Server::Nchan, Transport::Sse) => format!("{base}/sub/sse/{{ch}}"),
        (Server::Nchan, Transport::Stream) => format!("{base}/sub/chunked/{{ch}}"),
        (Server::Nchan, Transport::Longpoll) => format!("{base}/sub/lp/{{ch}}"),
        (Server::Nchan, Transport::Poll) => format!("{base}/sub/poll/{{ch}}"),
        (Server::Nchan, Transport::Iframe) => {
            bail!("Nchan has no forever-iframe transport; use --transport stream (chunked) or sse")
        }
    })
}

/// Every channel's URLs.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Channel names, by index.
    pub names: Vec<String>,
    pub publish: Vec<Url>,
    pub subscribe: Vec<Url>,
}

impl Targets {
    /// Expands the templates of `a` for channels `{prefix}0…`.
    pub fn new(a: &Args, prefix: &str) -> anyhow::Result<Targets> {
        let publish = a
            .publish_url
            .clone()
            .unwrap_or_else(|| default_publish(a.server, &a.url));
        let subscribe = match &a.subscribe_url {
            Some(s) => s.clone(),
            None => default_subscribe(a.server, a.transport, &a.url)?,
        };
        for (flag, t) in [("--publish-url", &publish), ("--subscribe-url", &subscribe)] {
            if !t.contains("{ch}") {
                bail!("{flag} {t:?} has no {{ch}}: put {{ch}} where the channel name goes");
            }
        }
        let names: Vec<String> = (0..a.channels).map(|i| format!("{prefix}{i}")).collect();
        let mut cache = HashMap::new();
        let mut parse = |t: &str, ch: &str| {
            Url::parse_cached(&t.replace("{ch}", ch), a.allow_remote, &mut cache)
        };
        let mut pubs = Vec::with_capacity(names.len());
        let mut subs = Vec::with_capacity(names.len());
        for n in &names {
            pubs.push(parse(&publish, n)?);
            subs.push(parse(&subscribe, n)?);
        }
        if subs
            .iter()
            .any(|u| u.ws != (a.transport == crate::args::Transport::Ws))
        {
            bail!("--subscribe-url must be ws:// for --transport ws and http:// otherwise");
        }
        Ok(Targets {
            names,
            publish: pubs,
            subscribe: subs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_stay_local() {
        let u = Url::parse("ws://127.0.0.1:9000/sub/ws/b0?x=1", false).unwrap();
        assert!(u.ws);
        assert_eq!(u.authority, "127.0.0.1:9000");
        assert_eq!(u.target, "/sub/ws/b0?x=1");
        assert_eq!(u.to_text(), "ws://127.0.0.1:9000/sub/ws/b0?x=1");
        assert_eq!(
            Url::parse("http://localhost", false).unwrap().addr.port(),
            80
        );
        assert!(Url::parse("https://127.0.0.1/", false).is_err());
        assert!(Url::parse("http://10.1.2.3:80/", false).is_err());
    }

    #[test]
    fn defaults_per_server() {
        let b = "http://127.0.0.1:8080/";
        assert_eq!(
            default_subscribe(Server::Tidings, Transport::Ws, b).unwrap(),
            "ws://127.0.0.1:8080/ws/{ch}"
        );
        assert_eq!(
            default_subscribe(Server::Nchan, Transport::Stream, b).unwrap(),
            "http://127.0.0.1:8080/sub/chunked/{ch}"
        );
        assert!(default_subscribe(Server::Nchan, Transport::Iframe, b).is_err());
        assert_eq!(
            default_publish(Server::Nchan, b),
            "http://127.0.0.1:8080/pub/{ch}"
        );
    }
}

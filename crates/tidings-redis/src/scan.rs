//! Listing channels: a bounded `SCAN` of the meta keys, on every master of a cluster.
//!
//! This backs the admin API (`GET /api/channels`), not a hot path. It stops after
//! [`MAX_CHANNELS`] keys so one call stays bounded however many channels Redis holds, and keeps
//! only channels that have a position (a publish since their epoch began), as the memory broker
//! does.

use futures_util::StreamExt;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Value};
use tidings_core::BrokerError;
use tidings_protocol::ChannelName;

use crate::broker::RedisBroker;
use crate::conn::Conn;
use crate::scripts::shape;

/// The most meta keys one listing reads.
pub const MAX_CHANNELS: usize = 10_000;
const SCAN_COUNT: usize = 1000;

/// A cluster master as `(host, port)`; `None` for the single server.
type Node = Option<(String, u16)>;

async fn query(b: &RedisBroker, node: &Node, cmd: Cmd, what: &str) -> Result<Value, BrokerError> {
    let mut conn = b.cmd.clone();
    b.timed(&b.cmd_ok, what, async move {
        match (&mut conn, node) {
            (Conn::Cluster(c), Some((host, port))) => {
                let to = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                c.route_command(cmd, RoutingInfo::SingleNode(to)).await
            }
            (Conn::Cluster(c), None) => {
                c.route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                    .await
            }
            (c, _) => cmd.query_async(c).await,
        }
    })
    .await
}

/// The masters of the cluster, from `CLUSTER NODES`.
async fn masters(b: &RedisBroker) -> Result<Vec<Node>, BrokerError> {
    let v = query(
        b,
        &None,
        redis::cmd("CLUSTER").arg("NODES").clone(),
        "cluster nodes",
    )
    .await?;
    let text = match &v {
        Value::BulkString(t) => String::from_utf8_lossy(t).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        _ => return Err(BrokerError::Unavailable(shape("cluster nodes"))),
    };
    Ok(text.lines().filter_map(parse_master).map(Some).collect())
}

/// `(host, port)` of a `CLUSTER NODES` line describing a healthy master.
fn parse_master(line: &str) -> Option<(String, u16)> {
    let mut f = line.split(' ');
    let (_, addr, flags) = (f.next()?, f.next()?, f.next()?);
    let flags: Vec<&str> = flags.split(',').collect();
    if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
        return None;
    }
    let addr = addr.split(['@', ',']).next()?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

async fn scan_node(
    b: &RedisBroker,
    node: &Node,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), BrokerError> {
    let pattern = b.keys.meta_pattern();
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let v = query(b, node, cmd, "scan").await?;
        let Value::Array(a) = v else {
            return Err(BrokerError::Unavailable(shape("scan")));
        };
        let [Value::BulkString(next), Value::Array(keys)] = a.as_slice() else {
            return Err(BrokerError::Unavailable(shape("scan reply")));
        };
        for k in keys {
            if let Value::BulkString(k) = k {
                out.push(k.clone());
            }
        }
        cursor = std::str::from_utf8(next)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| BrokerError::Unavailable(shape("scan cursor")))?;
        if cursor == 0 || out.len() >= MAX_CHANNELS {
            return Ok(());
        }
    }
}

/// Channels with a position, sorted; at most [`MAX_CHANNELS`] are looked at.
pub(crate) async fn channels(b: &RedisBroker) -> Result<Vec<ChannelName>, BrokerError> {
    let nodes = if b.cmd.sharded() {
        masters(b).await?
    } else {
        vec![None]
    };
    let mut keys = Vec::new();
    for node in &nodes {
        scan_node(b, node, &mut keys).await?;
        if keys.len() >= MAX_CHANNELS {
            break;
        }
    }
    let mut names: Vec<ChannelName> = keys
        .iter()
        .filter_map(|k| b.keys.channel_of_meta(k))
        .collect();
    names.sort();
    names.dedup();
    let tops: Vec<Result<(ChannelName, Option<u64>), BrokerError>> =
        futures_util::stream::iter(names)
            .map(|name| async move {
                let mut conn = b.cmd.clone();
                let key = b.keys.meta(&name);
                let top = b
                    .timed(&b.cmd_ok, "channels", async move {
                        redis::cmd("HGET")
                            .arg(key)
                            .arg("top")
                            .query_async::<Option<u64>>(&mut conn)
                            .await
                    })
                    .await?;
                Ok((name, top))
            })
            .buffered(16)
            .collect()
            .await;
    let mut out = Vec::new();
    for t in tops {
        if let (name, Some(top)) = t? {
            if top > 0 {
                out.push(name);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_master;

    #[test]
    fn parses_cluster_nodes_lines() {
        let m = "07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460";
        assert_eq!(parse_master(m), Some(("127.0.0.1".into(), 30001)));
        let h = "07c3 10.0.0.1:6379@16379,node-a master - 0 0 1 connected 0-5460";
        assert_eq!(parse_master(h), Some(("10.0.0.1".into(), 6379)));
        assert_eq!(
            parse_master("07c3 127.0.0.1:30004@40004 slave 07c3 0 0 1 connected"),
            None
        );
        assert_eq!(
            parse_master("07c3 127.0.0.1:30002@40002 master,fail - 0 0 1 disconnected"),
            None
        );
        assert_eq!(parse_master("garbage"), None);
    }
}

//! The broker conformance suite against a private 3-master Redis Cluster (sharded pub/sub).

tidings_core::broker_conformance!(async { tidings_redis::testing::cluster_broker().await });

mod nodes {
    use std::time::Duration;

    use tidings_core::{Broker, ChannelOptions};
    use tidings_protocol::{ChannelName, Payload};
    use tidings_redis::testing::{Recorder, RedisCluster};
    use tidings_redis::{RedisBroker, RedisConfig};

    /// Channels spread over every master: a publish on one node reaches another node's
    /// handler through sharded pub/sub, and the listing scans every master.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_share_channels_on_every_shard() {
        let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
            .await
            .unwrap()
            .unwrap();
        let config = RedisConfig {
            cluster_nodes: cluster.urls(),
            ..Default::default()
        };
        let a = RedisBroker::connect(config.clone()).await.unwrap();
        let b = RedisBroker::connect(config).await.unwrap();
        let seen = Recorder::install(&*b);
        let tag = rand::random::<u32>();
        let names: Vec<ChannelName> = (0..12)
            .map(|i| ChannelName::new(&format!("shard{i}-{tag:x}")).unwrap())
            .collect();
        for c in &names {
            b.subscribe(c).await.unwrap();
        }
        let o = ChannelOptions::default();
        for c in &names {
            for i in 0..3 {
                a.publish(c, None, Payload::text(format!("{i}")), &o)
                    .await
                    .unwrap();
            }
        }
        for c in &names {
            assert!(seen.wait_for(c, 3, Duration::from_secs(5)).await, "{c}");
            assert_eq!(seen.offsets(c), vec![1, 2, 3]);
        }
        let listed = a.channels().await.unwrap();
        assert!(
            names.iter().all(|c| listed.contains(c)),
            "listing covers every master"
        );
        for c in &names {
            b.unsubscribe(c).await.unwrap();
        }
    }
}

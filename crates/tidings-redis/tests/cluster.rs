//! The broker conformance suite against a private 3-master Redis Cluster (sharded pub/sub).

tidings_core::broker_conformance!(async { tidings_redis::testing::cluster_broker().await });

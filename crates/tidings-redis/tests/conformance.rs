//! The broker conformance suite against a private single redis-server per test.

tidings_core::broker_conformance!(async { tidings_redis::testing::private_broker().await });

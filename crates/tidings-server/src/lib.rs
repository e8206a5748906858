//! The Tidings HTTP server: every transport of DESIGN §3 on one channel model.
//!
//! [`run`] takes a bound listener, a config and a shutdown future, so the binary and the tests
//! start the same server (tests bind port 0). Shutdown: stop accepting, tell every stream to
//! reconnect (SSE `retry`, a `reconnect` notice on stream and iframe, WebSocket close 1001),
//! answer held long polls, then wait for connections to drain until `shutdown_grace`.

pub mod api;
pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
pub mod metrics;
pub mod native;
pub mod origin;
pub mod prefixed;
pub mod request;
pub mod state;
pub mod stop;
pub mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tidings_core::{Broker, Hub, MemoryBroker};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{Any, CorsLayer};

pub use config::Config;
use state::{AppState, State};
use transport::{iframe, longpoll, poll, sse, stream, websocket, websocket_raw};

/// Builds the router over shared state.
pub fn router(state: State) -> Router {
    let api = Router::new()
        .route("/api/channels", get(api::list))
        .route(
            "/api/channels/{channel}",
            get(api::info).delete(api::delete),
        )
        .route("/api/channels/{channel}/messages", post(api::publish))
        .route("/api/channels/{channel}/history", get(api::history))
        .layer(from_fn_with_state(state.clone(), auth::require));
    let ws = Router::new()
        .route("/ws", get(websocket::handler))
        .route("/ws/{*channel}", get(websocket_raw::handler))
        .layer(from_fn_with_state(state.clone(), origin::check));
    // Subscriptions may be read cross-origin (a page on another host polling this server).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers(Any);
    let subscribe = Router::new()
        .route("/poll", get(poll::many))
        .route("/poll/{*channel}", get(poll::one))
        .route("/longpoll", get(longpoll::many))
        .route("/longpoll/{*channel}", get(longpoll::one))
        .route("/stream", get(stream::many))
        .route("/stream/{*channel}", get(stream::one))
        .route("/sse", get(sse::many))
        .route("/sse/{*channel}", get(sse::one))
        .route("/iframe", get(iframe::many))
        .route("/iframe/{*channel}", get(iframe::one))
        .layer(cors);
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .route("/tidings.js", get(demo::client_js))
        .merge(api)
        .merge(ws)
        .merge(subscribe);
    if state.config.demos {
        app = app
            .route("/", get(demo::index))
            .route("/clock", get(demo::clock))
            .route("/chat", get(demo::chat))
            .route("/ticker", get(demo::ticker))
            .route("/demo.css", get(demo::css));
    }
    app.fallback(error::not_found).with_state(state)
}

async fn healthz(axum::extract::State(state): axum::extract::State<State>) -> impl IntoResponse {
    let ok = state.hub.broker().healthy();
    let (status, text) = if ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    let body =
        serde_json::json!({ "status": text, "broker": if ok { "up" } else { "unreachable" } });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics_page(
    axum::extract::State(state): axum::extract::State<State>,
) -> impl IntoResponse {
    let text = metrics::render(state.hub.broker().history_bytes());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}

/// Builds the memory broker for `config`.
pub fn memory_broker(config: &Config) -> Arc<dyn Broker> {
    let b = MemoryBroker::new(config.history_budget);
    b.start_sweeper(Duration::from_secs(1));
    b
}

/// Serves on `listener` with `broker` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    config: Config,
    broker: Arc<dyn Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    metrics::install();
    let hub = Hub::new(broker, config.namespaces.clone());
    let (tx, rx) = watch::channel(false);
    let grace = config.shutdown_grace;
    if config.api_key.is_none() {
        tracing::warn!(
            "no api_key configured: the publish and channel API accept requests from loopback only"
        );
    }
    let state: State = Arc::new(AppState {
        hub,
        config,
        shutdown: rx.clone(),
    });
    if state.config.demos {
        tokio::spawn(demo::publisher(state.clone()));
    }
    let app = router(state.clone());
    let mut drained = rx.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: telling clients to reconnect, draining for up to {grace:?}");
        let _ = tx.send(true);
        // Keep the sender alive for good, so receivers keep seeing `true`.
        std::mem::forget(tx);
    });
    let serving = native::serve(listener, state, app);
    tokio::pin!(serving);
    tokio::select! {
        _ = &mut serving => Ok(()),
        _ = async {
            let _ = drained.wait_for(|v| *v).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("connections still open after {grace:?}; closing them");
            Ok(())
        }
    }
}

/// Connects the Redis broker for `config` (`broker = "redis"`).
#[cfg(feature = "redis")]
pub async fn redis_broker(config: &Config) -> std::io::Result<Arc<dyn Broker>> {
    let rc = tidings_redis::RedisConfig {
        url: Some(config.redis.url.clone()),
        cluster_nodes: config.redis.cluster_nodes.clone(),
        prefix: config.redis.prefix.clone(),
        ..Default::default()
    };
    let target = if rc.cluster_nodes.is_empty() {
        rc.url.clone().unwrap_or_default()
    } else {
        rc.cluster_nodes.join(",")
    };
    let broker = tidings_redis::RedisBroker::connect(rc).await.map_err(|e| {
        std::io::Error::other(format!(
            "cannot use Redis at {target}: {e}; check redis.url / redis.cluster_nodes"
        ))
    })?;
    Ok(broker)
}

/// Without the `redis` feature, `broker = "redis"` is refused with a clear error.
#[cfg(not(feature = "redis"))]
pub async fn redis_broker(_config: &Config) -> std::io::Result<Arc<dyn Broker>> {
    Err(std::io::Error::other(
        "this build has no Redis broker; rebuild with the `redis` feature of tidings-server",
    ))
}

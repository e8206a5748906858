//! What every handler shares: the hub, the config and the shutdown signal.

use std::sync::Arc;

use tidings_core::Hub;
use tokio::sync::watch;

use crate::config::Config;

/// Shared server state.
pub struct AppState {
    pub hub: Arc<Hub>,
    pub config: Config,
    /// Becomes `true` when shutdown begins; streams then tell clients to reconnect and end.
    pub shutdown: watch::Receiver<bool>,
}

/// The handle handlers receive.
pub type State = Arc<AppState>;

impl AppState {
    /// True once shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

//! The server's shutdown signal, registered once per connection.
//!
//! Why: a kept-alive polling connection waits for shutdown twice per request (while it reads
//! the next request, and while a long poll is held). A fresh `watch::Receiver::changed()` per
//! wait registers a waiter in the channel's list and unregisters it when the wait ends; the
//! long-poll profile showed that as a few percent of the server's CPU. A [`Stop`] keeps one
//! pinned wait for the connection's life, so its waiter is registered once.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// A future that completes once `shutdown` turns true (or its sender is gone).
pub async fn signal(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

/// A pinned [`signal`] that may be waited on again and again; once it has fired, every wait
/// completes at once.
pub struct Stop<'a> {
    signal: Pin<&'a mut (dyn Future<Output = ()> + Send)>,
    fired: bool,
}

impl<'a> Stop<'a> {
    /// Wraps a pinned signal.
    pub fn new(signal: Pin<&'a mut (dyn Future<Output = ()> + Send)>) -> Self {
        Stop {
            signal,
            fired: false,
        }
    }

    /// Waits until shutdown. Cancel-safe: dropping the wait keeps the registration.
    pub async fn wait(&mut self) {
        if !self.fired {
            self.signal.as_mut().await;
            self.fired = true;
        }
    }

    /// True once a wait has seen shutdown.
    pub fn fired(&self) -> bool {
        self.fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::time::Duration;

    #[tokio::test]
    async fn fires_once_and_stays_fired() {
        let (tx, rx) = watch::channel(false);
        let mut signal = pin!(signal(rx));
        let mut stop = Stop::new(signal.as_mut());
        let early = tokio::time::timeout(Duration::from_millis(20), stop.wait()).await;
        assert!(early.is_err(), "no shutdown yet");
        assert!(!stop.fired());
        tx.send(true).unwrap();
        stop.wait().await;
        assert!(stop.fired());
        // Waiting again after it fired completes at once instead of polling a finished future.
        stop.wait().await;
    }
}

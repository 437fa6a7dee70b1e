//! The daemon's ear for direct writes: a connection of its own that `LISTEN`s for the
//! triggers' `NOTIFY cpwatch_changes`, and wakes the evaluation loop (the same wake-up the cron
//! tick sends) a moment after a change, so what a case system wrote is evaluated within seconds
//! instead of at the next hourly pass. If the connection drops it reconnects, and wakes the
//! loop once then, since changes may have come meanwhile (their check requests wait in the
//! database either way).

use crate::store::changes::Listener;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the connection is asked for notifications, and how long a burst of them is
/// gathered into one wake-up.
const POLL: Duration = Duration::from_millis(200);
/// How often a quiet connection is checked to be alive.
const PING: Duration = Duration::from_secs(30);

/// Listen until `stop`; each burst of notifications sends one wake-up.
pub async fn run(url: String, wake: mpsc::Sender<()>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = {
            let url = url.clone();
            tokio::task::spawn_blocking(move || Listener::connect(&url)).await
        };
        match connected {
            Ok(Ok(listener)) => {
                tracing::info!("listening for changes written to the database");
                backoff = Duration::from_secs(1);
                let _ = wake.try_send(());
                if listen(listener, &wake, &mut stop).await {
                    return;
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot listen for changes; retrying"),
            Err(e) => tracing::warn!(error = %e, "listener set-up panicked; retrying"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// Poll one connection; true when told to stop, false when the connection failed.
async fn listen(
    mut listener: Listener,
    wake: &mpsc::Sender<()>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut quiet = Duration::ZERO;
    loop {
        if *stop.borrow() {
            return true;
        }
        let Ok((back, polled)) = tokio::task::spawn_blocking(move || {
            let r = listener.arrived();
            (listener, r)
        })
        .await
        else {
            return false;
        };
        listener = back;
        match polled {
            Ok(0) => quiet += POLL,
            Ok(n) => {
                tracing::debug!(notifications = n, "changes written; evaluating");
                quiet = Duration::ZERO;
                let _ = wake.try_send(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the change listener's connection; reconnecting");
                return false;
            }
        }
        if quiet >= PING {
            quiet = Duration::ZERO;
            let Ok((back, pinged)) = tokio::task::spawn_blocking(move || {
                let r = listener.ping();
                (listener, r)
            })
            .await
            else {
                return false;
            };
            listener = back;
            if let Err(e) = pinged {
                tracing::warn!(error = %e, "lost the change listener's connection; reconnecting");
                return false;
            }
        }
        tokio::select! {
            _ = stop.changed() => return true,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

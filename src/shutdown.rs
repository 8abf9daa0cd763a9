//! Graceful shutdown: Ctrl-C or SIGTERM cancels one token; the server stops
//! accepting, lets in-flight requests finish (their sessions are saved), and
//! background tasks stop.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on Ctrl-C or SIGTERM. The handlers are installed before
/// this returns, so a signal sent the moment the site says it is serving
/// still shuts it down gracefully instead of killing it.
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("Ctrl-C: shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
                () = token.cancelled() => return,
            }
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        tokio::select! {
            result = tokio::signal::ctrl_c() => match result {
                Ok(()) => tracing::info!("Ctrl-C: shutting down"),
                Err(error) => {
                    tracing::error!(%error, "cannot listen for Ctrl-C");
                    return;
                }
            },
            () = token.cancelled() => return,
        }
        token.cancel();
    });
    Ok(())
}

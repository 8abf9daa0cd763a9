//! A TCP forwarder for outage tests: listens on 127.0.0.1, copies bytes to a
//! real server, and can be cut (every connection dropped, new ones refused
//! because the listener is closed) and restored on the same port.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Forwarder {
    addr: SocketAddr,
    target: SocketAddr,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Forwarder {
    /// Starts forwarding from a fresh port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut forwarder = Self {
            addr,
            target,
            running: None,
        };
        forwarder.serve(listener);
        forwarder
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection and closes the listener.
    pub async fn cut(&mut self) {
        if let Some((token, accept)) = self.running.take() {
            token.cancel();
            // Wait until the listener is really closed.
            let _ = accept.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        assert!(self.running.is_none(), "restore without cut");
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let token = CancellationToken::new();
        let target = self.target;
        let accept_token = token.clone();
        let accept = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = accept_token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let conn_token = accept_token.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = conn_token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        self.running = Some((token, accept));
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some((token, _)) = self.running.take() {
            token.cancel();
        }
    }
}

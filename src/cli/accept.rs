//! The accept loop of the mount's two small servers (the control socket and the metrics
//! endpoint): every connection is handled in a task of its own until the process ends, and a
//! failed accept (out of file descriptors, a reset) is skipped, not fatal.

use std::future::Future;
use std::io;

/// A listening socket.
pub trait Listener: Send + 'static {
    type Conn: Send + 'static;
    fn next(&self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Conn = tokio::net::TcpStream;
    async fn next(&self) -> io::Result<Self::Conn> {
        self.accept().await.map(|(c, _)| c)
    }
}

impl Listener for tokio::net::UnixListener {
    type Conn = tokio::net::UnixStream;
    async fn next(&self) -> io::Result<Self::Conn> {
        self.accept().await.map(|(c, _)| c)
    }
}

/// Serve `listener` in the background: `handle` each connection in its own task.
pub fn serve_forever<L, H, F>(listener: L, handle: H)
where
    L: Listener,
    H: Fn(L::Conn) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok(conn) = listener.next().await else {
                continue;
            };
            tokio::spawn(handle(conn));
        }
    });
}

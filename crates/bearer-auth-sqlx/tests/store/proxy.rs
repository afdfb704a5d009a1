//! A TCP proxy the tests own, in front of a real database server: stopped, it drops
//! every connection and refuses new ones (nothing listens on its port); started again,
//! it listens on the same port. The path to a live database, cut and restored under a
//! running store.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    net::{TcpSocket, TcpStream},
    task::JoinHandle,
};

pub(crate) struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    running: Mutex<Option<Running>>,
}

struct Running {
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// A proxy to `upstream` on 127.0.0.1, on a port of its own, running.
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let mut proxy = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            running: Mutex::new(None),
        };
        proxy.addr = proxy.listen(proxy.addr);
        proxy
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn listen(&self, addr: SocketAddr) -> SocketAddr {
        let socket = TcpSocket::new_v4().unwrap();
        // The port again at once, though connections it accepted are in TIME_WAIT.
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(128).unwrap();
        let bound = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let upstream = self.upstream;
        let accept = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        *self.running.lock().unwrap() = Some(Running {
            accept,
            connections,
        });
        bound
    }

    /// Drops every connection and stops listening: connecting is refused from now on.
    pub(crate) async fn stop(&self) {
        let running = self.running.lock().unwrap().take();
        let Some(running) = running else { return };
        running.accept.abort();
        let _ = running.accept.await;
        let connections: Vec<_> = running.connections.lock().unwrap().drain(..).collect();
        for task in connections {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again, on the same port.
    pub(crate) fn restart(&self) {
        assert!(self.running.lock().unwrap().is_none(), "already running");
        self.listen(self.addr);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(running) = self.running.lock().unwrap().take() {
            running.accept.abort();
            for task in running.connections.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }
}

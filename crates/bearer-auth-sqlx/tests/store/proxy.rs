//! TCP proxies the tests own, in front of a real database server. [`Proxy`]: stopped, it
//! drops every connection and refuses new ones (nothing listens on its port); started
//! again, it listens on the same port. The path to a live database, cut and restored
//! under a running store. [`Freezer`]: one connection's path silently gone, the sockets
//! still open.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpSocket, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
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

/// A TCP proxy whose connections can be frozen one by one: from then on the bytes of a
/// frozen connection go nowhere, both ways, and both of its sockets stay open (a NAT or
/// load balancer that silently dropped the flow: no reset, no close).
pub(crate) struct Freezer {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    /// One flag per connection accepted, in order.
    frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Freezer {
    /// A freezing proxy to `upstream` on 127.0.0.1, on a port of its own.
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let accept = tokio::spawn({
            let frozen = Arc::clone(&frozen);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let flag = Arc::new(AtomicBool::new(false));
                    frozen.lock().unwrap().push(Arc::clone(&flag));
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            pump(client_read, server_write, Arc::clone(&flag)),
                            pump(server_read, client_write, flag),
                        );
                    });
                }
            }
        });
        Self {
            addr,
            accept,
            frozen,
        }
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.frozen.lock().unwrap().len()
    }

    /// Freezes the connection accepted `index`-th (from 0).
    pub(crate) fn freeze(&self, index: usize) {
        self.frozen.lock().unwrap()[index].store(true, Ordering::SeqCst);
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to` until either ends or `frozen` is set; frozen, it reads and
/// drops everything, and keeps both sockets open.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, frozen: Arc<AtomicBool>) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            while !matches!(from.read(&mut buf).await, Ok(0) | Err(_)) {}
            // The peer closed its side: this one stays open all the same.
            let _open = to;
            return std::future::pending().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

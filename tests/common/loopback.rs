//! What every registry-test server shares: a free port on 127.0.0.1, a
//! bounded wait until a port accepts, and `LoopbackServer`, the accept loop
//! behind the token server and the proxies. A `LoopbackServer` stops when it
//! drops: it shuts down every connection its handlers tracked (so a handler
//! blocked on a read or a write returns) and joins every thread, so nothing
//! outlives the test, also when the test panics.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A port on 127.0.0.1 that nothing listened on a moment ago. Another process
/// may take it before the caller binds it; callers that hand it to a child
/// process retry on "address already in use".
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

/// Whether something accepts TCP connections on `addr` right now.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// The open connections of one server, so that stopping it can interrupt
/// handlers blocked on them.
#[derive(Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    stopping: AtomicBool,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Keeps a connection registered with its server until it drops. Drop it
/// before the stream itself when the stream must really close (the server
/// holds a clone of the socket while it is registered).
pub struct Tracked {
    id: u64,
    shared: Arc<Shared>,
}

impl Connections {
    /// Registers `stream` so that stopping the server shuts it down.
    pub fn track(&self, stream: &TcpStream) -> Tracked {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            if self.shared.stopping.load(Ordering::SeqCst) {
                let _ = clone.shutdown(Shutdown::Both);
            }
            self.shared.open.lock().unwrap().insert(id, clone);
        }
        Tracked { id, shared: self.shared.clone() }
    }

    /// Runs `body` on a thread the server joins when it stops.
    pub fn spawn(&self, body: impl FnOnce() + Send + 'static) {
        let handle = std::thread::spawn(body);
        let mut threads = self.shared.threads.lock().unwrap();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }

    /// Whether the server is being stopped.
    pub fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.shared.open.lock().unwrap().remove(&self.id);
    }
}

/// An accept loop on 127.0.0.1 that runs `handler` on a thread per connection.
pub struct LoopbackServer {
    addr: SocketAddr,
    connections: Connections,
    accept: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Binds a free port on 127.0.0.1 and starts accepting.
    pub fn start(handler: impl Fn(TcpStream, &Connections) + Send + Sync + 'static) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let connections = Connections {
            shared: Arc::new(Shared {
                stopping: AtomicBool::new(false),
                next_id: AtomicU64::new(0),
                open: Mutex::new(HashMap::new()),
                threads: Mutex::new(Vec::new()),
            }),
        };
        let handler = Arc::new(handler);
        let accepting = connections.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopping() {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let connections = accepting.clone();
                accepting.spawn(move || handler(stream, &connections));
            }
        });
        LoopbackServer { addr, connections, accept: Some(accept) }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let shared = &self.connections.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        // The accept loop is blocked in accept(): one more connection wakes it.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in shared.open.lock().unwrap().values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *shared.threads.lock().unwrap());
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Closes `stream` with a TCP reset instead of an orderly FIN, the way a
/// crashed peer or a middlebox drops a connection.
pub fn reset(stream: TcpStream, tracked: Tracked) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(tracked);
    drop(stream);
}

/// Reads from `stream` until the peer closes it or the server stops, for a
/// connection that must stay open without answering.
pub fn hold_open(stream: &mut impl io::Read) {
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

//! An HTTP proxy of the kind users name in `HTTP_PROXY`/`HTTPS_PROXY`:
//! `CONNECT host:port` opens a tunnel (what clients do for HTTPS), and an
//! absolute-form request (`GET http://host:port/path`) is forwarded (what
//! they do for plain HTTP). Names can be mapped onto loopback addresses:
//! `registry.hoist.test` does not resolve, so a client that reached a
//! registry under that name provably went through the proxy. Targets that
//! are neither mapped nor on loopback get a 502, so nothing leaves the host.
//! Every request's target is recorded.

use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use super::http::{
    RequestHead, ResponseHead, relay_body, relay_response, send_upstream, write_bad_request, write_response,
};
use super::loopback::{Connections, LoopbackServer};

/// A host name that resolves nowhere; map it with `ForwardProxy::map`. Test
/// server certificates are valid for it.
pub const FAKE_REGISTRY_HOST: &str = "registry.hoist.test";

/// One request the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRequest {
    /// `CONNECT`, or the method of a forwarded request.
    pub method: String,
    /// The target as sent: `host:port` for CONNECT, the absolute URL otherwise.
    pub target: String,
    /// The `host:port` the client asked for (default port filled in).
    pub authority: String,
}

/// The proxy; stops when dropped.
pub struct ForwardProxy {
    server: LoopbackServer,
    state: Arc<State>,
}

struct State {
    hosts: Mutex<HashMap<String, String>>,
    requests: Mutex<Vec<ProxyRequest>>,
}

impl ForwardProxy {
    /// Starts a proxy on 127.0.0.1 with no names mapped.
    pub fn start() -> ForwardProxy {
        let state = Arc::new(State { hosts: Mutex::new(HashMap::new()), requests: Mutex::new(Vec::new()) });
        let serving = state.clone();
        let server = LoopbackServer::start(move |stream, connections| serve(stream, connections, &serving));
        ForwardProxy { server, state }
    }

    /// Sends what clients ask for at `name` (`host:port`, e.g. `registry.hoist.test:5000`) to `to`
    /// (`127.0.0.1:PORT`).
    pub fn map(&self, name: &str, to: &str) {
        self.state.hosts.lock().unwrap().insert(name.to_ascii_lowercase(), to.to_string());
    }

    /// `http://127.0.0.1:PORT`, the value for `HTTP_PROXY` and `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The `host:port` of every request so far, oldest first.
    pub fn authorities(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.authority).collect()
    }
}

impl State {
    /// Where to connect for `authority`: its mapping, or itself when on loopback.
    fn resolve(&self, authority: &str) -> Option<String> {
        if let Some(to) = self.hosts.lock().unwrap().get(&authority.to_ascii_lowercase()) {
            return Some(to.clone());
        }
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
        matches!(host, "127.0.0.1" | "localhost" | "[::1]").then(|| authority.to_string())
    }
}

fn serve(stream: TcpStream, connections: &Connections, state: &State) {
    let _tracked = connections.track(&stream);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut client = stream;
    loop {
        let mut head = match RequestHead::read(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return write_bad_request(&mut client, &e),
        };
        if head.method == "CONNECT" {
            let _ = tunnel(&head, reader, client, connections, state);
            return;
        }
        let keep_alive = forward(&mut head, &mut reader, &mut client, connections, state).unwrap_or(false);
        if !keep_alive || head.wants_close() {
            return;
        }
    }
}

fn record(state: &State, head: &RequestHead, authority: &str) {
    state.requests.lock().unwrap().push(ProxyRequest {
        method: head.method.clone(),
        target: head.target.clone(),
        authority: authority.to_string(),
    });
}

fn unreachable_target(client: &mut TcpStream, authority: &str) -> io::Result<()> {
    let body = format!("the test proxy does not reach {authority}: map it with ForwardProxy::map\n");
    write_response(client, 502, "Bad Gateway", &[("Connection", "close")], body.as_bytes())
}

fn tunnel(
    head: &RequestHead,
    mut reader: BufReader<TcpStream>,
    mut client: TcpStream,
    connections: &Connections,
    state: &State,
) -> io::Result<()> {
    let authority = head.target.clone();
    record(state, head, &authority);
    let Some(upstream) = state.resolve(&authority).and_then(|to| TcpStream::connect(to).ok()) else {
        return unreachable_target(&mut client, &authority);
    };
    let _tracked = connections.track(&upstream);
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let mut upstream_reader = upstream.try_clone()?;
    let mut upstream_writer = upstream;
    let mut client_writer = client.try_clone()?;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let _ = io::copy(&mut upstream_reader, &mut client_writer);
            let _ = client_writer.shutdown(Shutdown::Write);
        });
        // Bytes the client sent after the CONNECT head are in `reader`'s buffer; copy drains it first.
        let _ = io::copy(&mut reader, &mut upstream_writer);
        let _ = upstream_writer.shutdown(Shutdown::Write);
    });
    Ok(())
}

fn forward(
    head: &mut RequestHead,
    reader: &mut BufReader<TcpStream>,
    client: &mut TcpStream,
    connections: &Connections,
    state: &State,
) -> io::Result<bool> {
    let Some(rest) = head.target.strip_prefix("http://") else {
        relay_body(reader, &mut io::sink(), head.framing())?;
        let body = b"a forward proxy takes CONNECT or absolute-form http:// requests\n";
        write_response(client, 400, "Bad Request", &[], body)?;
        return Ok(true);
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let path = path.to_string();
    record(state, head, &authority);
    head.continue_if_expected(client)?;
    let Some(upstream) = state.resolve(&authority).and_then(|to| TcpStream::connect(to).ok()) else {
        relay_body(reader, &mut io::sink(), head.framing())?;
        unreachable_target(client, &authority)?;
        return Ok(false);
    };
    let _tracked = connections.track(&upstream);
    let mut outgoing = head.clone();
    outgoing.target = path;
    outgoing.headers.remove("Proxy-Connection");
    outgoing.headers.remove("Proxy-Authorization");
    if outgoing.headers.get("host").is_none() {
        outgoing.headers.set("Host", &authority);
    }
    let mut upstream = send_upstream(&outgoing, reader, upstream)?;
    let response = ResponseHead::read(&mut upstream)?;
    relay_response(response, &head.method, &mut upstream, client)
}

//! A reverse proxy in front of a plain-HTTP registry that forwards every
//! request unchanged, except those a test armed a `Fault` for: it then
//! answers an error, redirects to itself, sends an oversized manifest, or
//! corrupts, stalls or cuts the registry's own answer. Faults are armed and
//! cleared while it runs, so one test can break a pull, then let it resume.
//! Every request is recorded (method, target, `Range`).
//!
//! Each request goes to the registry on a connection of its own (the `Host`
//! header is kept, so the registry's upload `Location`s point back at the
//! proxy); client connections are kept alive across requests.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::http::{
    Framing, RequestHead, ResponseHead, read_body, relay_body, relay_response, send_upstream,
    write_bad_request, write_response,
};
use super::loopback::{Connections, LoopbackServer, hold_open, reset};
use super::registry::TestRegistry;

/// What the proxy does to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwards, then XORs the middle byte of a 200/206 body with 1: same length, wrong digest.
    CorruptBody,
    /// Forwards, sends the head and the first `after_bytes` of a 200/206 body (never all of it),
    /// then sends nothing more and keeps the connection open until the client closes it.
    Stall { after_bytes: u64 },
    /// Answers `status` (with a registry-style JSON error) to the first `times` matching requests
    /// without forwarding them; later ones are forwarded.
    FailFirst { status: u16, times: usize },
    /// For the first `times` matching requests with a 200/206 answer: sends the head and the first
    /// `bytes` of the body (never all of it), then resets the connection. Later ones, `Range`
    /// requests included, are forwarded, so a resumed download gets the registry's own 206.
    ResetAfter { bytes: u64, times: usize },
    /// Answers 307 with `Location` set to the request's own URL, every time.
    RedirectLoop,
    /// Answers 200 with a `bytes`-long manifest (valid JSON, padded) instead of forwarding.
    HugeManifest { bytes: u64 },
}

/// Which requests a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requests {
    /// Every request.
    All,
    /// `GET /v2/<name>/blobs/<digest>`.
    BlobGets,
    /// `GET /v2/<name>/manifests/<reference>`.
    ManifestGets,
    /// `PUT /v2/<name>/manifests/<reference>`.
    ManifestPuts,
    /// `POST`, `PATCH` and `PUT` under `/v2/<name>/blobs/uploads/`.
    BlobUploads,
    /// Any method, a path containing this text.
    PathContains(String),
}

impl Requests {
    /// Whether a `method` request for `path` (no query) is one of these.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let blob = path.starts_with("/v2/")
            && path
                .rsplit_once("/blobs/")
                .is_some_and(|(_, digest)| digest != "uploads" && !digest.contains('/'));
        let manifest = path.starts_with("/v2/")
            && path.rsplit_once("/manifests/").is_some_and(|(_, reference)| !reference.contains('/'));
        match self {
            Requests::All => true,
            Requests::BlobGets => method == "GET" && blob,
            Requests::ManifestGets => method == "GET" && manifest,
            Requests::ManifestPuts => method == "PUT" && manifest,
            Requests::BlobUploads => {
                matches!(method, "POST" | "PATCH" | "PUT")
                    && path.starts_with("/v2/")
                    && path.contains("/blobs/uploads/")
            }
            Requests::PathContains(text) => path.contains(text.as_str()),
        }
    }
}

/// One request the proxy received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// The request method.
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// The `Range` header, when there was one.
    pub range: Option<String>,
}

/// The proxy; stops when dropped.
pub struct FaultProxy {
    server: LoopbackServer,
    state: Arc<State>,
}

struct State {
    upstream: String,
    faults: Mutex<Vec<Armed>>,
    requests: Mutex<Vec<ProxiedRequest>>,
    next_id: AtomicU64,
}

struct Armed {
    id: u64,
    requests: Requests,
    fault: Fault,
    /// For `FailFirst` and `ResetAfter`: how many more times it fires.
    remaining: Option<usize>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 in front of the plain-HTTP server at `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            faults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        });
        let serving = state.clone();
        let server = LoopbackServer::start(move |stream, connections| serve(stream, connections, &serving));
        FaultProxy { server, state }
    }

    /// Starts a proxy in front of `registry`, which must be plain HTTP.
    pub fn in_front_of(registry: &TestRegistry) -> FaultProxy {
        assert!(
            !registry.is_tls(),
            "FaultProxy speaks plain HTTP to the registry: use an anonymous or token registry"
        );
        FaultProxy::start(&registry.host())
    }

    /// `127.0.0.1:PORT`: use it as the registry host of image references.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Arms `fault` for `requests`, after any already armed (the first armed one that matches applies).
    pub fn arm(&self, requests: Requests, fault: Fault) {
        let remaining = match fault {
            Fault::FailFirst { times, .. } | Fault::ResetAfter { times, .. } => Some(times),
            _ => None,
        };
        let id = self.state.next_id.fetch_add(1, Ordering::SeqCst);
        self.state.faults.lock().unwrap().push(Armed { id, requests, fault, remaining });
    }

    /// Disarms every fault: from now on everything is forwarded unchanged.
    pub fn clear(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Forgets the recorded requests, to assert on one step of a test alone.
    pub fn clear_requests(&self) {
        self.state.requests.lock().unwrap().clear();
    }
}

impl State {
    /// The first armed fault for this request that still fires. Faults acting on
    /// the request alone are used up here; those acting on the answer later,
    /// by `take`, only if the answer has a body to break.
    fn choose(&self, method: &str, path: &str) -> Option<(u64, Fault)> {
        let mut faults = self.faults.lock().unwrap();
        let armed = faults.iter_mut().find(|a| a.remaining != Some(0) && a.requests.matches(method, path))?;
        if matches!(armed.fault, Fault::FailFirst { .. }) {
            armed.remaining = armed.remaining.map(|n| n - 1);
        }
        Some((armed.id, armed.fault.clone()))
    }

    /// Uses up one firing of the armed fault `id`; false when it was cleared or used up meanwhile.
    fn take(&self, id: u64) -> bool {
        let mut faults = self.faults.lock().unwrap();
        match faults.iter_mut().find(|a| a.id == id) {
            Some(Armed { remaining: Some(0), .. }) | None => false,
            Some(armed) => {
                armed.remaining = armed.remaining.map(|n| n - 1);
                true
            }
        }
    }
}

/// What becomes of the client connection after one exchange.
enum After {
    KeepAlive,
    Close,
    Reset,
}

fn serve(stream: TcpStream, connections: &Connections, state: &State) {
    let tracked = connections.track(&stream);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut client = stream;
    loop {
        let mut head = match RequestHead::read(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return write_bad_request(&mut client, &e),
        };
        state.requests.lock().unwrap().push(ProxiedRequest {
            method: head.method.clone(),
            path: head.target.clone(),
            range: head.headers.get("range").map(str::to_string),
        });
        let fault = state.choose(&head.method, head.path());
        let after =
            exchange(&mut head, &mut reader, &mut client, connections, state, fault).unwrap_or(After::Close);
        match after {
            After::KeepAlive if !head.wants_close() => {}
            After::KeepAlive | After::Close => return,
            After::Reset => {
                drop(reader);
                return reset(client, tracked);
            }
        }
    }
}

fn exchange(
    head: &mut RequestHead,
    reader: &mut BufReader<TcpStream>,
    client: &mut TcpStream,
    connections: &Connections,
    state: &State,
    fault: Option<(u64, Fault)>,
) -> io::Result<After> {
    head.continue_if_expected(client)?;
    let answered_here = match &fault {
        Some((_, Fault::FailFirst { status, .. })) => Some(fail(client, *status)),
        Some((_, Fault::RedirectLoop)) => Some(redirect_to_itself(client, head)),
        Some((_, Fault::HugeManifest { bytes })) => Some(huge_manifest(client, head, *bytes)),
        _ => None,
    };
    if let Some(answer) = answered_here {
        // The client may still be sending a body: read it so the connection stays usable.
        relay_body(reader, &mut io::sink(), head.framing())?;
        answer?;
        return Ok(After::KeepAlive);
    }

    let Ok(upstream) = TcpStream::connect(&state.upstream) else {
        relay_body(reader, &mut io::sink(), head.framing())?;
        write_response(
            client,
            502,
            "Bad Gateway",
            &[],
            b"the registry behind the fault proxy is not running\n",
        )?;
        return Ok(After::KeepAlive);
    };
    let _tracked = connections.track(&upstream);
    let mut upstream = send_upstream(head, reader, upstream)?;
    let mut response = ResponseHead::read(&mut upstream)?;
    let framing = response.framing(&head.method);
    let has_body = matches!(response.status, 200 | 206) && framing != Framing::Empty;
    let body_fault = match fault {
        Some((id, fault @ (Fault::CorruptBody | Fault::Stall { .. } | Fault::ResetAfter { .. })))
            if has_body && state.take(id) =>
        {
            fault
        }
        _ => {
            let keep_alive = relay_response(response, &head.method, &mut upstream, client)?;
            return Ok(if keep_alive { After::KeepAlive } else { After::Close });
        }
    };

    response.headers.remove("Connection");
    let mut body = read_body(&mut upstream, framing)?;
    response.headers.remove("Transfer-Encoding");
    response.headers.set("Content-Length", &body.len().to_string());
    let len = body.len();
    let short = |n: u64| (n as usize).min(len.saturating_sub(1));
    client.write_all(&response.to_bytes())?;
    match body_fault {
        Fault::CorruptBody => {
            let middle = body.len() / 2;
            body[middle] ^= 1;
            client.write_all(&body)?;
            client.flush()?;
            Ok(After::KeepAlive)
        }
        Fault::Stall { after_bytes } => {
            client.write_all(&body[..short(after_bytes)])?;
            client.flush()?;
            hold_open(reader);
            Ok(After::Close)
        }
        Fault::ResetAfter { bytes, .. } => {
            client.write_all(&body[..short(bytes)])?;
            client.flush()?;
            Ok(After::Reset)
        }
        _ => unreachable!("only body faults reach here"),
    }
}

fn fail(client: &mut TcpStream, status: u16) -> io::Result<()> {
    let (reason, code) = match status {
        400 => ("Bad Request", "UNSUPPORTED"),
        401 => ("Unauthorized", "UNAUTHORIZED"),
        403 => ("Forbidden", "DENIED"),
        404 => ("Not Found", "NOT_FOUND"),
        429 => ("Too Many Requests", "TOOMANYREQUESTS"),
        502 => ("Bad Gateway", "UNAVAILABLE"),
        503 => ("Service Unavailable", "UNAVAILABLE"),
        504 => ("Gateway Timeout", "UNAVAILABLE"),
        _ => ("Internal Server Error", "UNKNOWN"),
    };
    let body =
        format!(r#"{{"errors":[{{"code":"{code}","message":"injected by the test's fault proxy"}}]}}"#);
    write_response(client, status, reason, &[("Content-Type", "application/json")], body.as_bytes())
}

fn redirect_to_itself(client: &mut TcpStream, head: &RequestHead) -> io::Result<()> {
    let location = match head.headers.get("host") {
        Some(host) => format!("http://{host}{}", head.target),
        None => head.target.clone(),
    };
    write_response(client, 307, "Temporary Redirect", &[("Location", &location)], b"")
}

fn huge_manifest(client: &mut TcpStream, head: &RequestHead, bytes: u64) -> io::Result<()> {
    const PREFIX: &[u8] = br#"{"schemaVersion":2,"padding":""#;
    const SUFFIX: &[u8] = br#""}"#;
    let mut response = ResponseHead {
        version: "HTTP/1.1".into(),
        status: 200,
        reason: "OK".into(),
        headers: Default::default(),
    };
    response.headers.set("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    response.headers.set("Content-Length", &bytes.to_string());
    client.write_all(&response.to_bytes())?;
    if head.method == "HEAD" {
        return client.flush();
    }
    let framed = (PREFIX.len() + SUFFIX.len()) as u64;
    if bytes < framed {
        client.write_all(&vec![b' '; bytes as usize])?;
        return client.flush();
    }
    client.write_all(PREFIX)?;
    let filler = vec![b'a'; 64 * 1024];
    let mut left = bytes - framed;
    while left > 0 {
        let n = left.min(filler.len() as u64) as usize;
        client.write_all(&filler[..n])?;
        left -= n as u64;
    }
    client.write_all(SUFFIX)?;
    client.flush()
}

//! Just enough HTTP/1.1 for the registry-test servers: reading request and
//! response heads, telling how a body is framed, relaying a body byte for
//! byte (chunked encoding included) or reading it decoded, and writing small
//! answers. Proxies relay bodies as streams, so layers are never held whole
//! unless a fault needs to rewrite them.

use std::io::{self, BufRead, Read, Write};

/// A head longer than this is refused, so a confused peer cannot grow memory.
const MAX_HEAD: usize = 64 * 1024;

/// Header fields in order, names compared without case.
#[derive(Clone, Debug, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Replaces every `name` field with one holding `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.0.push((name.to_string(), value.to_string()));
    }

    /// Removes every `name` field.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.0 {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Whether a `Connection` field lists `close`.
    pub fn wants_close(&self) -> bool {
        self.get("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// A request line and its header fields.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// `GET`, `CONNECT`…
    pub method: String,
    /// As sent: origin form (`/v2/`), absolute form (`http://h/v2/`) or authority form (`h:443`).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The header fields.
    pub headers: Headers,
}

/// A status line and its header fields.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
}

/// How the body after a head ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the peer closes the connection.
    UntilClose,
}

/// Reads the lines of a head up to the empty line; `None` on a clean end of
/// stream before the first byte. A TLS handshake (a client trying HTTPS
/// first, as skopeo does with `--tls-verify=false`) is `InvalidData` at once
/// rather than a wait for a line that never comes.
fn read_head_lines(reader: &mut impl BufRead) -> io::Result<Option<Vec<String>>> {
    let first = reader.fill_buf()?;
    if first.is_empty() {
        return Ok(None);
    }
    if first[0] == 0x16 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a TLS handshake on a plain HTTP port"));
    }
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.by_ref().take((MAX_HEAD - total + 1) as u64).read_until(b'\n', &mut line)?;
        total += n;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the head ended early"));
        }
        if total > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the head is too long"));
        }
        let line = String::from_utf8(line)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a head that is not UTF-8"))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if lines.is_empty() {
                // Blank lines before a request line are allowed (RFC 9112 §2.2).
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(line.to_string());
    }
}

fn parse_headers(lines: &[String]) -> io::Result<Headers> {
    lines
        .iter()
        .map(|line| {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("a header line without a colon: {line:?}"))
            })?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect::<io::Result<Vec<_>>>()
        .map(Headers)
}

impl RequestHead {
    /// Reads a request head; `None` when the client closed the connection between requests.
    pub fn read(reader: &mut impl BufRead) -> io::Result<Option<RequestHead>> {
        let Some(lines) = read_head_lines(reader)? else { return Ok(None) };
        let mut parts = lines[0].split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a bad request line: {:?}", lines[0]),
            ));
        };
        Ok(Some(RequestHead {
            method: method.to_string(),
            target: target.to_string(),
            version: version.to_string(),
            headers: parse_headers(&lines[1..])?,
        }))
    }

    /// The head as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        self.headers.write_to(&mut out);
        out
    }

    /// How the request body is framed (a request without length or chunking has none).
    pub fn framing(&self) -> Framing {
        if self.headers.get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Framing::Chunked
        } else {
            match self.headers.get("content-length").and_then(|v| v.parse().ok()) {
                Some(0) | None => Framing::Empty,
                Some(n) => Framing::Length(n),
            }
        }
    }

    /// The path of the target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Whether the connection should close after the answer.
    pub fn wants_close(&self) -> bool {
        self.version == "HTTP/1.0" || self.headers.wants_close()
    }

    /// Answers `Expect: 100-continue` so that the client sends the body a
    /// proxy is about to read (curl waits a second for it otherwise).
    pub fn continue_if_expected(&mut self, client: &mut impl Write) -> io::Result<()> {
        if self.headers.get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            self.headers.remove("expect");
            client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        Ok(())
    }
}

impl ResponseHead {
    /// Reads a response head; interim 1xx answers are read past.
    pub fn read(reader: &mut impl BufRead) -> io::Result<ResponseHead> {
        loop {
            let lines = read_head_lines(reader)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "no response before end of stream")
            })?;
            let mut parts = lines[0].splitn(3, ' ');
            let version = parts.next().unwrap_or("").to_string();
            let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("a bad status line: {:?}", lines[0]))
            })?;
            let reason = parts.next().unwrap_or("").to_string();
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            return Ok(ResponseHead { version, status, reason, headers: parse_headers(&lines[1..])? });
        }
    }

    /// The head as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.version, self.status, self.reason).into_bytes();
        self.headers.write_to(&mut out);
        out
    }

    /// How the body of this answer to a `method` request is framed.
    pub fn framing(&self, method: &str) -> Framing {
        if method == "HEAD" || self.status == 204 || self.status == 304 || (100..200).contains(&self.status) {
            Framing::Empty
        } else if self
            .headers
            .get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else {
            match self.headers.get("content-length").and_then(|v| v.parse().ok()) {
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        }
    }
}

/// Copies a body exactly as framed, chunk sizes and trailers included.
pub fn relay_body(from: &mut impl BufRead, to: &mut impl Write, framing: Framing) -> io::Result<()> {
    match framing {
        Framing::Empty => Ok(()),
        Framing::Length(n) => {
            let copied = io::copy(&mut from.take(n), to)?;
            if copied < n {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the body ended early"));
            }
            Ok(())
        }
        Framing::UntilClose => io::copy(from, to).map(drop),
        Framing::Chunked => loop {
            let mut line = Vec::new();
            from.take(4096).read_until(b'\n', &mut line)?;
            to.write_all(&line)?;
            let size = chunk_size(&line)?;
            if size == 0 {
                // Trailer fields, then the empty line.
                loop {
                    let mut trailer = Vec::new();
                    from.take(MAX_HEAD as u64).read_until(b'\n', &mut trailer)?;
                    to.write_all(&trailer)?;
                    if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                        return Ok(());
                    }
                }
            }
            relay_body(from, to, Framing::Length(size + 2))?;
        },
    }
}

/// Reads a whole body, chunked encoding removed.
pub fn read_body(from: &mut impl BufRead, framing: Framing) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => {
            from.take(n).read_to_end(&mut body)?;
            if (body.len() as u64) < n {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the body ended early"));
            }
        }
        Framing::UntilClose => {
            from.read_to_end(&mut body)?;
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            from.take(4096).read_until(b'\n', &mut line)?;
            let size = chunk_size(&line)?;
            if size == 0 {
                loop {
                    let mut trailer = Vec::new();
                    from.take(MAX_HEAD as u64).read_until(b'\n', &mut trailer)?;
                    if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            from.take(size).read_to_end(&mut body)?;
            if body.len() - start < size as usize {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a chunk ended early"));
            }
            let mut crlf = Vec::new();
            from.take(2).read_to_end(&mut crlf)?;
        },
    }
    Ok(body)
}

fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let text = std::str::from_utf8(line).unwrap_or("");
    let digits = text.split(';').next().unwrap_or("").trim();
    u64::from_str_radix(digits, 16)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("a bad chunk size line: {text:?}")))
}

/// Writes a complete answer with a `Content-Length` body.
pub fn write_response(
    to: &mut impl Write,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = ResponseHead {
        version: "HTTP/1.1".into(),
        status,
        reason: reason.into(),
        headers: Headers(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()),
    };
    head.headers.set("Content-Length", &body.len().to_string());
    let mut out = head.to_bytes();
    out.extend_from_slice(body);
    to.write_all(&out)?;
    to.flush()
}

/// The 400 a server sends before closing on a request it cannot read.
pub fn write_bad_request(to: &mut impl Write, why: &io::Error) {
    let body = format!("{why}\n");
    let _ = write_response(
        to,
        400,
        "Bad Request",
        &[("Connection", "close"), ("Content-Type", "text/plain")],
        body.as_bytes(),
    );
}

/// Decodes `%XX` escapes and `+` (a space in a query string).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `name=value` pairs of a query string or form body, decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// Sends `head` (with `Connection: close`, one request per upstream
/// connection) and the client's body from `client` to `upstream`, and
/// returns a reader positioned at the answer.
pub fn send_upstream(
    head: &RequestHead,
    client: &mut impl BufRead,
    upstream: std::net::TcpStream,
) -> io::Result<io::BufReader<std::net::TcpStream>> {
    let mut outgoing = head.clone();
    outgoing.headers.set("Connection", "close");
    let mut writer = upstream.try_clone()?;
    writer.write_all(&outgoing.to_bytes())?;
    relay_body(client, &mut writer, head.framing())?;
    writer.flush()?;
    Ok(io::BufReader::new(upstream))
}

/// Relays an answer unchanged to the client; returns whether the client
/// connection can carry another request (its end is framed).
pub fn relay_response(
    mut response: ResponseHead,
    method: &str,
    upstream: &mut impl BufRead,
    client: &mut impl Write,
) -> io::Result<bool> {
    let framing = response.framing(method);
    response.headers.remove("Connection");
    let keep_alive = framing != Framing::UntilClose;
    if !keep_alive {
        response.headers.set("Connection", "close");
    }
    client.write_all(&response.to_bytes())?;
    relay_body(upstream, client, framing)?;
    client.flush()?;
    Ok(keep_alive)
}

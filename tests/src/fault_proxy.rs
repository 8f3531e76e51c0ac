//! A small Toxiproxy-style, HTTP/1.1-aware TCP fault proxy for tests.
//!
//! Put a [`FaultProxy`] between an AWS SDK client and DynamoDB Local or moto
//! (point the client's endpoint at [`FaultProxy::url`]), then switch faults
//! from the test while it runs: a fault for every request ([`FaultProxy::set`])
//! or for the next N requests matching an operation or a body fragment
//! ([`FaultProxy::inject`]).
//!
//! Each client connection gets its own upstream connection. Requests are read
//! whole (headers, then a `Content-Length` or chunked body), a fault is
//! decided, the request is forwarded, and the whole response is read
//! (`Content-Length`, chunked, or until close) before it is delivered.
//!
//! ```ignore
//! let proxy = FaultProxy::start(dynamodb_local_addr).await?;
//! // endpoint_url(proxy.url()) in the SDK config …
//! proxy.inject(Rule::new(Fault::Throttle).target("PutItem").times(2));
//! proxy.set(Some(Fault::Latency(Duration::from_millis(50))));
//! assert_eq!(proxy.faulted(), 2);
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted (requests and responses).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;
/// Most headers in one head, and most trailer lines after a chunked body.
const MAX_HEADERS: usize = 128;
/// Most interim (1xx) responses skipped before a final response.
const MAX_INTERIM: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_CHUNK: usize = 16 * 1024;

const THROTTLE_MESSAGE: &str = "Rate of requests exceeds the allowed throughput.";

/// What happens to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then forward normally.
    Latency(Duration),
    /// Read the request, forward nothing, never answer; the client socket
    /// stays open until the client closes it or the proxy is dropped.
    Freeze,
    /// Forward nothing; close the client socket with a TCP RST.
    Reset,
    /// Forward, wait for upstream's full response (so the write took
    /// effect), then RST the client without answering.
    ResetAfterForward,
    /// Forward, then send only the first half of the response bytes and
    /// close the client connection.
    CutResponse,
    /// Answer DynamoDB's `ThrottlingException` (HTTP 400) without forwarding.
    Throttle,
    /// Like [`Fault::Throttle`] with another error type name, e.g.
    /// `ProvisionedThroughputExceededException` or `RequestLimitExceeded`.
    ThrottleWith(String),
}

/// A fault for the next `times` requests that match.
///
/// `target` matches the end of the `X-Amz-Target` header at a `.` boundary
/// (`"PutItem"` matches `DynamoDB_20120810.PutItem` but not `BatchPutItem`;
/// the full value matches too); for query/form requests without that header
/// it matches the `Action` parameter (body or query string). `body_contains`
/// matches a substring of the raw request body. `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub fault: Fault,
    pub target: Option<String>,
    pub body_contains: Option<String>,
    pub times: usize,
}

impl Rule {
    /// A rule matching any request, once.
    pub fn new(fault: Fault) -> Self {
        Rule {
            fault,
            target: None,
            body_contains: None,
            times: 1,
        }
    }

    /// Only requests for this operation (see [`Rule`]).
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Only requests whose body contains this text.
    pub fn body_contains(mut self, needle: impl Into<String>) -> Self {
        self.body_contains = Some(needle.into());
        self
    }

    /// Apply to the next `times` matching requests.
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, req: &Request) -> bool {
        if self.times == 0 {
            return false;
        }
        if let Some(want) = &self.target {
            let by_header = req
                .target
                .as_deref()
                .is_some_and(|value| suffix_at_dot(value, want));
            let by_action = req.target.is_none()
                && req
                    .action()
                    .is_some_and(|action| action == want.trim_start_matches('.'));
            if !(by_header || by_action) {
                return false;
            }
        }
        if let Some(needle) = &self.body_contains {
            if !contains(req.body(), needle.as_bytes()) {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Default)]
struct State {
    global: Option<Fault>,
    rules: Vec<Rule>,
    requests: usize,
    faulted: usize,
    /// Whether answers are kept ([`FaultProxy::record`]), and those kept.
    recording: bool,
    answers: Vec<(Option<String>, Vec<u8>)>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the request and picks its fault: the first matching rule
    /// (consuming one of its uses), else the global fault.
    fn decide(&self, req: &Request) -> Option<Fault> {
        let mut state = self.lock();
        state.requests += 1;
        let fault = match state.rules.iter().position(|rule| rule.matches(req)) {
            Some(index) => {
                let rule = &mut state.rules[index];
                rule.times -= 1;
                let fault = rule.fault.clone();
                if rule.times == 0 {
                    state.rules.remove(index);
                }
                Some(fault)
            }
            None => state.global.clone(),
        };
        if fault.is_some() {
            state.faulted += 1;
        }
        fault
    }
}

/// A running fault proxy on `127.0.0.1`. Dropping it stops accepting and
/// closes every connection it holds (frozen ones included).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and starts proxying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Ok(FaultProxy {
            addr,
            upstream,
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, for an SDK `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The fault for every request from now on (`None`: pass through).
    /// Rules from [`FaultProxy::inject`] take precedence.
    pub fn set(&self, fault: Option<Fault>) {
        self.shared.lock().global = fault;
    }

    /// Adds a rule, checked (in insertion order) before the global fault.
    /// A rule with `times == 0` is not kept.
    pub fn inject(&self, rule: Rule) {
        if rule.times > 0 {
            self.shared.lock().rules.push(rule);
        }
    }

    /// The rules not yet used up, with their remaining `times`.
    pub fn rules(&self) -> Vec<Rule> {
        self.shared.lock().rules.clone()
    }

    /// Removes every rule and the global fault.
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        state.rules.clear();
        state.global = None;
    }

    /// Keeps every answer from upstream from now on (or stops, and forgets
    /// them), for a test that counts what a service read.
    pub fn record(&self, on: bool) {
        let mut state = self.shared.lock();
        state.recording = on;
        state.answers.clear();
    }

    /// The answers kept since [`FaultProxy::record`]: each request's target
    /// (e.g. `DynamoDB_20120810.Query`) and the raw HTTP answer.
    pub fn answers(&self) -> Vec<(Option<String>, Vec<u8>)> {
        self.shared.lock().answers.clone()
    }

    /// Requests read from clients so far.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// Requests a fault (of any kind, latency included) was applied to.
    pub fn faulted(&self) -> usize {
        self.shared.lock().faulted
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connection tasks live in a JoinSet owned by the accept task:
        // dropping that task aborts them all.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, upstream, shared.clone()));
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut conn = Connection {
        client: Peer::new(client),
        upstream: None,
        upstream_addr: upstream,
    };
    // An I/O error ends this connection only; dropping the sockets closes them.
    let _ = conn.run(&shared).await;
}

struct Connection {
    client: Peer,
    upstream: Option<Peer>,
    upstream_addr: SocketAddr,
}

impl Connection {
    async fn run(&mut self, shared: &Shared) -> io::Result<()> {
        loop {
            let Some(req) = read_request(&mut self.client).await? else {
                return Ok(());
            };
            let fault = shared.decide(&req);
            match &fault {
                Some(Fault::Latency(delay)) => tokio::time::sleep(*delay).await,
                Some(Fault::Freeze) => return self.freeze().await,
                Some(Fault::Reset) => return self.reset(),
                Some(Fault::Throttle) => {
                    self.throttle("ThrottlingException", req.close).await?;
                    if req.close {
                        return self.close().await;
                    }
                    continue;
                }
                Some(Fault::ThrottleWith(name)) => {
                    self.throttle(name, req.close).await?;
                    if req.close {
                        return self.close().await;
                    }
                    continue;
                }
                None | Some(Fault::ResetAfterForward) | Some(Fault::CutResponse) => {}
            }
            let resp = self.exchange(&req).await?;
            {
                let mut state = shared.lock();
                if state.recording {
                    state.answers.push((req.target.clone(), resp.bytes.clone()));
                }
            }
            match fault {
                Some(Fault::ResetAfterForward) => return self.reset(),
                Some(Fault::CutResponse) => {
                    let half = resp.bytes.len() / 2;
                    self.client.stream.write_all(&resp.bytes[..half]).await?;
                    return self.close().await;
                }
                _ => {
                    self.client.stream.write_all(&resp.bytes).await?;
                    if resp.close || req.close {
                        return self.close().await;
                    }
                }
            }
        }
    }

    /// Keeps the client socket open and answers nothing, until the client
    /// closes it (or the task is aborted when the proxy is dropped).
    async fn freeze(&mut self) -> io::Result<()> {
        self.upstream = None;
        self.client.buf = Vec::new();
        let mut sink = [0u8; 4096];
        while self.client.stream.read(&mut sink).await? > 0 {}
        Ok(())
    }

    /// Closes the client socket with an RST (zero linger, then drop).
    fn reset(&mut self) -> io::Result<()> {
        self.upstream = None;
        self.client.stream.set_zero_linger()
        // The socket is dropped (and reset) when `serve` returns.
    }

    async fn close(&mut self) -> io::Result<()> {
        self.client.stream.shutdown().await
    }

    async fn throttle(&mut self, error_type: &str, close: bool) -> io::Result<()> {
        let body = format!(
            "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{error_type}\",\"message\":\"{THROTTLE_MESSAGE}\"}}"
        );
        let connection = if close { "Connection: close\r\n" } else { "" };
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\n\
             Content-Type: application/x-amz-json-1.0\r\n\
             x-amzn-ErrorType: {error_type}\r\n\
             x-amzn-RequestId: fault-proxy\r\n\
             {connection}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.client.stream.write_all(response.as_bytes()).await
    }

    /// Sends the request upstream and reads the whole response. A reused
    /// upstream connection that turns out to be closed is replaced once.
    async fn exchange(&mut self, req: &Request) -> io::Result<Response> {
        for _ in 0..2 {
            let reused = self.upstream.is_some();
            let upstream = match &mut self.upstream {
                Some(upstream) => upstream,
                None => self.upstream.insert(connect(self.upstream_addr).await?),
            };
            match try_exchange(upstream, req).await? {
                Some(resp) => {
                    if resp.close {
                        self.upstream = None;
                    }
                    return Ok(resp);
                }
                None => {
                    self.upstream = None;
                    if !reused {
                        break;
                    }
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upstream closed the connection without responding",
        ))
    }
}

async fn connect(addr: SocketAddr) -> io::Result<Peer> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(Peer::new(stream))
}

/// `Ok(None)`: the upstream connection was closed before any response byte
/// arrived (a stale keep-alive connection), so the request may be resent.
async fn try_exchange(upstream: &mut Peer, req: &Request) -> io::Result<Option<Response>> {
    let stale = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        )
    };
    match upstream.stream.write_all(&req.bytes).await {
        Ok(()) => {}
        Err(e) if stale(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    match read_response(upstream, req.method == "HEAD").await {
        Err(e) if stale(&e) && upstream.buf.is_empty() => Ok(None),
        other => other,
    }
}

/// A socket with a read buffer that survives across messages.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    fn new(stream: TcpStream) -> Self {
        Peer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Moves exactly `n` bytes from the stream into `out`.
    async fn take(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(eof());
            }
        }
        out.extend(self.buf.drain(..n));
        Ok(())
    }

    /// Moves one CRLF-terminated line into `out` and returns it without CRLF.
    async fn take_line(&mut self, out: &mut Vec<u8>) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = self.buf[..end].to_vec();
                out.extend(self.buf.drain(..end + 2));
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(invalid("line too long"));
            }
            if self.fill().await? == 0 {
                return Err(eof());
            }
        }
    }

    /// Moves everything until end of stream into `out`.
    async fn take_to_eof(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            if out.len() + self.buf.len() > MAX_BODY {
                return Err(invalid("body too large"));
            }
            if self.fill().await? == 0 {
                out.append(&mut self.buf);
                return Ok(());
            }
        }
    }

    /// Moves a chunked body (up to and including its trailers) into `out`.
    async fn take_chunked(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut total = 0usize;
        loop {
            let line = self.take_line(out).await?;
            let size = std::str::from_utf8(&line)
                .ok()
                .and_then(|line| line.split(';').next())
                .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
                .ok_or_else(|| invalid("bad chunk size"))?;
            total = total.saturating_add(size);
            if total > MAX_BODY {
                return Err(invalid("body too large"));
            }
            if size == 0 {
                for _ in 0..=MAX_HEADERS {
                    if self.take_line(out).await?.is_empty() {
                        return Ok(());
                    }
                }
                return Err(invalid("too many trailers"));
            }
            self.take(size + 2, out).await?;
        }
    }
}

/// One whole request, as received.
struct Request {
    bytes: Vec<u8>,
    body_start: usize,
    method: String,
    path: String,
    target: Option<String>,
    close: bool,
}

impl Request {
    fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }

    /// The `Action` parameter of a query/form request.
    fn action(&self) -> Option<String> {
        let query = self.path.split_once('?').map(|(_, q)| q.as_bytes());
        [Some(self.body()), query]
            .into_iter()
            .flatten()
            .flat_map(|params| params.split(|&b| b == b'&'))
            .find_map(|pair| pair.strip_prefix(b"Action="))
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }
}

/// One whole response, as received.
struct Response {
    bytes: Vec<u8>,
    /// Upstream closes (or closed) the connection after it.
    close: bool,
}

/// Framing facts from a head.
struct Head {
    len: usize,
    code: u16,
    method: String,
    path: String,
    target: Option<String>,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
    expect_continue: bool,
}

impl Head {
    fn from_headers(
        len: usize,
        version: Option<u8>,
        headers: &[httparse::Header<'_>],
    ) -> io::Result<Head> {
        let mut head = Head {
            len,
            code: 0,
            method: String::new(),
            path: String::new(),
            target: None,
            content_length: None,
            chunked: false,
            close: version == Some(0),
            expect_continue: false,
        };
        for header in headers {
            let value = String::from_utf8_lossy(header.value);
            let value = value.trim();
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let length = value
                    .parse::<usize>()
                    .map_err(|_| invalid("bad Content-Length"))?;
                if length > MAX_BODY {
                    return Err(invalid("body too large"));
                }
                head.content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = value.to_ascii_lowercase().ends_with("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        head.close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        head.close = false;
                    }
                }
            } else if name.eq_ignore_ascii_case("x-amz-target") {
                head.target = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("expect") {
                head.expect_continue = value.eq_ignore_ascii_case("100-continue");
            }
        }
        Ok(head)
    }
}

/// Parses a head already in `peer.buf`; `None` when more bytes are needed.
fn parse_head(buf: &[u8], request: bool) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if request {
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf).map_err(invalid)? {
            httparse::Status::Partial => Ok(None),
            httparse::Status::Complete(len) => {
                let mut head = Head::from_headers(len, parsed.version, parsed.headers)?;
                head.method = parsed.method.unwrap_or_default().to_string();
                head.path = parsed.path.unwrap_or_default().to_string();
                Ok(Some(head))
            }
        }
    } else {
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(buf).map_err(invalid)? {
            httparse::Status::Partial => Ok(None),
            httparse::Status::Complete(len) => {
                let mut head = Head::from_headers(len, parsed.version, parsed.headers)?;
                head.code = parsed.code.unwrap_or_default();
                Ok(Some(head))
            }
        }
    }
}

/// Reads until a whole head is buffered; `Ok(None)` on a clean end of
/// stream before any byte of it.
async fn read_head(peer: &mut Peer, request: bool) -> io::Result<Option<Head>> {
    loop {
        if !peer.buf.is_empty() {
            if let Some(head) = parse_head(&peer.buf, request)? {
                return Ok(Some(head));
            }
        }
        if peer.buf.len() > MAX_HEAD {
            return Err(invalid("head too large"));
        }
        if peer.fill().await? == 0 {
            return if peer.buf.is_empty() {
                Ok(None)
            } else {
                Err(eof())
            };
        }
    }
}

/// Reads one whole request from a client; `Ok(None)` when the client closed
/// the connection between requests.
async fn read_request(client: &mut Peer) -> io::Result<Option<Request>> {
    let Some(head) = read_head(client, true).await? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    client.take(head.len, &mut bytes).await?;
    let body_start = bytes.len();
    let has_body = head.chunked || head.content_length.unwrap_or(0) > 0;
    if head.expect_continue && has_body {
        // Answer the interim response here; upstream's own is skipped.
        client
            .stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await?;
    }
    if head.chunked {
        client.take_chunked(&mut bytes).await?;
    } else if let Some(length) = head.content_length {
        client.take(length, &mut bytes).await?;
    }
    Ok(Some(Request {
        bytes,
        body_start,
        method: head.method,
        path: head.path,
        target: head.target,
        close: head.close,
    }))
}

/// Reads one whole final response (interim 1xx responses are dropped).
async fn read_response(upstream: &mut Peer, head_request: bool) -> io::Result<Option<Response>> {
    for _ in 0..MAX_INTERIM {
        let Some(head) = read_head(upstream, false).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        upstream.take(head.len, &mut bytes).await?;
        if (100..200).contains(&head.code) && head.code != 101 {
            continue;
        }
        let mut close = head.close;
        let no_body =
            head_request || head.code == 204 || head.code == 304 || (100..200).contains(&head.code);
        if no_body {
        } else if head.chunked {
            upstream.take_chunked(&mut bytes).await?;
        } else if let Some(length) = head.content_length {
            upstream.take(length, &mut bytes).await?;
        } else {
            upstream.take_to_eof(&mut bytes).await?;
            close = true;
        }
        return Ok(Some(Response { bytes, close }));
    }
    Err(invalid("too many interim responses"))
}

/// `value` ends with `want` at a `.` boundary (or equals it).
fn suffix_at_dot(value: &str, want: &str) -> bool {
    value
        .strip_suffix(want)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.') || want.starts_with('.'))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || find(haystack, needle).is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-message",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A keep-alive HTTP/1.1 server answering every request with one fixed
    /// 200 response, counting connections and requests.
    struct Upstream {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
        task: JoinHandle<()>,
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn body() -> String {
        format!("{{\"ok\":true,\"pad\":\"{}\"}}", "x".repeat(2000))
    }

    async fn upstream() -> io::Result<Upstream> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (conns, reqs) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let reqs = reqs.clone();
                tasks.spawn(async move {
                    let mut peer = Peer::new(stream);
                    let body = body();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    while let Ok(Some(_)) = read_request(&mut peer).await {
                        reqs.fetch_add(1, Ordering::SeqCst);
                        if peer.stream.write_all(response.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(Upstream {
            addr,
            connections,
            requests,
            task,
        })
    }

    fn client() -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(300))
            .build()
    }

    async fn setup() -> Result<(Upstream, FaultProxy, reqwest::Client), Box<dyn std::error::Error>>
    {
        let upstream = upstream().await?;
        let proxy = FaultProxy::start(upstream.addr).await?;
        Ok((upstream, proxy, client()?))
    }

    async fn dynamo(
        client: &reqwest::Client,
        proxy: &FaultProxy,
        operation: &str,
    ) -> reqwest::Result<reqwest::Response> {
        client
            .post(proxy.url())
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Target", format!("DynamoDB_20120810.{operation}"))
            .body(r#"{"TableName":"t"}"#)
            .send()
            .await
    }

    /// The error was caused by a TCP reset.
    fn is_reset(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut source = Some(err);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<io::Error>() {
                if io.kind() == io::ErrorKind::ConnectionReset {
                    return true;
                }
            }
            source = err.source();
        }
        false
    }

    #[tokio::test]
    async fn passes_through_two_requests_on_one_connection() -> TestResult {
        let (upstream, proxy, client) = setup().await?;
        for _ in 0..2 {
            let resp = dynamo(&client, &proxy, "GetItem").await?;
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.text().await?, body());
        }
        assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 2);
        assert_eq!((proxy.requests(), proxy.faulted()), (2, 0));
        Ok(())
    }

    #[tokio::test]
    async fn freeze_times_out_the_client() -> TestResult {
        let (upstream, proxy, client) = setup().await?;
        proxy.set(Some(Fault::Freeze));
        let err = dynamo(&client, &proxy, "GetItem")
            .await
            .err()
            .ok_or("answered")?;
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
        assert_eq!(proxy.faulted(), 1);
        // Other connections are not blocked by the frozen one.
        proxy.clear();
        let resp = dynamo(&client, &proxy, "GetItem").await?;
        assert_eq!(resp.status(), 200);
        Ok(())
    }

    #[tokio::test]
    async fn dropping_the_proxy_releases_frozen_connections() -> TestResult {
        let (_upstream, proxy, _client) = setup().await?;
        proxy.set(Some(Fault::Freeze));
        let mut raw = TcpStream::connect(proxy.addr()).await?;
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut buf = [0u8; 64];
        let frozen = tokio::time::timeout(Duration::from_millis(200), raw.read(&mut buf)).await;
        assert!(frozen.is_err(), "answered while frozen");
        assert_eq!(proxy.requests(), 1);
        drop(proxy);
        let released = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf)).await?;
        assert!(matches!(released, Ok(0) | Err(_)), "{released:?}");
        Ok(())
    }

    #[tokio::test]
    async fn reset_is_a_connection_error() -> TestResult {
        let (upstream, proxy, client) = setup().await?;
        proxy.set(Some(Fault::Reset));
        let err = dynamo(&client, &proxy, "GetItem")
            .await
            .err()
            .ok_or("answered")?;
        assert!(is_reset(&err), "{err:?}");
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
        Ok(())
    }

    #[tokio::test]
    async fn reset_after_forward_reaches_upstream() -> TestResult {
        let (upstream, proxy, client) = setup().await?;
        proxy.set(Some(Fault::ResetAfterForward));
        let err = dynamo(&client, &proxy, "PutItem")
            .await
            .err()
            .ok_or("answered")?;
        assert!(is_reset(&err), "{err:?}");
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 1);
        Ok(())
    }

    #[tokio::test]
    async fn cut_response_is_a_body_error() -> TestResult {
        let (_upstream, proxy, client) = setup().await?;
        proxy.set(Some(Fault::CutResponse));
        let resp = dynamo(&client, &proxy, "GetItem").await?;
        assert_eq!(resp.status(), 200);
        let err = resp.bytes().await.err().ok_or("whole body")?;
        assert!(err.is_body() || err.is_decode(), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn throttle_answers_400_without_forwarding() -> TestResult {
        let (upstream, proxy, client) = setup().await?;
        proxy.set(Some(Fault::Throttle));
        for _ in 0..2 {
            let resp = dynamo(&client, &proxy, "PutItem").await?;
            assert_eq!(resp.status(), 400);
            assert_eq!(resp.headers()["x-amzn-ErrorType"], "ThrottlingException");
            assert!(resp.text().await?.contains("v20120810#ThrottlingException"));
        }
        proxy.set(Some(Fault::ThrottleWith(
            "ProvisionedThroughputExceededException".into(),
        )));
        let resp = dynamo(&client, &proxy, "PutItem").await?;
        assert_eq!(
            resp.headers()["x-amzn-ErrorType"],
            "ProvisionedThroughputExceededException"
        );
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
        assert_eq!(proxy.faulted(), 3);
        Ok(())
    }

    #[tokio::test]
    async fn rule_applies_once_to_its_target_only() -> TestResult {
        let (upstream, proxy, client) = setup().await?;
        proxy.inject(Rule::new(Fault::Throttle).target("PutItem"));
        proxy.inject(Rule::new(Fault::Throttle).times(0));
        assert_eq!(proxy.rules().len(), 1);
        let statuses = [
            ("GetItem", 200),
            ("BatchPutItem", 200),
            ("PutItem", 400),
            ("PutItem", 200),
        ];
        for (operation, status) in statuses {
            let resp = dynamo(&client, &proxy, operation).await?;
            assert_eq!(resp.status(), status, "{operation}");
            resp.bytes().await?;
        }
        assert!(proxy.rules().is_empty());
        assert_eq!((proxy.requests(), proxy.faulted()), (4, 1));
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 3);
        Ok(())
    }

    #[tokio::test]
    async fn latency_delays_and_body_rule_matches() -> TestResult {
        let (_upstream, proxy, client) = setup().await?;
        proxy.inject(
            Rule::new(Fault::Latency(Duration::from_millis(150)))
                .body_contains("\"TableName\":\"t\"")
                .times(2),
        );
        let started = Instant::now();
        let resp = dynamo(&client, &proxy, "GetItem").await?;
        assert_eq!(resp.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(proxy.rules()[0].times, 1);
        Ok(())
    }

    #[test]
    fn target_and_action_matching() {
        assert!(suffix_at_dot("DynamoDB_20120810.PutItem", "PutItem"));
        assert!(suffix_at_dot(
            "DynamoDB_20120810.PutItem",
            "DynamoDB_20120810.PutItem"
        ));
        assert!(!suffix_at_dot("DynamoDB_20120810.BatchPutItem", "PutItem"));
        let req = Request {
            bytes: b"Action=SendMessage&Version=2012-11-05".to_vec(),
            body_start: 0,
            method: "POST".into(),
            path: "/".into(),
            target: None,
            close: false,
        };
        assert!(Rule::new(Fault::Reset).target("SendMessage").matches(&req));
        assert!(!Rule::new(Fault::Reset)
            .target("ReceiveMessage")
            .matches(&req));
    }
}

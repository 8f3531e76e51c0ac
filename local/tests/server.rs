//! The local server's own defences, against the real binary over loopback:
//! it listens on loopback only unless told otherwise (and then warns), it
//! answers only requests addressed to its own name (DNS rebinding), and its
//! demo sign-in's token is not cached, sniffed or sent on as a Referer. On
//! DynamoDB, it is bounded as the functions are: a frozen DynamoDB costs a
//! request the functions' AWS operation bound, then a 503.

use miro_connect::config::DEFAULT_AWS_OPERATION_TIMEOUT_MS;
use miro_connect::seal::Sealer;
use miro_connect_tests::fault_proxy::{Fault, FaultProxy};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_miro-connect-local");
const WAIT: Duration = Duration::from_secs(60);

/// A running server; killed when dropped.
struct Server {
    child: Child,
    /// The address it says it is listening on, e.g. `127.0.0.1:40123`.
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(addr: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    // Hermetic: the in-memory store and the built-in emulator, whatever the
    // test harness exported.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("MIRO_CONNECT_LOCAL_ADDR", addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Forwards each line of `from` to a channel, so that the pipe never fills.
fn lines(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn start(addr: &str, env: &[(&str, &str)]) -> Server {
    let mut child = command(addr, env)
        .spawn()
        .expect("spawn miro-connect-local");
    let stdout = lines(child.stdout.take().expect("stdout"));
    let stderr = lines(child.stderr.take().expect("stderr"));
    let mut server = Server {
        child,
        addr: String::new(),
        stderr,
    };
    loop {
        let line = match stdout.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => {
                let errors: Vec<String> = server.stderr.try_iter().collect();
                panic!("the server did not start; stderr: {errors:?}");
            }
        };
        if let Some(rest) = line.strip_prefix("Listening on ") {
            server.addr = rest.split(';').next().unwrap_or_default().to_string();
            break;
        }
    }
    // Keep draining stdout (the JSON logs).
    std::thread::spawn(move || for _ in stdout {});
    server
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().expect("a port")
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// One HTTP/1.1 request over loopback to `connect`, with exactly the `Host`
/// header given (none when `None`).
fn request(connect: &str, method: &str, path: &str, host: Option<&str>, body: &str) -> Answer {
    request_with(connect, method, path, host, &[], body)
}

/// The same, with more headers.
fn request_with(
    connect: &str,
    method: &str,
    path: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(connect).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if let Some(host) = host {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(head.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    // Bodies here are small; a chunked one is one chunk (size line, data, 0).
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut parts = body.split("\r\n");
        let _size = parts.next();
        parts.next().unwrap_or_default().to_string()
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn assert_refused(answer: &Answer, what: &str) {
    assert!(
        answer.status == 421 || answer.status == 403,
        "{what}: {} {}",
        answer.status,
        answer.body
    );
    let json = answer.json();
    assert_eq!(json["error"], "host_not_allowed", "{what}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}"
    );
    assert!(!answer.body.contains("token"), "{what}: {}", answer.body);
}

#[test]
fn it_answers_only_to_its_own_address() {
    let server = start(
        "127.0.0.1:0",
        &[("PUBLIC_URL", "http://demo.miro-connect.test:8080")],
    );
    let addr = server.addr.clone();
    let port = port(&addr);

    for host in [
        addr.clone(),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        "demo.miro-connect.test:8080".to_string(),
    ] {
        let answer = request(&addr, "GET", "/", Some(&host), "");
        assert_eq!(answer.status, 200, "Host: {host}");
    }

    // A name rebound to 127.0.0.1 reaches the socket, never the server.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!(
            "127.0.0.1:{}",
            port.parse::<u16>().expect("port").wrapping_add(1)
        ),
        "127.0.0.1".to_string(),
        "demo.miro-connect.test".to_string(),
        format!("localhost.evil.example:{port}"),
    ] {
        for (method, path, body) in [
            ("GET", "/", ""),
            ("POST", "/demo/sign-in", r#"{"user":"demo-alice"}"#),
            ("GET", "/miro/connection", ""),
            ("GET", "/_miro/_emulator/stats", ""),
            ("GET", "/no/such/route", ""),
        ] {
            let answer = request(&addr, method, path, Some(&host), body);
            assert_refused(&answer, &format!("{method} {path} with Host: {host}"));
        }
    }

    // No Host at all (HTTP/1.1 requires one): refused too.
    let answer = request(&addr, "GET", "/", None, "");
    assert!(
        (400..500).contains(&answer.status),
        "no Host: {}",
        answer.status
    );
}

#[test]
fn the_demo_sign_in_is_not_cached_sniffed_or_referred_on() {
    let server = start("127.0.0.1:0", &[]);
    let addr = server.addr.clone();
    let answer = request(
        &addr,
        "POST",
        "/demo/sign-in",
        Some(&addr),
        r#"{"user":"demo-alice"}"#,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json()["token"]
        .as_str()
        .is_some_and(|t| t.len() > 20));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));

    // A refused sign-in says the same.
    let answer = request(&addr, "POST", "/demo/sign-in", Some(&addr), "{}");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

#[test]
fn it_serves_the_browser_client_as_javascript() {
    let server = start("127.0.0.1:0", &[]);
    let addr = server.addr.clone();
    let answer = request(&addr, "GET", "/web/miro-connect.js", Some(&addr), "");
    assert_eq!(answer.status, 200);
    assert!(answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/javascript")));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert!(answer.body.contains("export function createClient"));
}

#[test]
fn it_refuses_a_non_loopback_address_unless_allowed() {
    let out = command("0.0.0.0:0", &[])
        .output()
        .expect("run miro-connect-local");
    assert!(!out.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen"), "{stderr}");
    assert!(
        stderr.contains("MIRO_CONNECT_LOCAL_ALLOW_REMOTE=1"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Listening on"),
        "it must not listen"
    );

    // Only exactly "1" allows it.
    let out = command("0.0.0.0:0", &[("MIRO_CONNECT_LOCAL_ALLOW_REMOTE", "yes")])
        .output()
        .expect("run miro-connect-local");
    assert!(!out.status.success(), "it must not start");
}

#[test]
fn allowed_to_listen_beyond_loopback_it_warns_and_still_checks_the_host() {
    let server = start("0.0.0.0:0", &[("MIRO_CONNECT_LOCAL_ALLOW_REMOTE", "1")]);
    let port = port(&server.addr).to_string();
    let loopback = format!("127.0.0.1:{port}");
    let warning = server
        .stderr
        .recv_timeout(WAIT)
        .expect("a warning on stderr");
    assert!(warning.contains("WARNING"), "{warning}");
    assert!(warning.contains("JWT for ANY user name"), "{warning}");

    let answer = request(&loopback, "GET", "/", Some(&loopback), "");
    assert_eq!(answer.status, 200);
    let answer = request(
        &loopback,
        "GET",
        "/",
        Some(&format!("evil.example:{port}")),
        "",
    );
    assert_refused(&answer, "a foreign Host on a wildcard bind");
}

/// Room for scheduling on a loaded machine on top of the configured bound.
const SLACK: Duration = Duration::from_secs(3);

/// The address of a server URL such as `http://127.0.0.1:8000`.
fn socket_addr(url: &str) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("not a server address: {url}"))
}

#[test]
fn on_a_frozen_dynamodb_it_answers_503_within_the_functions_aws_bound() {
    let dynamodb = std::env::var("MIRO_CONNECT_TEST_DYNAMODB").expect(
        "MIRO_CONNECT_TEST_DYNAMODB is not set: run the tests with tests/run, which starts DynamoDB Local",
    );
    // The proxy runs on its own threads while this test blocks on sockets.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the proxy");
    let proxy = runtime
        .block_on(FaultProxy::start(socket_addr(&dynamodb)))
        .expect("fault proxy");
    let keys = Sealer::generate_key_ring_entry("local");
    let table = format!("miro-connect-local-{}", uuid::Uuid::new_v4());
    // No AWS bound is set: the server must take the functions' defaults.
    let server = start(
        "127.0.0.1:0",
        &[
            ("TABLE_NAME", &table),
            ("TOKEN_SEALING_KEYS", keys.expose()),
            ("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let addr = server.addr.clone();
    let signed_in = request(
        &addr,
        "POST",
        "/demo/sign-in",
        Some(&addr),
        r#"{"user":"frozen-fay"}"#,
    );
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let bearer = format!(
        "Bearer {}",
        signed_in.json()["token"].as_str().expect("a token")
    );
    let start_flow = || {
        let started = Instant::now();
        let answer = request_with(
            &addr,
            "POST",
            "/miro/authorizations",
            Some(&addr),
            &[("Authorization", &bearer)],
            "",
        );
        (answer, started.elapsed())
    };

    // Healthy first: the server stores in that table, through the proxy.
    let (healthy, _) = start_flow();
    assert_eq!(healthy.status, 201, "{}", healthy.body);
    let before = proxy.requests();
    assert!(before >= 2, "the table and the flow went through the proxy");

    proxy.set(Some(Fault::Freeze));
    let (frozen, took) = start_flow();
    assert_eq!(frozen.status, 503, "{}", frozen.body);
    assert_eq!(
        frozen.json()["error"],
        "storage_unavailable",
        "{}",
        frozen.body
    );
    assert!(
        frozen
            .header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "a Retry-After in seconds: {:?}",
        frozen.headers
    );
    assert!(proxy.faulted() >= 1, "the call met the frozen DynamoDB");
    // Far inside the request's own budget (20 s, which would answer
    // `request_timeout`): only the AWS bound can have ended it.
    let bound = Duration::from_millis(DEFAULT_AWS_OPERATION_TIMEOUT_MS) + SLACK;
    assert!(took < bound, "answered after {took:?} (bound {bound:?})");
}

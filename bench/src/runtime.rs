//! A small Lambda Runtime API, one per function process, so that both sides
//! run exactly as under Lambda: the process asks for the next event, answers
//! it, asks again. It records when the process first asks (init is over).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Mutex};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What to run: a program and its arguments, and the function's timeout
/// (each invocation's deadline).
#[derive(Clone)]
pub struct Spawn {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl Spawn {
    pub fn program(program: PathBuf, args: Vec<String>) -> Self {
        Self {
            program,
            args,
            timeout: Duration::from_secs(60),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What a function process wrote on stdout (its logs): the first lines, and
/// how many bytes in all (CloudWatch Logs bills the bytes).
#[derive(Default)]
pub struct Output {
    pub lines: Vec<String>,
    pub bytes: usize,
    /// The first warnings and errors, wherever they fall.
    pub notable: Vec<String>,
}

/// Lines kept per process: enough for a cold start's and a few requests'.
const KEPT_LINES: usize = 200;

struct Shared {
    events: Mutex<mpsc::Receiver<(String, Value)>>,
    answers: mpsc::Sender<(String, Instant, Value)>,
    ready: watch::Sender<Option<Instant>>,
    timeout: Duration,
}

pub struct Instance {
    child: tokio::process::Child,
    pid: u32,
    started: Instant,
    /// The same moment on the wall clock, to place the process's own
    /// timestamps (its `main`) in its init.
    started_unix: std::time::SystemTime,
    events: mpsc::Sender<(String, Value)>,
    answers: mpsc::Receiver<(String, Instant, Value)>,
    ready: watch::Receiver<Option<Instant>>,
    server: tokio::task::JoinHandle<()>,
    output: Arc<std::sync::Mutex<Output>>,
    timeout: Duration,
}

impl Instance {
    pub async fn start(spawn: &Spawn, vars: &[(String, String)]) -> Result<Self, Failure> {
        let (events_tx, events_rx) = mpsc::channel(1);
        let (answers_tx, answers_rx) = mpsc::channel(1);
        let (ready_tx, ready_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            events: Mutex::new(events_rx),
            answers: answers_tx,
            ready: ready_tx,
            timeout: spawn.timeout,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(answer))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let (started, started_unix) = (Instant::now(), std::time::SystemTime::now());
        let mut child = tokio::process::Command::new(&spawn.program)
            .args(&spawn.args)
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
                ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("RUST_LOG", "info"),
            ])
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("no pid")?;
        let output = Arc::new(std::sync::Mutex::new(Output::default()));
        if let Some(stdout) = child.stdout.take() {
            let output = output.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut o) = output.lock() {
                        o.bytes += line.len() + 1;
                        let notable = line.contains(r#""level":"WARN""#)
                            || line.contains(r#""level":"ERROR""#);
                        if notable && o.notable.len() < KEPT_LINES {
                            o.notable.push(line.clone());
                        }
                        if o.lines.len() < KEPT_LINES {
                            o.lines.push(line);
                        }
                    }
                }
            });
        }
        Ok(Self {
            child,
            pid,
            started,
            started_unix,
            events: events_tx,
            answers: answers_rx,
            ready: ready_rx,
            server,
            output,
            timeout: spawn.timeout,
        })
    }

    /// Bytes written to stdout so far, and the first lines.
    pub fn output(&self) -> (usize, Vec<String>) {
        self.output
            .lock()
            .map(|o| (o.bytes, o.lines.clone()))
            .unwrap_or_default()
    }

    /// The first warnings and errors the process logged.
    pub fn notable(&self) -> Vec<String> {
        self.output
            .lock()
            .map(|o| o.notable.clone())
            .unwrap_or_default()
    }

    /// From the process's start to a moment it stamped (epoch µs), in ms.
    pub fn since_start_ms(&self, unix_us: u64) -> f64 {
        let at = std::time::UNIX_EPOCH + Duration::from_micros(unix_us);
        at.duration_since(self.started_unix)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or_default()
    }

    /// How long the process took to ask for its first event.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<Duration, Failure> {
        let ready = tokio::time::timeout(limit, self.ready.wait_for(Option::is_some)).await??;
        let at = ready.ok_or("not ready")?;
        Ok(at - self.started)
    }

    /// One invocation: the time until the answer, and its `statusCode`.
    pub async fn invoke(&mut self, event: Value) -> Result<(Duration, u16), Failure> {
        let (latency, body) = self.invoke_for(event).await?;
        let status = body
            .get("statusCode")
            .and_then(Value::as_u64)
            .unwrap_or(200) as u16;
        Ok((latency, status))
    }

    /// One invocation: the time until the answer, and the answer.
    pub async fn invoke_for(&mut self, event: Value) -> Result<(Duration, Value), Failure> {
        let id = uuid::Uuid::new_v4().to_string();
        let sent = Instant::now();
        self.events.send((id.clone(), event)).await?;
        let (answered, at, body) =
            tokio::time::timeout(self.timeout + Duration::from_secs(5), self.answers.recv())
                .await?
                .ok_or("the function process went away")?;
        if answered != id {
            return Err("answer to another invocation".into());
        }
        Ok((at - sent, body))
    }

    /// CPU time so far, every thread, in milliseconds (schedstat is in ns).
    pub fn cpu_ms(&self) -> f64 {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .into_iter()
            .flatten()
            .flatten();
        tasks
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<f64>().ok())
            })
            .sum::<f64>()
            / 1e6
    }

    /// Peak resident set so far (VmHWM), in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<f64>().ok())
                })
            })
            .map(|kb| kb / 1024.0)
            .unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    // The first ask marks the end of init.
    shared.ready.send_if_modified(|ready| {
        let first = ready.is_none();
        ready.get_or_insert_with(Instant::now);
        first
    });
    let event = shared.events.lock().await.recv().await;
    let Some((id, event)) = event else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + shared.timeout.as_millis())
        .unwrap_or_default();
    for (k, v) in [
        ("lambda-runtime-aws-request-id", id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".into(),
        ),
        ("content-type", "application/json".into()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    (StatusCode::OK, headers, event.to_string()).into_response()
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = shared.answers.send((id, at, value)).await;
    StatusCode::ACCEPTED
}

async fn failed(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> StatusCode {
    let _ = shared
        .answers
        .send((id, Instant::now(), serde_json::json!({ "statusCode": 599 })))
        .await;
    StatusCode::ACCEPTED
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

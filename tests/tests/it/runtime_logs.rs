//! Logs as a deployment writes them: the real `auth-callback` Lambda binary
//! under a Lambda Runtime API of the test's own, with `RUST_LOG=trace`, runs
//! a real flow (Miro's redirect, then the completion that exchanges the
//! code). At trace level the runtime, hyper and the AWS SDK would log whole
//! events and requests; whatever `RUST_LOG` says, none of them may write a
//! code, a state, a completion id, a flow secret, the caller's JWT, a
//! cookie, a token, the client secret or a sealing key. And at the level a
//! deployment logs at (`RUST_LOG` unset), the keep-alive's report reaches
//! its log.

use crate::support::{query_value, TestApp, REDIRECT_URI, RETURN_TO};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use miro_connect::routes::Function;
use serde_json::{json, Value};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Mutex};

/// Bound on every wait for the function: its first ask, each answer.
const WAIT: Duration = Duration::from_secs(60);
/// Bound on building the binary (a cold build on a busy machine).
const BUILD: Duration = Duration::from_secs(1200);

/// What the function posted for an invocation.
#[derive(Debug)]
enum Answer {
    Response(Value),
    Error(String),
}

struct RuntimeApi {
    function: Function,
    events: Mutex<mpsc::Receiver<(String, Value)>>,
    answers: mpsc::Sender<(String, Answer)>,
}

/// A minimal Lambda Runtime API on loopback: hands out queued events, one
/// per `next`, and records the answers.
struct Runtime {
    addr: String,
    events: mpsc::Sender<(String, Value)>,
    answers: mpsc::Receiver<(String, Answer)>,
    server: tokio::task::JoinHandle<()>,
}

impl Runtime {
    async fn start(function: Function) -> Self {
        let (events_tx, events_rx) = mpsc::channel(4);
        let (answers_tx, answers_rx) = mpsc::channel(4);
        let api = Arc::new(RuntimeApi {
            function,
            events: Mutex::new(events_rx),
            answers: answers_tx,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the runtime API");
        let addr = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            events: events_tx,
            answers: answers_rx,
            server,
        }
    }

    /// One invocation: the function's answer, as API Gateway would get it.
    async fn invoke(&mut self, event: Value) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        self.events
            .send((id.clone(), event))
            .await
            .expect("queue the event");
        let (answered, answer) = tokio::time::timeout(WAIT, self.answers.recv())
            .await
            .expect("the function answered in time")
            .expect("the runtime API is up");
        assert_eq!(answered, id, "an answer to another invocation");
        match answer {
            Answer::Response(value) => value,
            Answer::Error(e) => panic!("the invocation failed: {e}"),
        }
    }
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    let event = api.events.lock().await.recv().await;
    let Some((id, event)) = event else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + WAIT.as_millis())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{}",
                api.function
            ),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".into(),
        ),
        ("content-type", "application/json".into()),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    }
    (StatusCode::OK, headers, event.to_string()).into_response()
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = api.answers.send((id, Answer::Response(value))).await;
    StatusCode::ACCEPTED
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let text = String::from_utf8_lossy(&body).into_owned();
    let _ = api.answers.send((id, Answer::Error(text))).await;
    StatusCode::ACCEPTED
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (v2) event, as API Gateway sends it to a function
/// behind the JWT authorizer (`sub`: the verified user, if any).
fn http_api_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    sub: Option<&str>,
) -> Value {
    let mut all = serde_json::Map::new();
    for (name, value) in headers {
        all.insert(name.to_string(), Value::String(value.to_string()));
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": "runtime-logs",
        "domainName": "connect.example.test",
        "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "test" },
        "requestId": uuid::Uuid::new_v4().to_string(),
        "routeKey": format!("{method} {path}"),
        "stage": "$default",
        "timeEpoch": now_ms,
    });
    if let Some(sub) = sub {
        context["authorizer"] = json!({ "jwt": { "claims": { "sub": sub }, "scopes": null } });
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "cookies": headers
            .iter()
            .filter(|(name, _)| *name == "cookie")
            .map(|(_, value)| *value)
            .collect::<Vec<_>>(),
        "headers": all,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false,
    })
}

/// Reads a pipe to its end into a buffer the test can look at any time.
fn drain(
    mut from: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    into: Arc<std::sync::Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = from.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            into.lock().expect("lock").extend_from_slice(&chunk[..n]);
        }
    })
}

/// The real binary of `function`, built as the tree is now.
async fn function_binary(function: Function) -> std::path::PathBuf {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut build = tokio::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", function.name()])
        .current_dir(&workspace)
        .kill_on_drop(true)
        .spawn()
        .expect("cargo build");
    let built = tokio::time::timeout(BUILD, build.wait())
        .await
        .unwrap_or_else(|_| panic!("{function} built in time"))
        .expect("cargo build ran");
    assert!(built.success(), "building {function} failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    let binary = target.join("debug").join(function.name());
    assert!(binary.exists(), "{}", binary.display());
    binary
}

/// A function process under a [`Runtime`]; killed when dropped.
struct Running {
    child: tokio::process::Child,
    /// Its stdout and stderr, as read so far.
    output: Arc<std::sync::Mutex<Vec<u8>>>,
    readers: [tokio::task::JoinHandle<()>; 2],
}

impl Running {
    /// `binary` as Lambda runs `function`: `env`, then the runtime's own variables.
    fn spawn(
        binary: &std::path::Path,
        function: Function,
        env: Vec<(String, String)>,
        runtime: &Runtime,
    ) -> Self {
        let name = function.name();
        let log_group = format!("/aws/lambda/{name}");
        let output = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut child = tokio::process::Command::new(binary)
            .env_clear()
            .envs(env)
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", runtime.addr.as_str()),
                ("AWS_LAMBDA_FUNCTION_NAME", name),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
                (
                    "AWS_LAMBDA_LOG_STREAM_NAME",
                    "2025/01/01/[1]00000000000000000000000000000000",
                ),
                ("AWS_LAMBDA_LOG_GROUP_NAME", log_group.as_str()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let readers = [
            drain(child.stdout.take().expect("stdout"), output.clone()),
            drain(child.stderr.take().expect("stderr"), output.clone()),
        ];
        Self {
            child,
            output,
            readers,
        }
    }

    /// Stops the function (it is waiting for its next event) and the
    /// runtime; all the function wrote.
    async fn stop(mut self, runtime: Runtime) -> String {
        self.child.start_kill().expect("kill the function");
        let _ = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the function stopped in time");
        for reader in self.readers {
            let _ = tokio::time::timeout(WAIT, reader)
                .await
                .expect("its output was read to the end");
        }
        runtime.server.abort();
        let logs = String::from_utf8_lossy(&self.output.lock().expect("lock")).into_owned();
        logs
    }
}

fn status_of(answer: &Value) -> u64 {
    answer["statusCode"].as_u64().unwrap_or_default()
}

fn header<'a>(answer: &'a Value, name: &str) -> Option<&'a str> {
    answer["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

#[tokio::test]
async fn trace_logging_through_the_lambda_runtime_leaks_no_secret() {
    let binary = function_binary(Function::AuthCallback).await;
    let app = TestApp::new().await;
    let mut runtime = Runtime::start(Function::AuthCallback).await;
    let mut env = app.lambda_env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let function = Running::spawn(&binary, Function::AuthCallback, env, &runtime);

    // A real flow: started in-process, consent at the emulator, then Miro's
    // redirect and the completion through the binary.
    let user = "trace-tess";
    let started = app.start(user, None).await;
    assert_eq!(started.status.as_u16(), 201, "{}", started.body);
    let authorize_url = started.json()["authorize_url"]
        .as_str()
        .expect("authorize_url")
        .to_string();
    let flow_secret = app.flow_secret(user).expect("a flow secret");
    let query = app.consent(&authorize_url, true).await;
    let from_miro = url::Url::parse(&format!("{REDIRECT_URI}?{query}")).expect("redirect");
    let code = query_value(&from_miro, "code").expect("code");
    let state = query_value(&from_miro, "state").expect("state");

    // Headers a browser and an app send, which must not be logged either.
    let jwt = format!(
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
        miro_connect::secret::Secret::random().expose(),
        miro_connect::secret::Secret::random().expose()
    );
    let bearer = format!("Bearer {jwt}");
    let cookie_value = miro_connect::secret::Secret::random().expose().to_string();
    let cookie = format!("app_session={cookie_value}");

    let back = runtime
        .invoke(http_api_event(
            "GET",
            "/miro/callback",
            &query,
            &[
                ("host", "connect.example.test"),
                ("cookie", &cookie),
                ("user-agent", "Mozilla/5.0 (runtime-logs)"),
            ],
            None,
            None,
        ))
        .await;
    assert_eq!(status_of(&back), 303, "{back}");
    let to = url::Url::parse(header(&back, "location").expect("a Location")).expect("Location");
    assert!(to.as_str().starts_with(RETURN_TO), "{to}");
    let completion = query_value(&to, "miro_authorization").expect("a completion id");

    let body = json!({ "completion": completion, "flow_secret": flow_secret }).to_string();
    let done = runtime
        .invoke(http_api_event(
            "POST",
            "/miro/authorizations/complete",
            "",
            &[
                ("host", "connect.example.test"),
                ("authorization", &bearer),
                ("content-type", "application/json"),
                ("cookie", &cookie),
                ("origin", "https://app.example.test"),
            ],
            Some(&body),
            Some(user),
        ))
        .await;
    assert_eq!(status_of(&done), 200, "{done}");
    let connection = app.connection(user).await.expect("connected by the binary");
    assert!(app
        .emulator
        .access_token_works(connection.access_token.expose()));

    let logs = function.stop(runtime).await;

    assert!(
        logs.lines().any(|l| l.trim_start().starts_with('{')),
        "the function's log lines are captured: {logs:?}"
    );
    // Under Lambda its metrics go to stdout too (shared/src/metrics.rs), and
    // are held to the same rule.
    assert!(
        logs.lines()
            .any(|l| l.contains(r#""Namespace":"MiroConnect""#)),
        "the function writes its metric lines: {logs:?}"
    );
    let keys = app.sealing_keys.expose().to_string();
    let mut secrets: Vec<(&str, String)> = vec![
        ("the code", code),
        ("the state", state),
        ("the completion id", completion),
        ("the flow secret", flow_secret),
        ("the bearer JWT", jwt),
        ("the cookie", cookie_value),
        (
            "the client secret",
            app.emulator.config().client_secret.clone(),
        ),
        ("the sealing key ring", keys.clone()),
    ];
    for entry in keys.split(',') {
        let (_, key) = entry.split_once(':').expect("id:key");
        secrets.push(("a sealing key", key.to_string()));
    }
    let issued = app.emulator.issued_secrets();
    assert!(
        issued.len() >= 3,
        "a code, an access and a refresh token were issued: {}",
        issued.len()
    );
    for token in issued {
        secrets.push(("a code or token Miro issued", token));
    }
    for (what, secret) in &secrets {
        assert!(!secret.is_empty(), "{what} is known");
        assert!(
            !logs.contains(secret.as_str()),
            "{what} reached the function's output at RUST_LOG=trace"
        );
    }
}

#[tokio::test]
async fn the_keep_alive_report_reaches_its_log_at_the_deployed_level() {
    let binary = function_binary(Function::KeepAlive).await;
    let app = TestApp::new().await;
    let mut runtime = Runtime::start(Function::KeepAlive).await;
    // As deployed: the template sets no RUST_LOG.
    let env: Vec<(String, String)> = app
        .lambda_env()
        .into_iter()
        .filter(|(k, _)| k != "RUST_LOG")
        .collect();
    let function = Running::spawn(&binary, Function::KeepAlive, env, &runtime);

    // The scheduler's event; the fresh table has nothing due.
    let report = runtime
        .invoke(json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event" }))
        .await;
    assert_eq!(report["due"], 0, "{report}");
    let logs = function.stop(runtime).await;

    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no `{message}` line in the keep-alive's log: {logs}"))
    };
    let done = line("sweep done");
    assert_eq!(done["level"], "INFO", "{done}");
    assert_eq!(done["fields"]["due"], 0, "{done}");
    assert_eq!(done["fields"]["errors"], 0, "{done}");
    // The shared crate's line at init, through the same filter.
    assert_eq!(line("cold start")["level"], "INFO");
}

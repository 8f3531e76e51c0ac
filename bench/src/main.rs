//! `bench/run`: the functions against their peer, side by side, on this machine.
//!
//! Both sides run as real processes under one small Lambda Runtime API of the
//! benchmark's own ([`runtime`]), against the same DynamoDB Local and the same
//! Miro emulator (both answer on loopback, so the figures are each side's own
//! overhead). Calls per flow are counted at the servers by a counting proxy
//! ([`proxy`]). Prints a table and writes it to `BENCHMARKS.md`.

mod proxy;
mod runtime;

use miro_connect::clock::SystemClock;
use miro_connect::config::Config;
use miro_connect::domain::BoardRequest;
use miro_connect::identity::AppUser;
use miro_connect::routes::{Route, FUNCTIONS, ROUTES};
use miro_connect::seal::Sealer;
use miro_connect::secret::Secret;
use miro_connect::service::{CallbackOutcome, CallbackParams, Deadline, StartAuthorization};
use miro_connect::store::dynamo::DynamoStore;
use miro_connect::Service;
use miro_emulator::{Emulator, EmulatorConfig};
use runtime::{Instance, Spawn};
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const REDIRECT_URI: &str = "https://connect.example.test/miro/callback";
const APP_ORIGIN: &str = "https://app.example.test";
const COLD_RUNS: usize = 7;

const DECISIONS: &str = "
## Decisions and notes

- **Secrets at init.** The functions that need the client secret and the sealing keys read them from Secrets \
Manager during init. Compare `create-board` with `create-board, secrets from the environment`: the call costs \
init a few milliseconds here, and the first request needs both anyway (the keys open the stored token, the \
secret refreshes it), so deferring it would move the cost, not remove it. It stays in init, which Lambda runs \
at full CPU. `auth-start` needs no secret and makes no network call before its first event.
- **Init against a hello-world binary.** What init costs beyond `lambda_runtime` itself, without any network \
call: the AWS SDK configuration, the TLS configurations of the SDK's client and of the Miro client (each loads \
the system's root certificates), and the JSON log subscriber. Where the goal is missed the table says by how much.
- **The peer's failures.** Miro's official Node client does not await its save of rotated tokens (see \
`docs/miro.md`): the user's next request can read the refresh token Miro has just killed, and fails. That is \
the client as published, measured as it is; where requests failed, the CPU ratio is printed but not counted \
towards the goal.
- **The peer's setup.** Two things were needed to run it at all: its token requests go to `https://api.miro.com` \
whatever `basePath` says, so the benchmark redirects that one address to the emulator (like DNS would); and \
`@aws-sdk/lib-dynamodb` needs `removeUndefinedValues`, or the refresh answer (which has no `user_id`) makes the \
client's unawaited save reject and the process exit. The emulator takes the peer's secrets in the query string, \
as real Miro does.";
const WARM_ROUNDS: usize = 3;

struct Env {
    root: PathBuf,
    ddb: String,
    moto: String,
    keys: Secret,
    secret_arn: String,
}

/// min / median / max of a sample.
fn mmm(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn fmt3((a, b, c): (f64, f64, f64), unit: &str) -> String {
    format!("{a:.2} / {b:.2} / {c:.2} {unit}")
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let root = PathBuf::from(std::env::var("MIRO_BENCH_ROOT").unwrap_or_else(|_| ".".into()));
    let ddb = std::env::var("MIRO_CONNECT_TEST_DYNAMODB")?;
    let moto = std::env::var("MIRO_CONNECT_TEST_MOTO")?;
    let keys = Sealer::generate_key_ring_entry("k1");
    let secret_arn = create_secret(&moto, &keys).await?;
    let env = Env {
        root,
        ddb,
        moto,
        keys,
        secret_arn,
    };
    let mut out = String::new();
    let started = Instant::now();

    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Made by `bench/run` on this machine ({} cores), {}. Every figure is min / median / max over \
         repeated runs. DynamoDB Local and the Miro emulator answer on loopback, so the figures show \
         each side's own overhead, not AWS's or Miro's latency. Both sides run as processes under the \
         benchmark's own Lambda Runtime API; the peer is a Node.js {} handler on Miro's official \
         `@mirohq/miro-api` with its tokens in DynamoDB through `@aws-sdk/lib-dynamodb` \
         (`bench/peer/`). Rust binaries are release builds for the host.\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        utc_now(),
        node_version(),
    )?;

    let valid = bench_emulator(Some(3599)).await?;
    let refreshing = bench_emulator(Some(120)).await?;
    let mut goals: Vec<(String, bool, String)> = Vec::new();

    cold_starts(&env, &valid, &mut out, &mut goals).await?;
    warm(&env, &valid, &refreshing, &mut out, &mut goals).await?;
    sizes(&env, &mut out, &mut goals)?;
    calls_per_flow(&env, &mut out, &mut goals).await?;

    writeln!(out, "\n## Goals\n\n| goal | met | figure |\n|---|---|---|")?;
    for (goal, met, figure) in &goals {
        writeln!(
            out,
            "| {goal} | {} | {figure} |",
            if *met { "yes" } else { "**no**" }
        )?;
    }
    writeln!(out, "{DECISIONS}")?;
    writeln!(
        out,
        "\nThe run took {:.0} s.",
        started.elapsed().as_secs_f64()
    )?;
    println!("{out}");
    std::fs::write(env.root.join("BENCHMARKS.md"), &out)?;
    eprintln!("written to BENCHMARKS.md");
    Ok(())
}

fn utc_now() -> String {
    miro_connect::clock::rfc3339(miro_connect::clock::Clock::now(&SystemClock))
}

fn node_version() -> String {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

async fn bench_emulator(lifetime: Option<i64>) -> Result<Emulator, Failure> {
    Ok(Emulator::start(EmulatorConfig {
        redirect_uris: vec![REDIRECT_URI.into()],
        access_token_lifetime: lifetime,
        // The peer's official client sends its secrets in the query, which Miro takes.
        accept_query_parameters: true,
        ..EmulatorConfig::default()
    })
    .await?)
}

async fn aws(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .load()
        .await
}

async fn create_secret(moto: &str, keys: &Secret) -> Result<String, Failure> {
    let value = json!({
        "MIRO_CLIENT_SECRET": EmulatorConfig::default().client_secret,
        "TOKEN_SEALING_KEYS": keys.expose(),
    });
    let created = aws_sdk_secretsmanager::Client::new(&aws(moto).await)
        .create_secret()
        .name(format!("bench-{}", uuid::Uuid::new_v4()))
        .secret_string(value.to_string())
        .send()
        .await?;
    Ok(created.arn().ok_or("no secret ARN")?.to_string())
}

/// A fresh table of ours, as the template makes it.
async fn our_table(endpoint: &str, prefix: &str) -> Result<String, Failure> {
    let client = aws_sdk_dynamodb::Client::new(&aws(endpoint).await);
    let name = format!("{prefix}-{}", uuid::Uuid::new_v4());
    DynamoStore::create_table(&client, &name).await?;
    Ok(name)
}

/// A fresh table keyed by `key` alone (the Node.js peer's).
async fn table(endpoint: &str, prefix: &str, key: &str) -> Result<String, Failure> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = aws_sdk_dynamodb::Client::new(&aws(endpoint).await);
    let name = format!("{prefix}-{}", uuid::Uuid::new_v4());
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;
    Ok(name)
}

fn settings(emulator: &Emulator, table: &str) -> HashMap<String, String> {
    emulator.deployment_settings(
        table,
        REDIRECT_URI,
        APP_ORIGIN,
        "https://app.example.test/done",
    )
}

/// The service as a function builds it, on endpoints of the caller's choice.
async fn service(
    env_settings: &HashMap<String, String>,
    ddb: &str,
    keys: &Secret,
) -> Result<Service, Failure> {
    let config = Config::from_lookup(|k| env_settings.get(k).cloned())?;
    let client = aws_sdk_dynamodb::Client::new(&aws(ddb).await);
    let sealer = Arc::new(Sealer::from_key_ring(keys)?);
    let store = Arc::new(DynamoStore::new(client, config.table_name.clone(), sealer));
    Ok(miro_connect::bootstrap::wire(
        config,
        store,
        Arc::new(SystemClock),
    )?)
}

/// A browser's consent at the emulator: the query Miro redirects back with.
async fn consent(authorize_url: &str) -> Result<String, Failure> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = http
        .post(authorize_url)
        .form(&[("decision", "allow")])
        .send()
        .await?;
    let location = answer
        .headers()
        .get("location")
        .ok_or("no redirect")?
        .to_str()?;
    Ok(url::Url::parse(location)?
        .query()
        .unwrap_or_default()
        .to_string())
}

fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Connects `user` through the use cases: start, consent, callback, complete.
async fn connect(service: &Service, user: &str) -> Result<(), Failure> {
    let user = AppUser::parse(user)?;
    let started = service
        .start_authorization(&user, StartAuthorization::default())
        .await?;
    let query = consent(&started.authorize_url).await?;
    let params = CallbackParams {
        state: query_param(&query, "state").map(Secret::new),
        code: query_param(&query, "code").map(Secret::new),
        error: None,
    };
    let CallbackOutcome::Redirect(back) = service.receive_callback(params).await? else {
        return Err("callback refused".into());
    };
    let completion = query_param(back.query().unwrap_or_default(), "miro_authorization")
        .ok_or("no completion")?;
    service
        .complete_authorization(&user, &completion, Some(&started.flow_secret))
        .await?;
    Ok(())
}

/// Gives the peer's `user` tokens, as its own authorization flow would have stored them.
async fn connect_peer(
    emulator: &Emulator,
    table: &str,
    ddb: &str,
    user: &str,
    expired: bool,
) -> Result<(), Failure> {
    let c = emulator.config();
    let authorize = format!(
        "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}",
        emulator.base_url(),
        c.client_id,
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
    );
    let code = query_param(&consent(&authorize).await?, "code").ok_or("no code")?;
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/oauth/token", emulator.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await?
        .json()
        .await?;
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let expires = if expired {
        "2000-01-01T00:00:00.000Z".to_string()
    } else {
        "2099-01-01T00:00:00.000Z".to_string()
    };
    let state = HashMap::from([
        (
            "accessToken".to_string(),
            V::S(token["access_token"].as_str().unwrap_or_default().into()),
        ),
        (
            "refreshToken".to_string(),
            V::S(token["refresh_token"].as_str().unwrap_or_default().into()),
        ),
        ("tokenExpiresAt".to_string(), V::S(expires)),
        (
            "userId".to_string(),
            V::S(token["user_id"].as_str().unwrap_or_default().into()),
        ),
    ]);
    aws_sdk_dynamodb::Client::new(&aws(ddb).await)
        .put_item()
        .table_name(table)
        .item("userId", V::S(user.into()))
        .item("state", V::M(state))
        .send()
        .await?;
    Ok(())
}

/// An HTTP API (payload 2.0) event, as API Gateway sends it after the JWT authorizer.
fn http_event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
    sub: Option<&str>,
) -> serde_json::Value {
    use base64::Engine;
    let mut ctx = json!({
        "accountId": "000000000000", "apiId": "bench", "domainName": "connect.example.test",
        "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench" },
        "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": format!("{method} {path}"), "stage": "$default", "timeEpoch": 0,
    });
    if let Some(sub) = sub {
        ctx["authorizer"] = json!({ "jwt": { "claims": { "sub": sub }, "scopes": null } });
    }
    json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": query,
        "headers": { "host": "connect.example.test", "content-type": "application/json" },
        "requestContext": ctx,
        "body": body.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        "isBase64Encoded": body.is_some(),
    })
}

/// The function behind a route of the API.
fn function_of(method: &str, path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.function)
        .unwrap_or_else(|| panic!("no route {method} {path}"))
}

/// The function that creates boards: the warm runs and the peer measure it.
fn board_function() -> &'static str {
    function_of("POST", "/boards")
}

/// The first route of a function in `ROUTES`; `None` for the SQS consumer.
fn first_route(function: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.function == function)
}

/// A cold start's first request: the function's first route (an unknown
/// state on the unauthenticated callback, `board` on `POST /boards`), or a
/// board-request batch for a function behind no route (the SQS consumer).
fn first_request(function: &str, board: &str) -> serde_json::Value {
    match first_route(function) {
        Some(r) if !r.authorized => http_event(r.method, r.path, "state=unknown", None, None),
        Some(r) => {
            let body = (r.method == "POST" && r.function == board_function()).then_some(board);
            http_event(r.method, r.path, "", body, Some("cold-user"))
        }
        None => sqs_event("cold-user"),
    }
}

fn sqs_event(user: &str) -> serde_json::Value {
    let detail = json!({ "user_id": user, "board": { "name": "From an event" }, "idempotency_key": uuid::Uuid::new_v4().to_string() });
    let body = json!({ "id": uuid::Uuid::new_v4().to_string(), "detail-type": "Create Miro Board", "source": "bench", "detail": detail });
    json!({ "Records": [{ "messageId": uuid::Uuid::new_v4().to_string(), "receiptHandle": "r", "body": body.to_string(),
        "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q", "awsRegion": "us-east-1" }] })
}

/// The process environment of a Rust function of this deployment.
fn rust_env(env: &Env, settings: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = settings
        .iter()
        .filter(|(k, _)| k.as_str() != "MIRO_CLIENT_SECRET")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.push(("MIRO_SECRET_ARN".into(), env.secret_arn.clone()));
    vars.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), env.moto.clone()));
    vars.push(("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), env.moto.clone()));
    vars.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), env.ddb.clone()));
    vars
}

/// The same, with the secrets in the environment: no network call at init.
fn env_secrets(env: &Env, settings: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.push(("TOKEN_SEALING_KEYS".into(), env.keys.expose().to_string()));
    vars.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), env.ddb.clone()));
    vars
}

fn peer_env(env: &Env, emulator: &Emulator, table: &str) -> Vec<(String, String)> {
    let c = emulator.config();
    vec![
        ("TABLE_NAME".into(), table.into()),
        ("MIRO_CLIENT_ID".into(), c.client_id.clone()),
        ("MIRO_CLIENT_SECRET".into(), c.client_secret.clone()),
        ("MIRO_REDIRECT_URI".into(), REDIRECT_URI.into()),
        ("MIRO_API_BASE_URL".into(), emulator.base_url().into()),
        ("AWS_ENDPOINT_URL_DYNAMODB".into(), env.ddb.clone()),
    ]
}

fn rust_bin(env: &Env, name: &str) -> Spawn {
    Spawn::program(env.root.join("target/release").join(name), vec![])
}

fn peer_bin(env: &Env) -> Spawn {
    Spawn::program(
        PathBuf::from("node"),
        vec![env
            .root
            .join("bench/peer/runtime.mjs")
            .display()
            .to_string()],
    )
}

async fn cold_starts(
    env: &Env,
    emulator: &Emulator,
    out: &mut String,
    goals: &mut Vec<(String, bool, String)>,
) -> Result<(), Failure> {
    let rust_table = our_table(&env.ddb, "bench-cold").await?;
    let peer_table = table(&env.ddb, "bench-cold-peer", "userId").await?;
    let s = settings(emulator, &rust_table);
    let svc = service(&s, &env.ddb, &env.keys).await?;
    connect(&svc, "cold-user").await?;
    connect_peer(emulator, &peer_table, &env.ddb, "cold-user", false).await?;
    let vars = rust_env(env, &s);
    let body = r#"{"name":"Cold start"}"#;

    type Case = (String, Spawn, Vec<(String, String)>, serde_json::Value);
    let mut cases: Vec<Case> = vec![(
        "hello-lambda (baseline)".into(),
        rust_bin(env, "hello-lambda"),
        vec![],
        json!({ "hello": "world" }),
    )];
    for function in FUNCTIONS {
        let event = first_request(function, body);
        cases.push((
            function.into(),
            rust_bin(env, function),
            vars.clone(),
            event.clone(),
        ));
        if function == board_function() {
            cases.push((
                format!("{function}, secrets from the environment"),
                rust_bin(env, function),
                env_secrets(env, &s),
                event,
            ));
        }
    }
    cases.push((
        format!("peer: Node.js {}", board_function()),
        peer_bin(env),
        peer_env(env, emulator, &peer_table),
        first_request(board_function(), body),
    ));

    writeln!(out, "## Cold start\n\nProcess start to the first invocation answered, split into init (start until the \
        function first asks the Runtime API for an event) and the first request. {COLD_RUNS} cold starts each. The \
        Rust functions read their Secrets Manager secret during init (one call to moto); see \"Decisions\".\n")?;
    writeln!(out, "| function | init (ms) | first request (ms) | total (ms) | peak RSS (MB) |\n|---|---|---|---|---|")?;
    let mut medians: HashMap<String, (f64, f64, f64)> = HashMap::new();
    let mut rss_all: Vec<(String, f64)> = Vec::new();
    for (name, spawn, vars, event) in cases {
        let (mut init, mut first, mut total, mut rss) = (vec![], vec![], vec![], vec![]);
        for _ in 0..COLD_RUNS {
            let mut instance = Instance::start(&spawn, &vars).await?;
            let init_time = instance.wait_ready(Duration::from_secs(30)).await?;
            let (latency, status) = instance.invoke(event.clone()).await?;
            // The callback's first request carries an unknown state: a 400 page.
            let unknown_state = first_route(&name).is_some_and(|r| !r.authorized);
            if !(200..300).contains(&status) && !unknown_state {
                return Err(format!("{name} answered {status} on its first request").into());
            }
            init.push(init_time.as_secs_f64() * 1000.0);
            first.push(latency.as_secs_f64() * 1000.0);
            total.push((init_time + latency).as_secs_f64() * 1000.0);
            rss.push(instance.peak_rss_mb());
            instance.stop().await;
        }
        let (i, f, t, r) = (mmm(init), mmm(first), mmm(total), mmm(rss));
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            fmt3(i, ""),
            fmt3(f, ""),
            fmt3(t, ""),
            fmt3(r, "")
        )?;
        eprintln!("cold start {name}: init {:.1} ms, first {:.1} ms", i.1, f.1);
        rss_all.push((name.clone(), r.2));
        medians.insert(name, (i.1, f.1, t.1));
    }
    let hello = medians["hello-lambda (baseline)"].0;
    let worst_init = FUNCTIONS
        .iter()
        .map(|n| (*n, medians[*n].0))
        .fold(("", 0.0f64), |w, (n, v)| if v > w.1 { (n, v) } else { w });
    let ratio = worst_init.1 / hello.max(0.001);
    goals.push((
        "init within 1.5x of a hello-world lambda_runtime binary".into(),
        ratio <= 1.5,
        format!(
            "slowest: {} {:.1} ms vs {:.1} ms = {:.2}x{}",
            worst_init.0,
            worst_init.1,
            hello,
            ratio,
            if ratio > 1.5 {
                format!(" (over by {:.2}x)", ratio - 1.5)
            } else {
                String::new()
            }
        ),
    ));
    let board = board_function();
    let (rust, peer) = (medians[board], medians[&format!("peer: Node.js {board}")]);
    writeln!(out, "\n{board} against the peer (medians): init {:.1}x faster, first request {:.1}x faster, total {:.1}x faster.",
        peer.0 / rust.0.max(0.001), peer.1 / rust.1.max(0.001), peer.2 / rust.2.max(0.001))?;
    let worst_rss = rss_all
        .iter()
        .filter(|(n, _)| !n.starts_with("peer"))
        .fold(0.0f64, |a, (_, r)| a.max(*r));
    goals.push((
        "peak RSS under 32 MB (cold)".into(),
        worst_rss < 32.0,
        format!("largest Rust function: {worst_rss:.1} MB"),
    ));
    Ok(())
}

async fn warm(
    env: &Env,
    valid: &Emulator,
    refreshing: &Emulator,
    out: &mut String,
    goals: &mut Vec<(String, bool, String)>,
) -> Result<(), Failure> {
    writeln!(out, "\n## Warm `POST /boards`\n\nLatency from handing the event to the runtime to its answer; CPU time \
        per request summed over every thread of the function processes (from /proc). At concurrency 32, 32 \
        processes of each side (one user each, as 32 Lambda instances would be) share this machine's cores. \
        \"Refresh due\": Miro issues 2-minute tokens, so every request refreshes first (both sides). \
        {WARM_ROUNDS} rounds; each cell is min / median / max over the rounds.\n")?;
    writeln!(out, "| scenario | side | p50 (ms) | p90 (ms) | p99 (ms) | CPU per request (ms) | peak RSS (MB) | failed |\n|---|---|---|---|---|---|---|---|")?;
    let mut cpu_ratio_worst = f64::MAX;
    let mut rss_worst = 0.0f64;
    for (label, emulator, expired) in [
        ("valid token", valid, false),
        ("refresh due", refreshing, true),
    ] {
        for concurrency in [1usize, 32] {
            let per_instance = if concurrency == 1 { 60 } else { 12 };
            let rust_table = our_table(&env.ddb, "bench-warm").await?;
            let peer_table = table(&env.ddb, "bench-warm-peer", "userId").await?;
            let s = settings(emulator, &rust_table);
            let svc = service(&s, &env.ddb, &env.keys).await?;
            for i in 0..concurrency {
                connect(&svc, &format!("u{i}")).await?;
                connect_peer(emulator, &peer_table, &env.ddb, &format!("u{i}"), expired).await?;
            }
            let mut cpu_by_side = HashMap::new();
            for (side, spawn, vars) in [
                (
                    "miro-connect",
                    rust_bin(env, board_function()),
                    rust_env(env, &s),
                ),
                ("peer", peer_bin(env), peer_env(env, emulator, &peer_table)),
            ] {
                let load = load(&spawn, &vars, concurrency, per_instance).await?;
                let cpu = mmm(load.cpu.clone());
                let r = mmm(load.rss.clone());
                writeln!(out, "| {label}, {concurrency} concurrent | {side} | {} | {} | {} | {} | {} | {} of {} |",
                    fmt3(mmm(load.p50), ""), fmt3(mmm(load.p90), ""), fmt3(mmm(load.p99), ""), fmt3(cpu, ""), fmt3(r, ""),
                    load.failed, load.sent)?;
                eprintln!(
                    "warm {label} x{concurrency} {side}: CPU {:.3} ms/request, {} of {} failed",
                    cpu.1, load.failed, load.sent
                );
                cpu_by_side.insert(side, (cpu.1, load.failed));
                if side == "miro-connect" {
                    rss_worst = rss_worst.max(r.2);
                }
            }
            let (rust, peer) = (cpu_by_side["miro-connect"], cpu_by_side["peer"]);
            let ratio = peer.0 / rust.0.max(0.0001);
            if rust.1 == 0 && peer.1 == 0 {
                writeln!(out, "| | peer / miro-connect | | | | **{ratio:.1}x** | | |")?;
                cpu_ratio_worst = cpu_ratio_worst.min(ratio);
            } else {
                writeln!(out, "| | peer / miro-connect | | | | {ratio:.1}x, not comparable: requests failed | | |")?;
            }
        }
    }
    goals.push((
        "warm per-request CPU at least 5x below the peer's".into(),
        cpu_ratio_worst >= 5.0,
        format!(
            "smallest ratio over the scenarios where both sides succeeded: {cpu_ratio_worst:.1}x{}",
            if cpu_ratio_worst < 5.0 {
                format!(" (short by {:.1}x)", 5.0 - cpu_ratio_worst)
            } else {
                String::new()
            }
        ),
    ));
    goals.push((
        format!("peak RSS under 32 MB (warm, {})", board_function()),
        rss_worst < 32.0,
        format!("{rss_worst:.1} MB"),
    ));
    Ok(())
}

/// Per round: latency percentiles of the successful requests (ms) and CPU ms
/// per request; over all rounds: requests sent and failed, peak RSS per process.
#[derive(Default)]
struct Load {
    p50: Vec<f64>,
    p90: Vec<f64>,
    p99: Vec<f64>,
    cpu: Vec<f64>,
    rss: Vec<f64>,
    sent: usize,
    failed: usize,
}

/// `concurrency` processes, each answering `per_instance` requests per round, after a warm-up.
async fn load(
    spawn: &Spawn,
    vars: &[(String, String)],
    concurrency: usize,
    per_instance: usize,
) -> Result<Load, Failure> {
    let mut instances = Vec::new();
    for _ in 0..concurrency {
        let mut instance = Instance::start(spawn, vars).await?;
        instance.wait_ready(Duration::from_secs(60)).await?;
        instances.push(instance);
    }
    let run = |instances: Vec<Instance>, n: usize| async move {
        let tasks: Vec<_> = instances
            .into_iter()
            .enumerate()
            .map(|(i, mut instance)| {
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(n);
                    let mut failures = 0usize;
                    for k in 0..n {
                        let body = format!(r#"{{"name":"Warm {i}-{k}"}}"#);
                        let event =
                            http_event("POST", "/boards", "", Some(&body), Some(&format!("u{i}")));
                        match instance.invoke(event).await {
                            Ok((latency, 201)) => latencies.push(latency.as_secs_f64() * 1000.0),
                            Ok((_, _)) => failures += 1,
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Ok((instance, latencies, failures))
                })
            })
            .collect();
        let mut back = Vec::new();
        let mut latencies = Vec::new();
        let mut failures = 0;
        for t in tasks {
            let (instance, l, f) = t.await.map_err(|e| e.to_string())??;
            back.push(instance);
            latencies.extend(l);
            failures += f;
        }
        Ok::<_, String>((back, latencies, failures))
    };
    let (warmed, _, _) = run(instances, 3).await?;
    instances = warmed;
    let mut load = Load::default();
    for _ in 0..WARM_ROUNDS {
        let before: f64 = instances.iter().map(Instance::cpu_ms).sum();
        let (back, mut latencies, failures) = run(instances, per_instance).await?;
        instances = back;
        let after: f64 = instances.iter().map(Instance::cpu_ms).sum();
        latencies.sort_by(|a, b| a.total_cmp(b));
        load.p50.push(pct(&latencies, 0.50));
        load.p90.push(pct(&latencies, 0.90));
        load.p99.push(pct(&latencies, 0.99));
        load.cpu
            .push((after - before) / (latencies.len() + failures).max(1) as f64);
        load.failed += failures;
        load.sent += latencies.len() + failures;
    }
    load.rss = instances.iter().map(Instance::peak_rss_mb).collect();
    for instance in instances {
        instance.stop().await;
    }
    Ok(load)
}

fn sizes(
    env: &Env,
    out: &mut String,
    goals: &mut Vec<(String, bool, String)>,
) -> Result<(), Failure> {
    writeln!(out, "\n## Sizes\n\nStripped release binaries (`strip = true`), and zipped (deflate) as Lambda receives them.\n")?;
    writeln!(
        out,
        "| function | build | stripped (MB) | zipped (MB) |\n|---|---|---|---|"
    )?;
    // The goal is about what is deployed: the arm64 builds, where they exist.
    let (mut largest_deployed, mut largest_host) = (0.0f64, 0.0f64);
    for name in FUNCTIONS {
        for (build, path) in [
            (
                "arm64 (cargo lambda, as deployed)",
                env.root.join("target/lambda").join(name).join("bootstrap"),
            ),
            ("host", env.root.join("target/release").join(name)),
        ] {
            if !path.exists() {
                continue;
            }
            let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
            let zipped = zipped_size(&path)? as f64 / 1e6;
            writeln!(out, "| {name} | {build} | {size:.2} | {zipped:.2} |")?;
            if build == "host" {
                largest_host = largest_host.max(zipped);
            } else {
                largest_deployed = largest_deployed.max(zipped);
            }
        }
    }
    let (largest, which) = if largest_deployed > 0.0 {
        (largest_deployed, "arm64, as deployed")
    } else {
        (largest_host, "host")
    };
    let over = if largest >= 5.0 {
        format!(" (over by {:.2} MB)", largest - 5.0)
    } else {
        String::new()
    };
    goals.push((
        "every zipped function under 5 MB".into(),
        largest < 5.0,
        format!("largest ({which}): {largest:.2} MB{over}"),
    ));
    Ok(())
}

fn zipped_size(path: &Path) -> Result<u64, Failure> {
    let zip = std::env::temp_dir().join(format!("bench-{}.zip", uuid::Uuid::new_v4()));
    let status = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED); z.write(sys.argv[2], 'bootstrap'); z.close()"])
        .arg(&zip)
        .arg(path)
        .status()?;
    if !status.success() {
        return Err("zip failed".into());
    }
    let size = std::fs::metadata(&zip)?.len();
    let _ = std::fs::remove_file(&zip);
    Ok(size)
}

/// A flow, and (calls, minimum) at DynamoDB and at Miro.
type FlowCalls = (&'static str, (usize, usize), (usize, usize));

async fn calls_per_flow(
    env: &Env,
    out: &mut String,
    goals: &mut Vec<(String, bool, String)>,
) -> Result<(), Failure> {
    let ddb = proxy::Counting::start(&env.ddb, proxy::Key::AmzTarget).await?;
    let emulator = bench_emulator(Some(3599)).await?;
    let miro = proxy::Counting::start(emulator.base_url(), proxy::Key::Path).await?;
    let rust_table = our_table(&env.ddb, "bench-calls").await?;
    let mut s = settings(&emulator, &rust_table);
    s.insert("MIRO_API_BASE_URL".into(), miro.url.clone());
    let svc = service(&s, &ddb.url, &env.keys).await?;
    let user = AppUser::parse("calls-user")?;

    let mut rows: Vec<FlowCalls> = Vec::new();
    let measure = |ddb: &proxy::Counting, miro: &proxy::Counting| (ddb.take(), miro.take());
    let started = svc
        .start_authorization(&user, StartAuthorization::default())
        .await?;
    let (d, m) = measure(&ddb, &miro);
    // The pending authorization, and the count of the user's live flows.
    rows.push(("start", (d, 2), (m, 0)));
    let query = consent(&started.authorize_url).await?;
    let params = CallbackParams {
        state: query_param(&query, "state").map(Secret::new),
        code: query_param(&query, "code").map(Secret::new),
        error: None,
    };
    let CallbackOutcome::Redirect(back) = svc.receive_callback(params).await? else {
        return Err("refused".into());
    };
    let (d, m) = measure(&ddb, &miro);
    rows.push(("callback", (d, 2), (m, 0)));
    let completion = query_param(back.query().unwrap_or_default(), "miro_authorization")
        .ok_or("no completion")?;
    svc.complete_authorization(&user, &completion, Some(&started.flow_secret))
        .await?;
    let (d, m) = measure(&ddb, &miro);
    rows.push(("complete (no intent)", (d, 2), (m, 1)));
    svc.create_board(&user, None, BoardRequest::default(), Deadline::no_waiting())
        .await?;
    let (d, m) = measure(&ddb, &miro);
    rows.push(("create, valid token", (d, 1), (m, 1)));
    // Due: the stored token is within the refresh margin.
    let client = aws_sdk_dynamodb::Client::new(&aws(&env.ddb).await);
    client
        .update_item()
        .table_name(&rust_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("CONN#calls-user".into()),
        )
        .update_expression("SET access_expires_at = :t")
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await?;
    let _ = (ddb.take(), miro.take());
    svc.create_board(&user, None, BoardRequest::default(), Deadline::no_waiting())
        .await?;
    let (d, m) = measure(&ddb, &miro);
    rows.push(("create, refresh due", (d, 3), (m, 2)));

    writeln!(out, "\n## Calls per flow\n\nCounted at the servers (a counting proxy in front of DynamoDB Local and of \
        the emulator's API), next to the least the design needs: a refresh needs a read, the lease and the write \
        of the new tokens; a code exchange cannot be skipped.\n")?;
    writeln!(
        out,
        "| flow | DynamoDB calls | minimum | Miro calls | minimum |\n|---|---|---|---|---|"
    )?;
    let mut at_minimum = true;
    for (flow, (d, dmin), (m, mmin)) in &rows {
        writeln!(out, "| {flow} | {d} | {dmin} | {m} | {mmin} |")?;
        at_minimum &= d <= dmin && m <= mmin;
    }
    writeln!(
        out,
        "\nDynamoDB operations seen: {}; Miro: {}.",
        ddb.seen(),
        miro.seen()
    )?;
    goals.push((
        "DynamoDB and Miro calls per flow at the design's minimum".into(),
        at_minimum,
        "see \"Calls per flow\"".into(),
    ));
    Ok(())
}

//! `bench/run`: the functions against their peer, side by side, on this machine.
//!
//! Both sides run as real processes under one small Lambda Runtime API of the
//! benchmark's own ([`runtime`]), against the same DynamoDB Local and the same
//! Miro emulator (both answer on loopback, so the figures are each side's own
//! overhead). Calls per flow are counted at the servers by a counting proxy
//! ([`proxy`]). Prints a table and writes it to `BENCHMARKS.md`.

mod burst;
mod content;
mod cost;
mod proxy;
mod runtime;

use miro_connect::clock::SystemClock;
use miro_connect::config::Config;
use miro_connect::domain::BoardRequest;
use miro_connect::identity::AppUser;
use miro_connect::routes::{Function, Route, ROUTES};
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

const DECISIONS: &str = "
## Decisions and notes

- **One TLS configuration, roots compiled in.** Every HTTPS client of a function (Miro's, and the AWS SDK's, \
whose HTTP client is reqwest on the same configuration: `shared/src/https.rs`) shares one rustls configuration, \
built once. Its roots are Mozilla's root program as `webpki-roots` compiles it in, already parsed: no file read, \
no PEM parsed at a cold start (loading the system bundle took ~3 ms here, and it was loaded twice: once by \
reqwest's platform verifier, once by the SDK's own HTTPS client). It is as trustworthy for this job: Amazon \
Linux's `ca-certificates`, the bundle on Lambda, is made from the same Mozilla list, and the functions talk only to \
Miro and AWS, both under public roots of that list. What differs is how it is updated: with a rebuild \
(`cargo update`), not with the runtime's patches, so a distrusted root leaves with the next release. The SDKs' \
own HTTPS client (`default-https-client`) is left out of the functions, so nothing can build a second \
configuration by accident.
- **What stays at init, and why.** The breakdown above is each function's own account of its init (its \
`cold start` log line). The AWS configuration and the clients are built at init: they cost a fraction of a \
millisecond now, and every first request but an unknown callback needs DynamoDB, so building them on first use \
would move that time, not save it. The secret read stays at init too: the functions that read it need it on their \
first request (the sealing keys open or seal every token and code), so deferring it would only move one Secrets \
Manager round trip into that request, where on Lambda it costs the same wait and runs its TLS handshake at the \
memory size's share of a vCPU instead of init's; and an environment Lambda initializes ahead of traffic pays it \
before any request. Its cost is the difference between each function and its `secrets from the environment` \
case, and the `secret read` column; that is what keeps those functions above 1.5x here, where moto answers on \
loopback (on AWS the read is a TLS handshake and a round trip, ~20-30 ms). `auth-start` reads no secret. \
Without the secret read, what is left above the baseline is spread over the other columns, none of them \
near a millisecond: reaching `main` takes a little longer than the baseline's whole init (each binary, ~11 MB, is \
about nine times hello-world's); the AWS configuration, the wiring and the Lambda HTTP runtime's start take a few tenths of a millisecond each; the log \
subscriber less than a tenth. Each is work the first request would need anyway, so none would be cheaper there.
- **The callback stays two calls.** See \"The callback's round trips\" under the cost section.
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
    let plan = Plan::new(std::env::var("MIRO_BENCH_QUICK").is_ok_and(|v| v == "1"));
    let template = std::fs::read_to_string(env.root.join("infra/template.yaml"))?;
    let number = |anchor: &str, key: &str| {
        template_number(&template, anchor, key)
            .ok_or_else(|| format!("infra/template.yaml: no {key} under {anchor}"))
    };
    let memory_mb = number("Globals:", "MemorySize")?;
    let mapping = burst::Mapping {
        max_concurrency: number("BoardRequestMapping:", "MaximumConcurrency")? as usize,
        batch_size: number("BoardRequestMapping:", "BatchSize")? as usize,
        visibility_timeout_s: number("BoardRequestQueue:", "VisibilityTimeout")? as i64,
        max_receive_count: number("BoardRequestQueue:", "maxReceiveCount")? as usize,
        function_timeout_s: number("BoardEventsFunction:", "Timeout")? as u64,
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

    // MIRO_BENCH_LATER=1 skips the cold and warm runs (their figures count
    // as zero): for working on the later sections only.
    let later = std::env::var("MIRO_BENCH_LATER").is_ok_and(|v| v == "1");
    let (cold, mut warm_figures) = if later {
        (ColdFigures::new(), WarmFigures::default())
    } else {
        (
            cold_starts(&env, &valid, plan, &mut out, &mut goals).await?,
            warm(&env, &valid, &refreshing, plan, &mut out, &mut goals).await?,
        )
    };
    (warm_figures.peer_dynamodb_calls, warm_figures.peer_units) = peer_asks(&env, &valid).await?;
    sizes(&env, &mut out, &mut goals)?;
    calls_per_flow(&env, &mut out, &mut goals).await?;
    content::section(&env, &mut out, &mut goals).await?;
    cost::section(
        &env,
        plan.quick,
        memory_mb,
        mapping.batch_size as f64,
        template.contains("Tracing: Active"),
        &cold,
        &warm_figures,
        &mut out,
    )
    .await?;
    burst::section(&env, plan, mapping, &mut out).await?;

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
    // A quick look never replaces the full run's figures.
    let file = if plan.quick {
        env.root.join("target/BENCHMARKS.quick.md")
    } else {
        env.root.join("BENCHMARKS.md")
    };
    std::fs::write(&file, &out)?;
    eprintln!("written to {}", file.display());
    Ok(())
}

/// The number after `key:` in the first line that has it below the line
/// `anchor` (a resource or section of the template), within that block.
fn template_number(template: &str, anchor: &str, key: &str) -> Option<f64> {
    let mut lines = template.lines();
    let start = lines.find(|l| l.trim() == anchor)?;
    let indent = start.len() - start.trim_start().len();
    let prefix = format!("{key}:");
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .and_then(|v| v.split('#').next())
        .and_then(|v| v.trim().parse().ok())
}

/// What the peer asks of DynamoDB per warm `POST /boards` with a valid
/// token: calls, and (read, write) request units, counted at a proxy.
async fn peer_asks(env: &Env, emulator: &Emulator) -> Result<(f64, (f64, f64)), Failure> {
    let ddb = proxy::Counting::start(&env.ddb, proxy::Key::AmzTarget).await?;
    let peer_table = table(&env.ddb, "bench-peer-units", "userId").await?;
    connect_peer(emulator, &peer_table, &env.ddb, "units-user", false).await?;
    let mut vars = peer_env(env, emulator, &peer_table);
    for (k, v) in vars.iter_mut() {
        if k == "AWS_ENDPOINT_URL_DYNAMODB" {
            *v = ddb.url.clone();
        }
    }
    let mut peer = Instance::start(&peer_bin(env), &vars).await?;
    peer.wait_ready(Duration::from_secs(60)).await?;
    let event = http_event(
        "POST",
        "/boards",
        "",
        Some(r#"{"name":"Units"}"#),
        Some("units-user"),
    );
    for _ in 0..2 {
        peer.invoke(event.clone()).await?;
    }
    let (_, _) = (ddb.take(), ddb.take_units());
    const N: usize = 5;
    for _ in 0..N {
        let (_, status) = peer.invoke(event.clone()).await?;
        if status != 201 {
            return Err(format!("the peer answered {status}").into());
        }
    }
    let (calls, units) = (ddb.take(), ddb.take_units());
    peer.stop().await;
    let n = N as f64;
    Ok((calls as f64 / n, (units.read / n, units.write / n)))
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

/// The AWS configuration of a server on loopback, built as the functions
/// build theirs (their AWS bounds).
async fn aws(endpoint: &str) -> Result<aws_config::SdkConfig, Failure> {
    use miro_connect::bootstrap as boot;
    let settings = HashMap::from([
        (boot::AWS_ENDPOINT_URL, endpoint),
        (boot::AWS_REGION, "us-east-1"),
        (boot::AWS_ACCESS_KEY_ID, "test"),
        (boot::AWS_SECRET_ACCESS_KEY, "test"),
    ]);
    Ok(boot::aws_config_from(|k| settings.get(k).map(|v| v.to_string())).await?)
}

async fn create_secret(moto: &str, keys: &Secret) -> Result<String, Failure> {
    let value = json!({
        "MIRO_CLIENT_SECRET": EmulatorConfig::default().client_secret,
        "TOKEN_SEALING_KEYS": keys.expose(),
    });
    let created = aws_sdk_secretsmanager::Client::new(&aws(moto).await?)
        .create_secret()
        .name(format!("bench-{}", uuid::Uuid::new_v4()))
        .secret_string(value.to_string())
        .send()
        .await?;
    Ok(created.arn().ok_or("no secret ARN")?.to_string())
}

/// A fresh table of ours, as the template makes it.
async fn our_table(endpoint: &str, prefix: &str) -> Result<String, Failure> {
    let client = aws_sdk_dynamodb::Client::new(&aws(endpoint).await?);
    let name = format!("{prefix}-{}", uuid::Uuid::new_v4());
    DynamoStore::create_table(&client, &name).await?;
    Ok(name)
}

/// A fresh table keyed by `key` alone (the Node.js peer's).
async fn table(endpoint: &str, prefix: &str, key: &str) -> Result<String, Failure> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = aws_sdk_dynamodb::Client::new(&aws(endpoint).await?);
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
    let config = Config::from_lookup(|k| match k {
        "TOKEN_SEALING_KEYS" => Some(keys.expose().to_string()),
        _ => env_settings.get(k).cloned(),
    })?;
    let store = miro_connect::bootstrap::dynamo_store(&aws(ddb).await?, &config, true)?;
    Ok(miro_connect::bootstrap::wire(
        config,
        Arc::new(store),
        Arc::new(SystemClock),
    )?)
}

/// A browser's consent at the emulator: the query Miro redirects back with.
async fn consent(authorize_url: &str) -> Result<String, Failure> {
    consent_as(authorize_url, None).await
}

/// The same, signed in at Miro as `miro_user` (an emulator crowd user).
async fn consent_as(authorize_url: &str, miro_user: Option<&str>) -> Result<String, Failure> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut form = vec![("decision", "allow")];
    if let Some(id) = miro_user {
        form.push(("miro_user", id));
    }
    let answer = http.post(authorize_url).form(&form).send().await?;
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
    connect_as(service, user, None).await
}

/// The same, consenting at Miro as `miro_user`.
async fn connect_as(service: &Service, user: &str, miro_user: Option<&str>) -> Result<(), Failure> {
    let user = AppUser::parse(user)?;
    let started = service
        .start_authorization(&user, StartAuthorization::default())
        .await?;
    let query = consent_as(&started.authorize_url, miro_user).await?;
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
    aws_sdk_dynamodb::Client::new(&aws(ddb).await?)
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
        .map(|r| r.function.name())
        .unwrap_or_else(|| panic!("no route {method} {path}"))
}

/// The function that creates boards: the warm runs and the peer measure it.
fn board_function() -> &'static str {
    function_of("POST", "/boards")
}

/// The first route of a function in `ROUTES`; `None` for the SQS consumer.
fn first_route(function: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.function.name() == function)
}

/// A cold start's first request: the function's first route (an unknown
/// state on the unauthenticated callback, `board` on `POST /boards`), or a
/// board-request batch for a function behind no route (the SQS consumer).
fn first_request(function: &str, board: &str) -> serde_json::Value {
    match first_route(function) {
        Some(r) if !r.authorized => http_event(r.method, r.path, "state=unknown", None, None),
        Some(r) => {
            let body =
                (r.method == "POST" && r.function.name() == board_function()).then_some(board);
            http_event(r.method, r.path, "", body, Some("cold-user"))
        }
        None => sqs_event("cold-user"),
    }
}

/// The SQS consumer of board requests (behind no route).
fn consumer_function() -> &'static str {
    Function::BoardEvents.name()
}

/// An SQS batch of board requests, one message per user.
fn sqs_event_for(users: &[&str]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = users
        .iter()
        .map(|u| sqs_event(u)["Records"][0].clone())
        .collect();
    json!({ "Records": records })
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

/// How much to measure: the full run, or a quick look (`bench/run --quick`).
#[derive(Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    /// Rounds of cold starts; each round starts every case `cold_runs` times.
    pub cold_rounds: usize,
    pub cold_runs: usize,
    pub warm_rounds: usize,
    /// Runs of each burst, and its size (events, users).
    pub burst_runs: usize,
    pub burst_events: usize,
    pub burst_users: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                cold_rounds: 2,
                cold_runs: 3,
                warm_rounds: 1,
                burst_runs: 1,
                burst_events: 1_000,
                burst_users: 100,
            }
        } else {
            Self {
                quick,
                cold_rounds: 5,
                cold_runs: 5,
                warm_rounds: WARM_ROUNDS,
                // Two of each shape keep the whole run near 25 minutes.
                burst_runs: 2,
                burst_events: 10_000,
                burst_users: 1_000,
            }
        }
    }
}

/// What the cost section takes from the cold starts: per function, the
/// median init (ms) and whether it reads the secret at init.
pub type ColdFigures = HashMap<String, (f64, bool)>;

/// A cold start's own account of its init (the `cold start` log line).
struct ColdLine {
    /// Epoch µs when `main` began.
    main_unix_us: u64,
    /// ms from `main` to the line, and the parts it names.
    since_main: f64,
    log: f64,
    aws: f64,
    secret: f64,
}

fn cold_line(lines: &[String]) -> Option<ColdLine> {
    lines.iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let f = &v["fields"];
        (f["message"] == "cold start").then(|| {
            let ms = |k: &str| f[k].as_f64().unwrap_or(0.0) / 1000.0;
            ColdLine {
                main_unix_us: f["main_unix_us"].as_u64().unwrap_or(0),
                since_main: ms("since_main_us"),
                log: ms("log_us"),
                aws: ms("aws_config_us"),
                secret: ms("secret_us"),
            }
        })
    })
}

/// Where one init went, in ms; the parts add up to the whole init.
#[derive(Clone, Copy)]
struct Phases {
    /// Process start to `main`: exec, loading the binary, the async runtime.
    to_main: f64,
    log: f64,
    aws: f64,
    secret: f64,
    /// The rest of `main` before the runtime: settings, clients, sealing keys.
    wiring: f64,
    /// From there to the first ask for an event: the Lambda runtime's start.
    runtime: f64,
}

impl Phases {
    fn of(init_ms: f64, instance: &Instance, line: &ColdLine) -> Self {
        let to_main = instance.since_start_ms(line.main_unix_us);
        Phases {
            to_main,
            log: line.log,
            aws: line.aws,
            secret: line.secret,
            wiring: (line.since_main - line.log - line.aws - line.secret).max(0.0),
            runtime: (init_ms - to_main - line.since_main).max(0.0),
        }
    }
}

/// One case's cold starts over every round.
#[derive(Default)]
struct ColdCase {
    init: Vec<f64>,
    first: Vec<f64>,
    total: Vec<f64>,
    rss: Vec<f64>,
    phases: Vec<Phases>,
    /// Median init of each round.
    round_init: Vec<f64>,
}

async fn cold_starts(
    env: &Env,
    emulator: &Emulator,
    plan: Plan,
    out: &mut String,
    goals: &mut Vec<(String, bool, String)>,
) -> Result<ColdFigures, Failure> {
    let rust_table = our_table(&env.ddb, "bench-cold").await?;
    let peer_table = table(&env.ddb, "bench-cold-peer", "userId").await?;
    let s = settings(emulator, &rust_table);
    let svc = service(&s, &env.ddb, &env.keys).await?;
    connect(&svc, "cold-user").await?;
    connect_peer(emulator, &peer_table, &env.ddb, "cold-user", false).await?;
    let vars = rust_env(env, &s);
    let body = r#"{"name":"Cold start"}"#;
    const HELLO: &str = "hello-lambda (baseline)";
    const ENV_SECRETS: &str = ", secrets from the environment";

    type Case = (String, Spawn, Vec<(String, String)>, serde_json::Value);
    let mut cases: Vec<Case> = vec![(
        HELLO.into(),
        rust_bin(env, "hello-lambda"),
        vec![],
        json!({ "hello": "world" }),
    )];
    // A first cold start of each function (also filling the page cache)
    // says whether it reads the secret at init: those run once more with
    // the secrets in the environment, which shows what the read costs.
    let mut reads_secret: HashMap<String, bool> = HashMap::new();
    for function in Function::ALL.iter().map(|f| f.name()) {
        let event = first_request(function, body);
        let mut probe = Instance::start(&rust_bin(env, function), &vars).await?;
        probe.wait_ready(Duration::from_secs(30)).await?;
        probe.invoke(event.clone()).await?;
        let reads = cold_line(&probe.output().1).is_some_and(|line| line.secret > 0.1);
        probe.stop().await;
        reads_secret.insert(function.to_string(), reads);
        cases.push((
            function.into(),
            rust_bin(env, function),
            vars.clone(),
            event.clone(),
        ));
        if reads {
            cases.push((
                format!("{function}{ENV_SECRETS}"),
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

    let mut figures: Vec<ColdCase> = cases.iter().map(|_| ColdCase::default()).collect();
    for round in 0..plan.cold_rounds {
        for ((name, spawn, vars, event), case) in cases.iter().zip(figures.iter_mut()) {
            let mut inits = vec![];
            for _ in 0..plan.cold_runs {
                let mut instance = Instance::start(spawn, vars).await?;
                let init_time = instance.wait_ready(Duration::from_secs(30)).await?;
                // A user holds at most 20 live flows: every function but the
                // board's (which needs the connected user) asks as a fresh one.
                let mut event = event.clone();
                if let Some(claims) = event.pointer_mut("/requestContext/authorizer/jwt/claims") {
                    if !name.contains(board_function()) {
                        claims["sub"] = json!(format!("cold-{}", uuid::Uuid::new_v4().simple()));
                    }
                }
                let (latency, status) = instance.invoke(event).await?;
                // The callback's first request carries an unknown state: a 400 page.
                let function = name.trim_end_matches(ENV_SECRETS);
                let unknown_state = first_route(function).is_some_and(|r| !r.authorized);
                if !(200..300).contains(&status) && !unknown_state {
                    return Err(format!("{name} answered {status} on its first request").into());
                }
                let init_ms = init_time.as_secs_f64() * 1000.0;
                inits.push(init_ms);
                case.init.push(init_ms);
                case.first.push(latency.as_secs_f64() * 1000.0);
                case.total
                    .push((init_time + latency).as_secs_f64() * 1000.0);
                case.rss.push(instance.peak_rss_mb());
                if let Some(line) = cold_line(&instance.output().1) {
                    case.phases.push(Phases::of(init_ms, &instance, &line));
                }
                instance.stop().await;
            }
            case.round_init.push(mmm(inits).1);
        }
        eprintln!("cold starts: round {} of {}", round + 1, plan.cold_rounds);
    }

    writeln!(out, "## Cold start\n\nProcess start to the first invocation answered, split into init (start until the \
        function first asks the Runtime API for an event) and the first request: {} rounds, each starting every \
        case {} times in turn, so that the ratios below compare runs made side by side. The Rust functions that need \
        the client secret and the sealing keys read them from Secrets Manager during init (one call to moto); each \
        of those runs once more with the secrets in its environment, which shows what the read costs.\n",
        plan.cold_rounds, plan.cold_runs)?;
    writeln!(out, "| function | init (ms) | first request (ms) | total (ms) | peak RSS (MB) |\n|---|---|---|---|---|")?;
    let mut medians: HashMap<String, (f64, f64, f64)> = HashMap::new();
    let mut rss_all: Vec<(String, f64)> = Vec::new();
    for ((name, ..), case) in cases.iter().zip(&figures) {
        let (i, f, t, r) = (
            mmm(case.init.clone()),
            mmm(case.first.clone()),
            mmm(case.total.clone()),
            mmm(case.rss.clone()),
        );
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            fmt3(i, ""),
            fmt3(f, ""),
            fmt3(t, ""),
            fmt3(r, "")
        )?;
        eprintln!("cold start {name}: init {:.2} ms, first {:.2} ms", i.1, f.1);
        rss_all.push((name.clone(), r.2));
        medians.insert(name.clone(), (i.1, f.1, t.1));
    }

    // Ratios to the baseline, round by round.
    let hello_rounds = &figures[0].round_init;
    let ratios = |case: &ColdCase| -> Vec<f64> {
        case.round_init
            .iter()
            .zip(hello_rounds)
            .map(|(f, h)| f / h.max(0.001))
            .collect()
    };
    let hello = medians[HELLO].0;
    writeln!(out, "\nInit against the hello-world binary, each round's median over that round's median for the \
        baseline (min / median / max over the rounds), and where each function's init went, every part measured: \
        the function stamps the moment its `main` began and times its own steps in its `cold start` log line, and the \
        benchmark places that stamp against the moment it started the process. \"To main\" is the process's start \
        up to `main` (exec, loading the binary, the async runtime): the whole of the hello-world binary's init is \
        {hello:.2} ms, nearly all of it this part. Then the log subscriber, the AWS configuration, the secret read, the \
        rest of the wiring (settings, clients, sealing keys), and the Lambda runtime's start up to its first ask for an \
        event. Medians of each part over every run, ms.\n")?;
    writeln!(out, "| function | init / hello-world | to main | log subscriber | AWS configuration | secret read | wiring | runtime start |\n|---|---|---|---|---|---|---|---|")?;
    let mut worst: Option<(String, f64)> = None;
    let mut worst_own: Option<(String, f64)> = None;
    let mut cold = ColdFigures::new();
    for ((name, ..), case) in cases.iter().zip(&figures).skip(1) {
        if name.starts_with("peer") {
            continue;
        }
        let r = mmm(ratios(case));
        let part = |f: fn(&Phases) -> f64| mmm(case.phases.iter().map(f).collect()).1;
        writeln!(
            out,
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            fmt3(r, "x"),
            part(|p| p.to_main),
            part(|p| p.log),
            part(|p| p.aws),
            part(|p| p.secret),
            part(|p| p.wiring),
            part(|p| p.runtime),
        )?;
        let base = name.trim_end_matches(ENV_SECRETS).to_string();
        let is_env = base.len() != name.len();
        if is_env {
            if worst_own.as_ref().is_none_or(|w| r.1 > w.1) {
                worst_own = Some((base.clone(), r.1));
            }
        } else {
            // A function without a secret read has no second case: its own init is this one.
            if !reads_secret.get(name).copied().unwrap_or(false)
                && worst_own.as_ref().is_none_or(|w| r.1 > w.1)
            {
                worst_own = Some((base.clone(), r.1));
            }
            if worst.as_ref().is_none_or(|w| r.1 > w.1) {
                worst = Some((base.clone(), r.1));
            }
            cold.insert(
                base.clone(),
                (
                    medians[name].0,
                    reads_secret.get(name).copied().unwrap_or(false),
                ),
            );
        }
    }
    let (worst_name, ratio) = worst.unwrap_or_default();
    let (own_name, own_ratio) = worst_own.unwrap_or_default();
    goals.push((
        "init within 1.5x of a hello-world lambda_runtime binary (same run)".into(),
        ratio <= 1.5,
        format!(
            "slowest: {worst_name} at {ratio:.2}x (median over rounds; baseline {hello:.2} ms){}; \
             without the secret read (secrets from the environment) the slowest is {own_name} at {own_ratio:.2}x",
            if ratio > 1.5 { format!(", over by {:.2}x", ratio - 1.5) } else { String::new() }
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
    cold.insert(format!("peer: Node.js {board}"), (peer.0, false));
    Ok(cold)
}

/// What the cost section takes from the warm runs: `POST /boards` with a
/// valid token, one at a time, on each side (min / median / max of the
/// rounds' medians), and what the peer asks of DynamoDB per request.
#[derive(Default)]
pub struct WarmFigures {
    pub rust_latency: (f64, f64, f64),
    pub rust_cpu: (f64, f64, f64),
    pub rust_log_bytes: f64,
    pub peer_latency: (f64, f64, f64),
    pub peer_cpu: (f64, f64, f64),
    pub peer_log_bytes: f64,
    pub peer_dynamodb_calls: f64,
    /// Read and write request units per request.
    pub peer_units: (f64, f64),
}

async fn warm(
    env: &Env,
    valid: &Emulator,
    refreshing: &Emulator,
    plan: Plan,
    out: &mut String,
    goals: &mut Vec<(String, bool, String)>,
) -> Result<WarmFigures, Failure> {
    let mut figures = WarmFigures::default();
    writeln!(out, "\n## Warm `POST /boards`\n\nLatency from handing the event to the runtime to its answer; CPU time \
        per request summed over every thread of the function processes (from /proc). At concurrency 32, 32 \
        processes of each side (one user each, as 32 Lambda instances would be) share this machine's cores. \
        \"Refresh due\": Miro issues 2-minute tokens, so every request refreshes first (both sides). \
        {} rounds; each cell is min / median / max over the rounds.\n", plan.warm_rounds)?;
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
                let load = load(&spawn, &vars, concurrency, per_instance, plan.warm_rounds).await?;
                if label == "valid token" && concurrency == 1 {
                    let at = (mmm(load.p50.clone()), mmm(load.cpu.clone()), load.log_bytes);
                    if side == "peer" {
                        (
                            figures.peer_latency,
                            figures.peer_cpu,
                            figures.peer_log_bytes,
                        ) = at;
                    } else {
                        (
                            figures.rust_latency,
                            figures.rust_cpu,
                            figures.rust_log_bytes,
                        ) = at;
                    }
                }
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
    Ok(figures)
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
    /// stdout bytes per request, warm-up and init lines included.
    log_bytes: f64,
}

/// `concurrency` processes, each answering `per_instance` requests per round, after a warm-up.
async fn load(
    spawn: &Spawn,
    vars: &[(String, String)],
    concurrency: usize,
    per_instance: usize,
    rounds: usize,
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
    for _ in 0..rounds {
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
    let bytes: usize = instances.iter().map(|i| i.output().0).sum();
    load.log_bytes = bytes as f64 / (load.sent + 3 * concurrency).max(1) as f64;
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
    for name in Function::ALL.iter().map(|f| f.name()) {
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
    // The code taken, the connection stored, the user's connections listed
    // and their default settled; the exchange, and the token context that
    // names the team.
    rows.push(("complete (no intent)", (d, 4), (m, 2)));
    svc.create_board(&user, None, BoardRequest::default(), Deadline::no_waiting())
        .await?;
    let (d, m) = measure(&ddb, &miro);
    rows.push(("create, valid token", (d, 1), (m, 1)));
    // Due: the stored token is within the refresh margin.
    let client = aws_sdk_dynamodb::Client::new(&aws(&env.ddb).await?);
    client
        .update_item()
        .table_name(&rust_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("CONN#calls-user".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TEAM#{}", miro_emulator::TEAM_ID)),
        )
        .update_expression("SET access_expires_at = :t")
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await?;
    let _ = (ddb.take(), miro.take());
    svc.create_board(&user, None, BoardRequest::default(), Deadline::no_waiting())
        .await?;
    let (d, m) = measure(&ddb, &miro);
    rows.push(("create, refresh due", (d, 4), (m, 2)));

    writeln!(out, "\n## Calls per flow\n\nCounted at the servers (a counting proxy in front of DynamoDB Local and of \
        the emulator's API), next to the least the design needs: a refresh needs a read, the lease, the refresh \
        breaker's state (every function's, so that a wrong client secret removes no connection: README, \
        \"Operating it\") and the write of the new tokens; a code exchange cannot be skipped; completing lists the user's connections to settle \
        their default, and asks Miro for the token's context (the team's name).\n")?;
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

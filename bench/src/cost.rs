//! What a million boards cost, from this run's own measurements: the prices
//! are named constants with the date they were taken, the waits on AWS and
//! Miro that a run on loopback cannot measure are named assumptions, and
//! everything else (latency, CPU, log bytes, DynamoDB units, calls) is
//! measured here.

/// When the prices below were taken (AWS's public list prices, us-east-1).
/// This machine reaches no pricing page: re-check them before relying on them.
pub const PRICES_TAKEN: &str = "2025-06-01";
/// Lambda on arm64, per GB-second of billed duration.
pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda, per request.
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// API Gateway HTTP API, per request (first 300 million a month).
pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
/// DynamoDB on-demand, per read request unit and per write request unit.
pub const DYNAMODB_RRU: f64 = 0.125 / 1e6;
pub const DYNAMODB_WRU: f64 = 0.625 / 1e6;
/// Secrets Manager, per API call (the secret's $0.40 a month is not per board).
pub const SECRETS_MANAGER_CALL: f64 = 0.05 / 10_000.0;
/// KMS, per request: the secret is under the stack's customer managed key,
/// so each read of it is one decrypt.
pub const KMS_REQUEST: f64 = 0.03 / 10_000.0;
/// EventBridge, per custom event put on a bus (each 64 KB chunk).
pub const EVENTBRIDGE_EVENT: f64 = 1.00 / 1e6;
/// SQS standard queue, per request (each 64 KB chunk).
pub const SQS_REQUEST: f64 = 0.40 / 1e6;
/// CloudWatch Logs, per GB ingested.
pub const LOGS_GB: f64 = 0.50;
/// X-Ray, per trace recorded (when the template turns tracing on).
pub const XRAY_TRACE: f64 = 5.00 / 1e6;
/// Share of invocations X-Ray's default sampling rule records at volume
/// (one a second, then 5% of the rest).
pub const XRAY_SAMPLED: f64 = 0.05;

/// Assumptions: what a loopback run cannot measure.
/// One DynamoDB call from a Lambda in the same region.
pub const WAIT_DYNAMODB_MS: f64 = 6.0;
/// Miro's token endpoint (code exchange or refresh).
pub const WAIT_MIRO_TOKEN_MS: f64 = 250.0;
/// Miro's token context (`GET /v1/oauth-token`).
pub const WAIT_MIRO_CONTEXT_MS: f64 = 150.0;
/// Miro creating a board (`POST /v2/boards`).
pub const WAIT_MIRO_BOARD_MS: f64 = 400.0;
/// Any other Miro call.
pub const WAIT_MIRO_OTHER_MS: f64 = 200.0;
/// One EventBridge `PutEvents`.
pub const WAIT_EVENTBRIDGE_MS: f64 = 20.0;
/// The Secrets Manager read at a cold start, with its TLS handshake.
pub const WAIT_SECRET_MS: f64 = 30.0;
/// Share of invocations that are cold starts (AWS puts steady production
/// traffic under 1%; a bursty app sees more).
pub const COLD_START_SHARE: f64 = 0.01;
/// Platform log lines per invocation (START, END and REPORT, JSON format).
pub const PLATFORM_LOG_BYTES: f64 = 700.0;
/// Lambda gives a function one vCPU at 1,769 MB, in proportion below it.
pub const MB_PER_VCPU: f64 = 1769.0;
/// The board consumer works on this many messages of a batch at once.
pub const CONSUMER_CONCURRENCY: f64 = 4.0;

/// The assumed wait for one Miro call, by method and path.
pub fn miro_wait(call: &str) -> f64 {
    if call.ends_with("/v1/oauth/token") {
        WAIT_MIRO_TOKEN_MS
    } else if call.ends_with("/v1/oauth-token") {
        WAIT_MIRO_CONTEXT_MS
    } else if call == "POST /v2/boards" {
        WAIT_MIRO_BOARD_MS
    } else {
        WAIT_MIRO_OTHER_MS
    }
}

/// One kind of invocation in a flow, as measured.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    pub label: String,
    /// Invocations of this kind per flow (a batch's share for the consumer).
    pub per_flow: f64,
    /// Measured on this machine: latency, CPU and stdout bytes per invocation
    /// (min, median, max).
    pub latency_ms: (f64, f64, f64),
    pub cpu_ms: (f64, f64, f64),
    pub log_bytes: f64,
    /// Assumed waits on AWS and Miro per invocation.
    pub waits_ms: f64,
    /// Init of a cold start (measured, ms) and its Secrets Manager reads.
    pub init_ms: f64,
    pub secret_reads: f64,
}

/// One flow: its invocations and what it asks of the other services.
#[derive(Clone, Debug, Default)]
pub struct Flow {
    pub name: String,
    pub invocations: Vec<Invocation>,
    pub api_requests: f64,
    pub rru: f64,
    pub wru: f64,
    pub events: f64,
    pub sqs_requests: f64,
}

/// Dollars per million flows, by service: (Lambda, API Gateway, DynamoDB,
/// Secrets Manager and KMS, EventBridge, SQS, CloudWatch Logs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bill {
    pub lambda: f64,
    pub api: f64,
    pub dynamodb: f64,
    pub secrets: f64,
    pub eventbridge: f64,
    pub sqs: f64,
    pub logs: f64,
    pub xray: f64,
}

impl Bill {
    pub fn total(&self) -> f64 {
        self.lambda
            + self.api
            + self.dynamodb
            + self.secrets
            + self.eventbridge
            + self.sqs
            + self.logs
            + self.xray
    }
}

/// The billed duration of one invocation (ms): the measured latency, its CPU
/// stretched to the memory size's share of a vCPU, plus the assumed waits,
/// rounded up to the millisecond as Lambda bills.
pub fn billed_ms(latency: f64, cpu: f64, waits: f64, memory_mb: f64) -> f64 {
    let share = (memory_mb / MB_PER_VCPU).min(1.0);
    (latency + cpu * (1.0 / share - 1.0) + waits).ceil()
}

/// A million flows, with each invocation's latency and CPU taken at `pick`
/// (0 min, 1 median, 2 max).
pub fn bill(flow: &Flow, memory_mb: f64, pick: usize, tracing: bool) -> Bill {
    let at = |t: (f64, f64, f64)| match pick {
        0 => t.0,
        1 => t.1,
        _ => t.2,
    };
    let gb = memory_mb / 1024.0;
    let mut b = Bill::default();
    for i in &flow.invocations {
        let warm = billed_ms(at(i.latency_ms), at(i.cpu_ms), i.waits_ms, memory_mb);
        // A cold start is billed its init too (a custom runtime's always is),
        // and reads the secret once.
        let init = (i.init_ms + i.secret_reads * WAIT_SECRET_MS).ceil();
        let seconds = (warm + COLD_START_SHARE * init) / 1000.0;
        b.lambda += i.per_flow * (seconds * gb * LAMBDA_ARM_GB_SECOND + LAMBDA_REQUEST);
        b.secrets +=
            i.per_flow * COLD_START_SHARE * i.secret_reads * (SECRETS_MANAGER_CALL + KMS_REQUEST);
        b.logs += i.per_flow * (i.log_bytes + PLATFORM_LOG_BYTES) / 1e9 * LOGS_GB;
        if tracing {
            b.xray += i.per_flow * XRAY_SAMPLED * XRAY_TRACE;
        }
    }
    b.api = flow.api_requests * HTTP_API_REQUEST;
    b.dynamodb = flow.rru * DYNAMODB_RRU + flow.wru * DYNAMODB_WRU;
    b.eventbridge = flow.events * EVENTBRIDGE_EVENT;
    b.sqs = flow.sqs_requests * SQS_REQUEST;
    // Per million flows.
    let m = 1e6;
    Bill {
        lambda: b.lambda * m,
        api: b.api * m,
        dynamodb: b.dynamodb * m,
        secrets: b.secrets * m,
        eventbridge: b.eventbridge * m,
        sqs: b.sqs * m,
        logs: b.logs * m,
        xray: b.xray * m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_with_no_waits_costs_its_requests_and_its_units() {
        let flow = Flow {
            name: "x".into(),
            invocations: vec![Invocation {
                per_flow: 1.0,
                latency_ms: (1.0, 1.0, 1.0),
                ..Invocation::default()
            }],
            api_requests: 1.0,
            rru: 1.0,
            ..Flow::default()
        };
        let b = bill(&flow, 1024.0, 1, false);
        // 1 ms at 1 GB, a request, logs of the platform lines only.
        let lambda = (0.001 * LAMBDA_ARM_GB_SECOND + LAMBDA_REQUEST) * 1e6;
        assert!((b.lambda - lambda).abs() < 1e-9, "{b:?}");
        assert!((b.api - 1.0).abs() < 1e-9);
        assert!((b.dynamodb - 0.125).abs() < 1e-9);
        assert_eq!(billed_ms(1.2, 0.5, 0.0, MB_PER_VCPU), 2.0, "rounded up");
        assert_eq!(
            billed_ms(1.0, 1.0, 0.0, MB_PER_VCPU / 2.0),
            2.0,
            "CPU stretched"
        );
    }
}

// ---- Measuring the flows ----

use super::{
    board_function, connect, consent, fmt3, function_of, http_event, mmm, our_table, proxy,
    query_param, rust_bin, rust_env, service, settings, sqs_event_for, ColdFigures, Env, Failure,
    WarmFigures,
};
use miro_connect::domain::BoardRequest;
use miro_connect::identity::AppUser;
use miro_connect::secret::Secret;
use miro_connect::service::{CallbackOutcome, CallbackParams, Deadline};
use runtime_api::Instance;
use std::fmt::Write as _;
use std::time::Duration;

use super::runtime as runtime_api;

/// What one step of a flow asked of DynamoDB and Miro, counted at the proxies.
#[derive(Default, Clone, Debug)]
struct Asked {
    rru: f64,
    wru: f64,
    dynamodb: Vec<String>,
    miro_calls: Vec<String>,
}

impl Asked {
    fn take(ddb: &proxy::Counting, miro: &proxy::Counting) -> Self {
        let units = ddb.take_units();
        let _ = ddb.take();
        let _ = miro.take();
        Self {
            rru: units.read,
            wru: units.write,
            dynamodb: ddb.take_named(),
            miro_calls: miro.take_named(),
        }
    }

    fn waits(&self) -> f64 {
        self.dynamodb.len() as f64 * WAIT_DYNAMODB_MS
            + self.miro_calls.iter().map(|c| miro_wait(c)).sum::<f64>()
    }
}

/// A body of a Lambda HTTP answer, decoded.
fn answer_body(answer: &serde_json::Value) -> serde_json::Value {
    use base64::Engine;
    let text = answer["body"].as_str().unwrap_or_default();
    let raw = if answer["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    serde_json::from_slice(&raw).unwrap_or_default()
}

/// Latency, CPU and stdout bytes of each call of `step` on `instance`.
#[derive(Default)]
struct Measured {
    latency: Vec<f64>,
    cpu: Vec<f64>,
    bytes: Vec<f64>,
}

impl Measured {
    async fn invoke(
        &mut self,
        instance: &mut Instance,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let (cpu, bytes) = (instance.cpu_ms(), instance.output().0);
        let (latency, answer) = instance.invoke_for(event).await?;
        self.latency.push(latency.as_secs_f64() * 1000.0);
        self.cpu.push(instance.cpu_ms() - cpu);
        self.bytes.push((instance.output().0 - bytes) as f64);
        Ok(answer)
    }

    fn invocation(&self, label: &str, per_flow: f64, waits_ms: f64) -> Invocation {
        Invocation {
            label: label.into(),
            per_flow,
            latency_ms: mmm(self.latency.clone()),
            cpu_ms: mmm(self.cpu.clone()),
            log_bytes: mmm(self.bytes.clone()).1,
            waits_ms,
            ..Invocation::default()
        }
    }
}

/// The cost section: measures the three flows and prices them.
#[allow(clippy::too_many_arguments)]
pub async fn section(
    env: &Env,
    quick: bool,
    memory_mb: f64,
    batch_size: f64,
    tracing: bool,
    cold: &ColdFigures,
    warm: &WarmFigures,
    out: &mut String,
) -> Result<(), Failure> {
    let rounds = if quick { 5 } else { 30 };
    let emulator = super::bench_emulator(Some(3599)).await?;
    let ddb = proxy::Counting::start(&env.ddb, proxy::Key::AmzTarget).await?;
    let miro = proxy::Counting::start(emulator.base_url(), proxy::Key::Path).await?;
    let table = our_table(&env.ddb, "bench-cost").await?;
    let mut s = settings(&emulator, &table);
    s.insert("MIRO_API_BASE_URL".into(), miro.url.clone());
    let svc = service(&s, &ddb.url, &env.keys).await?;

    // What each step asks of DynamoDB and Miro, through the use cases.
    let user = AppUser::parse("cost-user")?;
    let _ = Asked::take(&ddb, &miro);
    let request = BoardRequest {
        name: Some("One click".into()),
        ..BoardRequest::default()
    };
    let flow = match svc
        .create_board(&user, None, request, Deadline::no_waiting())
        .await
    {
        Err(miro_connect::Error::AuthorizationRequired(Some(flow))) => flow,
        other => return Err(format!("expected a consent link, got {other:?}").into()),
    };
    let ask_click = Asked::take(&ddb, &miro);
    let query = consent(&flow.authorize_url).await?;
    let params = CallbackParams {
        state: query_param(&query, "state").map(Secret::new),
        code: query_param(&query, "code").map(Secret::new),
        error: None,
    };
    let CallbackOutcome::Redirect(back) = svc.receive_callback(params).await? else {
        return Err("callback refused".into());
    };
    let ask_callback = Asked::take(&ddb, &miro);
    let completion = query_param(back.query().unwrap_or_default(), "miro_authorization")
        .ok_or("no completion")?;
    let completed = svc
        .complete_authorization(&user, &completion, Some(&flow.flow_secret))
        .await?;
    if completed.board.is_none() {
        return Err("the one-click flow made no board".into());
    }
    let ask_complete = Asked::take(&ddb, &miro);
    svc.create_board(&user, None, BoardRequest::default(), Deadline::no_waiting())
        .await?;
    let ask_valid = Asked::take(&ddb, &miro);
    let message = sqs_event_for(&["cost-user"]);
    let body = message["Records"][0]["body"].as_str().unwrap_or_default();
    let deadline = Deadline::at(std::time::Instant::now() + Duration::from_secs(30));
    svc.board_requested("cost-message", body, deadline).await;
    let ask_event = Asked::take(&ddb, &miro);

    // The same steps as the functions run them, for latency, CPU and logs.
    let vars = rust_env(env, &settings(&emulator, &table));
    let board = board_function();
    let callback_fn = function_of("GET", "/miro/callback");
    let consumer = super::consumer_function();
    let mut click = Instance::start(&rust_bin(env, board), &vars).await?;
    let mut back_end = Instance::start(&rust_bin(env, callback_fn), &vars).await?;
    click.wait_ready(Duration::from_secs(30)).await?;
    back_end.wait_ready(Duration::from_secs(30)).await?;
    let (mut m_click, mut m_callback, mut m_complete) = (
        Measured::default(),
        Measured::default(),
        Measured::default(),
    );
    for k in 0..rounds + 3 {
        let user = format!("click-{k}");
        let body = format!(r#"{{"name":"One click {k}"}}"#);
        let (mut a, mut b, mut c) = (
            Measured::default(),
            Measured::default(),
            Measured::default(),
        );
        let answer = a
            .invoke(
                &mut click,
                http_event("POST", "/boards", "", Some(&body), Some(&user)),
            )
            .await?;
        let started = answer_body(&answer);
        let authorize = started["authorize_url"]
            .as_str()
            .ok_or("no authorize_url")?;
        let secret = started["flow_secret"]
            .as_str()
            .ok_or("no flow_secret")?
            .to_string();
        let query = consent(authorize).await?;
        let answer = b
            .invoke(
                &mut back_end,
                http_event("GET", "/miro/callback", &query, None, None),
            )
            .await?;
        let location = answer["headers"]["location"]
            .as_str()
            .ok_or("no redirect")?;
        let completion = query_param(
            url::Url::parse(location)?.query().unwrap_or_default(),
            "miro_authorization",
        )
        .ok_or("no completion")?;
        let done = json_body(&completion, &secret);
        let answer = c
            .invoke(
                &mut back_end,
                http_event(
                    "POST",
                    "/miro/authorizations/complete",
                    "",
                    Some(&done),
                    Some(&user),
                ),
            )
            .await?;
        if answer["statusCode"] != 200 {
            return Err(format!("complete answered {}", answer["statusCode"]).into());
        }
        // The first rounds warm the processes up.
        if k >= 3 {
            for (m, x) in [
                (&mut m_click, a),
                (&mut m_callback, b),
                (&mut m_complete, c),
            ] {
                m.latency.extend(x.latency);
                m.cpu.extend(x.cpu);
                m.bytes.extend(x.bytes);
            }
        }
    }
    click.stop().await;
    back_end.stop().await;

    // The consumer, a batch of `batch_size` board requests at a time.
    let batch = batch_size.max(1.0) as usize;
    let users: Vec<String> = (0..batch).map(|i| format!("cost-event-{i}")).collect();
    for u in &users {
        connect(&svc, u).await?;
    }
    let mut events = Instance::start(&rust_bin(env, consumer), &vars).await?;
    events.wait_ready(Duration::from_secs(30)).await?;
    let mut m_event = Measured::default();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    for k in 0..rounds + 2 {
        let mut m = Measured::default();
        let answer = m.invoke(&mut events, sqs_event_for(&names)).await?;
        let failed = answer["batchItemFailures"].as_array().map_or(0, Vec::len);
        if failed > 0 {
            return Err(format!("the consumer handed back {failed} messages").into());
        }
        if k >= 2 {
            m_event.latency.extend(m.latency);
            m_event.cpu.extend(m.cpu);
            m_event.bytes.extend(m.bytes);
        }
    }
    events.stop().await;

    let with_cold = |mut i: Invocation, function: &str| {
        let (init, reads) = cold.get(function).copied().unwrap_or_default();
        i.init_ms = init;
        i.secret_reads = if reads { 1.0 } else { 0.0 };
        i
    };
    let rounds_per_batch = (batch as f64 / CONSUMER_CONCURRENCY).ceil();
    let flows = [
        Flow {
            name: "one-click flow (POST /boards answers 401, consent, callback, complete with the board)".into(),
            invocations: vec![
                with_cold(m_click.invocation("POST /boards (401)", 1.0, ask_click.waits()), board),
                with_cold(m_callback.invocation("GET /miro/callback", 1.0, ask_callback.waits()), callback_fn),
                with_cold(m_complete.invocation("POST /miro/authorizations/complete", 1.0, ask_complete.waits()), callback_fn),
            ],
            api_requests: 3.0,
            rru: ask_click.rru + ask_callback.rru + ask_complete.rru,
            wru: ask_click.wru + ask_callback.wru + ask_complete.wru,
            ..Flow::default()
        },
        Flow {
            name: "board with a valid token (POST /boards)".into(),
            invocations: vec![with_cold(
                Invocation {
                    label: "POST /boards".into(),
                    per_flow: 1.0,
                    latency_ms: warm.rust_latency,
                    cpu_ms: warm.rust_cpu,
                    log_bytes: warm.rust_log_bytes,
                    waits_ms: ask_valid.waits(),
                    ..Invocation::default()
                },
                board,
            )],
            api_requests: 1.0,
            rru: ask_valid.rru,
            wru: ask_valid.wru,
            ..Flow::default()
        },
        Flow {
            name: format!("board from an event (EventBridge, SQS, the consumer; batches of {batch})"),
            invocations: vec![with_cold(
                m_event.invocation(
                    "a batch, per message",
                    1.0 / batch as f64,
                    // Four at a time: a batch waits for its rounds of four.
                    rounds_per_batch * (ask_event.waits() + WAIT_EVENTBRIDGE_MS),
                ),
                consumer,
            )],
            rru: ask_event.rru,
            wru: ask_event.wru,
            // The request put on the bus, and the outcome published.
            events: 2.0,
            // EventBridge's send, and a batch's receive and delete.
            sqs_requests: 1.0 + 2.0 / batch as f64,
            ..Flow::default()
        },
    ];
    let peer_name = format!("peer: Node.js {board}");
    let peer = Flow {
        name: format!("{peer_name}, board with a valid token"),
        invocations: vec![Invocation {
            label: "POST /boards".into(),
            per_flow: 1.0,
            latency_ms: warm.peer_latency,
            cpu_ms: warm.peer_cpu,
            log_bytes: warm.peer_log_bytes,
            waits_ms: warm.peer_dynamodb_calls * WAIT_DYNAMODB_MS + WAIT_MIRO_BOARD_MS,
            init_ms: cold.get(&peer_name).map(|c| c.0).unwrap_or_default(),
            // The same secret read at a cold start, for a fair comparison.
            secret_reads: 1.0,
        }],
        api_requests: 1.0,
        rru: warm.peer_units.0,
        wru: warm.peer_units.1,
        ..Flow::default()
    };

    writeln!(out, "\n## Cost per million boards\n\nDollars per million flows, computed by the benchmark from this \
        run's measurements. Prices are AWS's us-east-1 list prices taken {PRICES_TAKEN} (constants in \
        `bench/src/cost.rs`; re-check them). Lambda: arm64 at the template's {memory_mb:.0} MB, billed duration = the \
        measured warm latency + its measured CPU stretched to the {:.0}% of a vCPU that {memory_mb:.0} MB buys + the \
        assumed waits below, rounded up to the ms; plus {:.0}% cold starts, each billed its measured init and one \
        Secrets Manager read ({WAIT_SECRET_MS:.0} ms) with its KMS decrypt. DynamoDB: the read and write request units \
        the flows consumed, as DynamoDB Local reports them (`ReturnConsumedCapacity`), transactions doubled. \
        Logs: the bytes each function wrote, plus {PLATFORM_LOG_BYTES:.0} bytes of platform lines per invocation.\n",
        memory_mb / MB_PER_VCPU * 100.0, COLD_START_SHARE * 100.0)?;
    writeln!(out, "Assumed waits: DynamoDB {WAIT_DYNAMODB_MS:.0} ms a call; Miro {WAIT_MIRO_BOARD_MS:.0} ms to create a \
        board, {WAIT_MIRO_TOKEN_MS:.0} ms at the token endpoint, {WAIT_MIRO_CONTEXT_MS:.0} ms for the token context; \
        EventBridge {WAIT_EVENTBRIDGE_MS:.0} ms a put. The measured latency includes DynamoDB Local's and the \
        emulator's own answer times, so Lambda is overstated a little, on both sides alike.\n")?;
    if tracing {
        writeln!(out, "The template turns X-Ray tracing on: {:.0}% of invocations recorded (the default sampling \
            rule at volume), ${:.2} a million traces.\n", XRAY_SAMPLED * 100.0, XRAY_TRACE * 1e6)?;
    }
    writeln!(out, "| flow | Lambda | API Gateway | DynamoDB | Secrets Manager + KMS | EventBridge | SQS | CloudWatch Logs | X-Ray | total |\n|---|---|---|---|---|---|---|---|---|---|")?;
    let mut totals = vec![];
    for f in flows.iter().chain(std::iter::once(&peer)) {
        let bills = [
            bill(f, memory_mb, 0, tracing),
            bill(f, memory_mb, 1, tracing),
            bill(f, memory_mb, 2, tracing),
        ];
        let part = |g: fn(&Bill) -> f64| fmt3((g(&bills[0]), g(&bills[1]), g(&bills[2])), "");
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | **{}** |",
            f.name,
            part(|b| b.lambda),
            part(|b| b.api),
            part(|b| b.dynamodb),
            part(|b| b.secrets),
            part(|b| b.eventbridge),
            part(|b| b.sqs),
            part(|b| b.logs),
            part(|b| b.xray),
            part(Bill::total)
        )?;
        totals.push((f.name.clone(), bills[1].total()));
    }
    writeln!(
        out,
        "\nWhat each flow was measured at (medians; billed ms per invocation at the median):\n"
    )?;
    writeln!(out, "| flow | invocation | per flow | latency (ms) | CPU (ms) | assumed waits (ms) | billed (ms) | log bytes | RRU | WRU |\n|---|---|---|---|---|---|---|---|---|---|")?;
    for f in flows.iter().chain(std::iter::once(&peer)) {
        for (k, i) in f.invocations.iter().enumerate() {
            let (rru, wru) = if k == 0 {
                (format!("{:.1}", f.rru), format!("{:.1}", f.wru))
            } else {
                (String::new(), String::new())
            };
            writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} | {:.0} | {rru} | {wru} |",
                if k == 0 { f.name.as_str() } else { "" },
                i.label,
                i.per_flow,
                i.latency_ms.1,
                i.cpu_ms.1,
                i.waits_ms,
                billed_ms(i.latency_ms.1, i.cpu_ms.1, i.waits_ms, memory_mb),
                i.log_bytes,
            )?;
        }
    }
    let steps = [
        ("POST /boards (401)", &ask_click),
        ("callback", &ask_callback),
        ("complete", &ask_complete),
        ("valid token", &ask_valid),
        ("event", &ask_event),
    ];
    writeln!(
        out,
        "\nCalls behind the waits: {}.",
        steps
            .iter()
            .map(|(n, a)| format!(
                "{n}: DynamoDB {}, Miro {}",
                a.dynamodb.join(" + "),
                if a.miro_calls.is_empty() {
                    "none".to_string()
                } else {
                    a.miro_calls.join(" + ")
                }
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )?;
    if let (Some(rust), Some(peer)) = (totals.get(1), totals.last()) {
        writeln!(
            out,
            "\nA board with a valid token: miro-connect ${:.2} against the peer's ${:.2} per million \
             (medians). Both bills are mostly API Gateway and Lambda's wait on Miro (the same assumed \
             {WAIT_MIRO_BOARD_MS:.0} ms); what differs is Lambda's CPU and the log bytes (ours {:.0} a \
             request, with the metric lines; the peer's {:.0}).",
            rust.1, peer.1, warm.rust_log_bytes, warm.peer_log_bytes
        )?;
    }

    // Why the callback stays two calls, with this run's figures.
    let callback_ms = mmm(m_callback.latency.clone()).1;
    writeln!(out, "\n### The callback's round trips\n\nThe callback consumes the pending authorization and parks the \
        code in two calls ({}), {:.1} RRU and {:.1} WRU measured, {callback_ms:.2} ms at the median here. The first \
        call must return the pending item: its user, `return_to`, flow-secret hash and intent are what the parked \
        record holds and where the browser goes. One `TransactWriteItems` of the same two writes would bill \
        {:.1} WRU (transactions count double) and cannot do the job: a transaction returns no item, so the callback \
        would not know what to park or where to redirect. The only single-call form is an `UpdateItem` that parks the \
        code on the pending item itself and returns it; the completion id would then have to lead back to that item, \
        a different completion design (SECURITY.md's single-use completion), to save one in-region round trip \
        (~{WAIT_DYNAMODB_MS:.0} ms) and about one WRU once per consent. So two calls stay.",
        ask_callback.dynamodb.join(" + "), ask_callback.rru, ask_callback.wru, 2.0 * ask_callback.wru)?;
    Ok(())
}

fn json_body(completion: &str, flow_secret: &str) -> String {
    serde_json::json!({ "completion": completion, "flow_secret": flow_secret }).to_string()
}

//! Storage faults between the real handlers and the real servers: a
//! [`FaultProxy`] in front of DynamoDB Local (and of moto's Secrets Manager)
//! freezes, throttles, resets or cuts AWS's answers while a user starts,
//! completes, creates boards or an event consumer runs. Every answer must be
//! a bounded, retryable 503 (or a success), and nothing may be made twice or
//! lost.
//!
//! Each test runs its own deployment: the emulator, a fresh table, and two
//! services on it. The service under test reaches DynamoDB through the proxy
//! with the test's AWS bounds; a healthy one (straight to DynamoDB Local,
//! default bounds) does the setup and the checks after a fault, so that a
//! slow DynamoDB Local during setup can never decide an outcome.

use crate::support::{
    aws_config_at, completion_from, dynamo_client, emulator_config, fresh_table, init_logs,
    request, route, service_with, settings, test_sealer, Backend, Reply,
};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client as DynamoClient;
use lambda_http::http::{Method, StatusCode};
use lambda_runtime::{Context, LambdaEvent};
use miro_connect::clock::{Clock, OffsetClock};
use miro_connect::config::Config;
use miro_connect::domain::ConnectionKey;
use miro_connect::events::{Outcome, OutcomePublisher, PublishError};
use miro_connect::identity::AppUser;
use miro_connect::routes::Function;
use miro_connect::store::dynamo::DynamoStore;
use miro_connect::store::ConnectionStore;
use miro_connect::Service;
use miro_connect_tests::fault_proxy::{Fault, FaultProxy, Rule};
use miro_emulator::Emulator;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Tight AWS bounds for the tests where DynamoDB never answers.
const TIGHT: [(&str, &str); 3] = [
    ("AWS_ATTEMPT_TIMEOUT_MS", "300"),
    ("AWS_OPERATION_TIMEOUT_MS", "1000"),
    ("AWS_MAX_ATTEMPTS", "3"),
];
/// Room for scheduling on a loaded machine on top of a configured bound.
const SLACK: Duration = Duration::from_secs(3);

pub(crate) fn upstream(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("server URL");
    let host = url.host_str().expect("host");
    let port = url.port_or_known_default().expect("port");
    (host, port)
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address")
}

pub(crate) fn dynamodb_local_url() -> String {
    std::env::var("MIRO_CONNECT_TEST_DYNAMODB").expect(
        "MIRO_CONNECT_TEST_DYNAMODB is not set: run the tests with tests/run, which starts DynamoDB Local",
    )
}

/// One deployment: the emulator, a fresh table, the service under test
/// (DynamoDB through the proxy, the test's bounds) and a healthy one.
struct Deployment {
    emulator: Emulator,
    proxy: FaultProxy,
    direct: DynamoClient,
    table: String,
    /// The store as the healthy service sees it (straight to DynamoDB Local).
    store: Arc<DynamoStore>,
    /// The store as the service under test sees it (through the proxy).
    proxied: Arc<DynamoStore>,
    clock: Arc<OffsetClock>,
    /// The settings of the service under test, and of the healthy one.
    settings: HashMap<String, String>,
    healthy_settings: HashMap<String, String>,
    config: Config,
    /// Through the proxy, with the test's bounds.
    service: Service,
    /// Straight to DynamoDB Local, default bounds: setup and checks.
    healthy: Service,
}

impl Deployment {
    async fn new(limits: &[(&str, &str)]) -> Self {
        init_logs();
        let emulator = Emulator::start(emulator_config()).await.expect("emulator");
        let direct = dynamo_client(Backend::DynamoDbLocal).await;
        let table = fresh_table(&direct).await;
        let proxy = FaultProxy::start(upstream(&dynamodb_local_url()))
            .await
            .expect("fault proxy");
        let sealer = test_sealer();
        let clock = Arc::new(OffsetClock::default());

        let healthy_settings = settings(&emulator, &table);
        let store = Arc::new(DynamoStore::new(
            direct.clone(),
            table.clone(),
            sealer.clone(),
        ));
        let healthy = service_with(&healthy_settings, store.clone(), clock.clone());

        let mut under_test = healthy_settings.clone();
        for (k, v) in limits {
            under_test.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_lookup(|k| under_test.get(k).cloned()).expect("config");
        let client = proxied_client(&under_test, &proxy).await;
        let proxied = Arc::new(DynamoStore::new(client, table.clone(), sealer));
        let service = service_with(&under_test, proxied.clone(), clock.clone());
        Self {
            emulator,
            proxy,
            direct,
            table,
            store,
            proxied,
            clock,
            settings: under_test,
            healthy_settings,
            config,
            service,
            healthy,
        }
    }

    /// The configured bound on one AWS call, all attempts included.
    fn operation_bound(&self) -> Duration {
        Duration::from_millis(self.config.aws_limits.operation_timeout_ms)
    }

    async fn call_on(
        service: &Service,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> (Reply, Duration) {
        let mut req = request(method, path, user, body, "application/json");
        for (name, value) in headers {
            req.headers_mut()
                .insert(*name, value.parse().expect("header value"));
        }
        let started = Instant::now();
        let reply = Reply::from(route(service, req).await);
        (reply, started.elapsed())
    }

    /// A call to the service under test, and how long it took to answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> (Reply, Duration) {
        Self::call_on(&self.service, method, path, user, body, headers).await
    }

    /// A call to the healthy service.
    async fn call_healthy(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> Reply {
        Self::call_on(&self.healthy, method, path, user, body, headers)
            .await
            .0
    }

    /// Starts a flow (healthy); returns the authorize URL and the flow secret.
    async fn start_healthy(&self, user: &str) -> (String, String) {
        let started = self
            .call_healthy(Method::POST, "/miro/authorizations", Some(user), None, &[])
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
        let body = started.json();
        (
            body["authorize_url"].as_str().expect("url").to_string(),
            body["flow_secret"]
                .as_str()
                .expect("flow secret")
                .to_string(),
        )
    }

    /// The browser at Miro: Allow; returns the query Miro redirects back with.
    async fn consent(&self, authorize_url: &str) -> String {
        crate::support::consent_with(authorize_url, &[("decision", "allow")]).await
    }

    fn complete_body(completion: &str, flow_secret: &str) -> String {
        json!({ "completion": completion, "flow_secret": flow_secret }).to_string()
    }

    /// A full connect through the healthy service.
    async fn connect(&self, user: &str) {
        let (url, flow_secret) = self.start_healthy(user).await;
        let query = self.consent(&url).await;
        let back = self
            .call_healthy(
                Method::GET,
                &format!("/miro/callback?{query}"),
                None,
                None,
                &[],
            )
            .await;
        let completion = completion_from(&back);
        let done = self
            .call_healthy(
                Method::POST,
                "/miro/authorizations/complete",
                Some(user),
                Some(&Self::complete_body(&completion, &flow_secret)),
                &[],
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    }

    /// The stored access token is past its expiry by our clock: the next use refreshes.
    async fn make_refresh_due(&self, user: &str) {
        let user = AppUser::parse(user).expect("user");
        let mut c = self
            .store
            .get_connection(
                &ConnectionKey::new(&user, miro_emulator::TEAM_ID),
                self.clock.now(),
            )
            .await
            .expect("read connection")
            .expect("connected");
        c.access_expires_at = Some(self.clock.now() - 1);
        self.store
            .put_connection(&c)
            .await
            .expect("write connection");
    }

    /// The idempotency records in the table, as their `data` JSON.
    async fn idempotency_records(&self) -> Vec<serde_json::Value> {
        crate::support::scan(&self.direct, &self.table)
            .await
            .into_iter()
            .filter(|item| {
                item.get("pk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("IDEM#"))
            })
            .map(|item| match item.get("data") {
                Some(AttributeValue::S(data)) => serde_json::from_str(data).expect("data JSON"),
                other => panic!("idempotency record without data: {other:?}"),
            })
            .collect()
    }
}

/// A DynamoDB client as a function builds one (the deployment's bounds from
/// its `settings`), pointed at the proxy. Its retry partition is its own:
/// the SDK's retry quota is otherwise shared by every DynamoDB client in the
/// process, and other tests' faults must not decide how often this one retries.
pub(crate) async fn proxied_client(
    settings: &HashMap<String, String>,
    proxy: &FaultProxy,
) -> DynamoClient {
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sdk = aws_config_at(&proxy.url(), &settings).await;
    let partition = RetryPartition::custom(format!("storage-faults-{}", uuid::Uuid::new_v4()))
        .token_bucket(TokenBucket::default())
        .build();
    DynamoClient::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_partition(partition)
            .build(),
    )
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on {} {}", reply.status, reply.body))
        .to_str()
        .expect("ascii")
        .parse()
        .expect("Retry-After in seconds")
}

/// A JSON 503 with `code`, a `Retry-After`, answered within `bound`.
fn assert_503(what: &str, reply: &Reply, took: Duration, code: &str, bound: Duration) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        reply.body
    );
    assert_eq!(reply.json()["error"], code, "{what}: {}", reply.body);
    assert!(retry_after(reply) >= 1, "{what}");
    assert!(
        took < bound,
        "{what} answered after {took:?} (bound {bound:?})"
    );
}

/// The callback's 503: the static page (a browser navigation), with `Retry-After`.
fn assert_503_page(reply: &Reply, took: Duration, bound: Duration) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert!(reply.headers["content-type"]
        .to_str()
        .is_ok_and(|c| c.starts_with("text/html")));
    assert!(reply.headers.get("location").is_none());
    assert!(retry_after(reply) >= 1);
    assert!(
        took < bound,
        "callback answered after {took:?} (bound {bound:?})"
    );
}

#[tokio::test]
async fn frozen_dynamodb_answers_503_within_the_bound_for_every_flow() {
    let d = Deployment::new(&TIGHT).await;
    assert_eq!(
        d.config.request_timeout_ms,
        miro_connect::config::DEFAULT_REQUEST_TIMEOUT_MS,
        "the request budget is far away: only the AWS bounds can end a frozen call"
    );
    let bound = d.operation_bound() + SLACK;
    d.connect("ann").await;
    let (url, flow_secret) = d.start_healthy("bob").await;
    let query = d.consent(&url).await;

    d.proxy.set(Some(Fault::Freeze));
    let (started, took) = d
        .call(Method::POST, "/miro/authorizations", Some("bob"), None, &[])
        .await;
    assert_503("start", &started, took, "storage_unavailable", bound);

    let callback = format!("/miro/callback?{query}");
    let (back, took) = d.call(Method::GET, &callback, None, None, &[]).await;
    assert_503_page(&back, took, bound);

    let (created, took) = d
        .call(
            Method::POST,
            "/boards",
            Some("ann"),
            Some(r#"{"name":"Frozen"}"#),
            &[],
        )
        .await;
    assert_503("create", &created, took, "storage_unavailable", bound);
    assert!(d.emulator.boards().is_empty());

    // The frozen calls reached nothing: Miro's redirect still works once DynamoDB is back.
    d.proxy.set(None);
    let back = d
        .call_healthy(Method::GET, &callback, None, None, &[])
        .await;
    let completion = completion_from(&back);
    let body = Deployment::complete_body(&completion, &flow_secret);

    d.proxy.set(Some(Fault::Freeze));
    let (done, took) = d
        .call(
            Method::POST,
            "/miro/authorizations/complete",
            Some("bob"),
            Some(&body),
            &[],
        )
        .await;
    assert_503("complete", &done, took, "storage_unavailable", bound);
    assert!(d.proxy.faulted() >= 4, "every call met the frozen DynamoDB");

    // And the completion is still there to finish with.
    d.proxy.set(None);
    let done = d
        .call_healthy(
            Method::POST,
            "/miro/authorizations/complete",
            Some("bob"),
            Some(&body),
            &[],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let created = d
        .call_healthy(Method::POST, "/boards", Some("ann"), Some("{}"), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

#[tokio::test]
async fn throttling_is_retried_then_answered_503() {
    // Throttled answers come at once: a wide operation bound, so that all
    // the attempts fit whatever the machine's load.
    let d = Deployment::new(&[
        ("AWS_ATTEMPT_TIMEOUT_MS", "2000"),
        ("AWS_OPERATION_TIMEOUT_MS", "5000"),
        ("AWS_MAX_ATTEMPTS", "3"),
    ])
    .await;
    let attempts = d.config.aws_limits.max_attempts as usize;
    let bound = d.operation_bound() + SLACK;
    for error in [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        // DynamoDB's account-level throttle; the SDK lists it as throttling too.
        "RequestLimitExceeded",
    ] {
        let fault = match error {
            "ThrottlingException" => Fault::Throttle,
            other => Fault::ThrottleWith(other.to_string()),
        };
        let before = d.proxy.faulted();
        d.proxy.set(Some(fault));
        // Starting a flow makes one DynamoDB call before anything else.
        let (reply, took) = d
            .call(Method::POST, "/miro/authorizations", Some("cat"), None, &[])
            .await;
        d.proxy.set(None);
        assert_503(error, &reply, took, "storage_unavailable", bound);
        assert_eq!(
            d.proxy.faulted() - before,
            attempts,
            "{error}: the SDK tried the one call AWS_MAX_ATTEMPTS times"
        );
    }
    let (reply, _) = d
        .call(Method::POST, "/miro/authorizations", Some("cat"), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn a_reset_while_storing_refreshed_tokens_loses_no_refresh_token() {
    for fault in [Fault::ResetAfterForward, Fault::Reset] {
        let d = Deployment::new(&[]).await;
        d.connect("cyd").await;
        assert_eq!(d.emulator.token_calls(), 1);
        d.make_refresh_due("cyd").await;
        let faulted = d.proxy.faulted();
        // The write of the refreshed tokens (the connection item), once.
        d.proxy.inject(
            Rule::new(fault.clone())
                .target("PutItem")
                .body_contains("CONN#")
                .times(1),
        );
        let (first, _) = d
            .call(
                Method::POST,
                "/boards",
                Some("cyd"),
                Some(r#"{"name":"Through the reset"}"#),
                &[],
            )
            .await;
        assert!(
            d.proxy.rules().is_empty(),
            "{fault:?}: the token write met the fault"
        );
        assert_eq!(d.proxy.faulted() - faulted, 1);
        assert_eq!(d.emulator.token_calls(), 2, "{fault:?}: one refresh");
        match first.status {
            StatusCode::CREATED => {}
            // Failing safe: retryable, and nothing else may go wrong below.
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after(&first) >= 1);
            }
            other => panic!("{fault:?}: {other} {}", first.body),
        }

        let (second, _) = d
            .call(
                Method::POST,
                "/boards",
                Some("cyd"),
                Some(r#"{"name":"After the reset"}"#),
                &[],
            )
            .await;
        assert_eq!(
            second.status,
            StatusCode::CREATED,
            "{fault:?}: {}",
            second.body
        );
        assert_eq!(
            d.emulator.token_calls(),
            2,
            "{fault:?}: no second refresh, no new consent"
        );
        assert_eq!(d.emulator.live_grants(), 1, "{fault:?}");

        // What is stored is what Miro holds: the next refresh works.
        d.make_refresh_due("cyd").await;
        let (third, _) = d
            .call(
                Method::POST,
                "/boards",
                Some("cyd"),
                Some(r#"{"name":"Next refresh"}"#),
                &[],
            )
            .await;
        assert_eq!(
            third.status,
            StatusCode::CREATED,
            "{fault:?}: {}",
            third.body
        );
        assert_eq!(d.emulator.token_calls(), 3, "{fault:?}");
        assert_eq!(d.emulator.live_grants(), 1, "{fault:?}");
        let made = usize::from(first.status == StatusCode::CREATED) + 2;
        assert_eq!(d.emulator.boards().len(), made, "{fault:?}");
    }
}

#[tokio::test]
async fn a_cut_claim_answer_makes_no_second_board() {
    let d = Deployment::new(&[]).await;
    d.connect("dot").await;
    // The idempotency claim lands; its answer arrives cut in half.
    d.proxy.inject(
        Rule::new(Fault::CutResponse)
            .target("PutItem")
            .body_contains("IDEM#")
            .times(1),
    );
    let body = r#"{"name":"Cut claim"}"#;
    let key = [("idempotency-key", "k1")];
    let (first, _) = d
        .call(Method::POST, "/boards", Some("dot"), Some(body), &key)
        .await;
    assert!(d.proxy.rules().is_empty(), "the claim met the fault");
    let (retry, _) = d
        .call(Method::POST, "/boards", Some("dot"), Some(body), &key)
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    match first.status {
        StatusCode::CREATED => {
            assert_eq!(first.json()["board"], retry.json()["board"]);
            assert_eq!(retry.headers["idempotency-replayed"], "true");
        }
        StatusCode::SERVICE_UNAVAILABLE => assert!(retry_after(&first) >= 1),
        other => panic!("the first answered {other} {}", first.body),
    }
    assert_eq!(d.emulator.boards().len(), 1, "exactly one board at Miro");
    let board = retry.json()["board"].clone();
    assert_eq!(board["id"], d.emulator.boards()[0].id.as_str());

    // Settled for good: a third try replays the same board.
    let (again, _) = d
        .call(Method::POST, "/boards", Some("dot"), Some(body), &key)
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.headers["idempotency-replayed"], "true");
    assert_eq!(again.json()["board"], board);
    let records = d.idempotency_records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"]["state"], "created", "{records:?}");
    assert_eq!(d.emulator.boards().len(), 1);
}

#[tokio::test]
async fn a_request_that_cannot_finish_in_time_answers_503() {
    let d = Deployment::new(&[
        ("REQUEST_TIMEOUT_MS", "800"),
        ("AWS_ATTEMPT_TIMEOUT_MS", "2000"),
        ("AWS_OPERATION_TIMEOUT_MS", "5000"),
    ])
    .await;
    let budget = Duration::from_millis(d.config.request_timeout_ms) + SLACK;
    let (url, _) = d.start_healthy("eve").await;
    let query = d.consent(&url).await;

    // Each DynamoDB call takes 600 ms, within every AWS bound; a start
    // (count the flow, store it) and a callback (take the state, park the
    // code) each make two, one after the other: past the 800 ms budget.
    d.proxy
        .set(Some(Fault::Latency(Duration::from_millis(600))));
    let (started, took) = d
        .call(Method::POST, "/miro/authorizations", Some("eve"), None, &[])
        .await;
    assert_503("start", &started, took, "request_timeout", budget);
    let (back, took) = d
        .call(
            Method::GET,
            &format!("/miro/callback?{query}"),
            None,
            None,
            &[],
        )
        .await;
    assert_503_page(&back, took, budget);
    assert!(d.proxy.faulted() >= 2);
}

/// Records outcomes instead of publishing them (this test is about DynamoDB).
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Outcome>>>);

impl Recorder {
    fn outcomes(&self) -> Vec<Outcome> {
        self.0.lock().expect("lock").clone()
    }
}

impl OutcomePublisher for Recorder {
    fn publish<'a, 'b, 'c>(
        &'a self,
        outcome: &'b Outcome,
    ) -> Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'c>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            self.0.lock().expect("lock").push(outcome.clone());
            Ok(())
        })
    }
}

fn board_message(id: &str, user: &str, name: &str) -> SqsMessage {
    let envelope = json!({
        "id": format!("event-{id}"),
        "detail-type": miro_connect::events::REQUESTED,
        "source": "test.app",
        "detail": { "user_id": user, "board": { "name": name } },
    });
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_string());
    message.receipt_handle = Some(format!("receipt-{id}"));
    message.body = Some(envelope.to_string());
    message
}

/// One invocation with `deadline_in` left; the ids handed back, and how long it took.
async fn invoke(
    app: &board_events::App,
    records: Vec<SqsMessage>,
    deadline_in: Duration,
) -> (Vec<String>, Duration) {
    let mut event = SqsEvent::default();
    event.records = records;
    let mut context = Context::default();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64;
    context.deadline = now_ms + deadline_in.as_millis() as u64;
    let started = Instant::now();
    let response = board_events::handle(app, LambdaEvent::new(event, context))
        .await
        .expect("handler");
    let mut ids: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    ids.sort();
    (ids, started.elapsed())
}

#[tokio::test]
async fn the_consumer_hands_messages_back_when_dynamodb_freezes() {
    let d = Deployment::new(&TIGHT).await;
    d.connect("fin").await;
    let recorder = Recorder::default();
    let consumer = board_events::App {
        service: service_with(&d.settings, d.proxied.clone(), d.clock.clone()),
        publisher: Box::new(recorder.clone()),
    };
    let batch = vec![
        board_message("m-1", "fin", "Queued 1"),
        board_message("m-2", "fin", "Queued 2"),
    ];
    let ids = vec!["m-1".to_string(), "m-2".to_string()];

    d.proxy.set(Some(Fault::Freeze));
    // About 3 s left: the consumer keeps 3 s of an invocation back to answer
    // in, so it works for half a second, less than the storage bound, and
    // hands both back when that runs out: before the invocation's deadline.
    let deadline = Duration::from_millis(3_500);
    let (back, took) = invoke(&consumer, batch.clone(), deadline).await;
    assert_eq!(back, ids, "both handed back");
    assert!(took < deadline, "answered after {took:?}");

    // With time to spare, the storage bound (not the deadline) ends the
    // wait, and storage being down is worth a redelivery.
    let (back, took) = invoke(&consumer, batch.clone(), Duration::from_secs(60)).await;
    assert_eq!(back, ids, "both handed back");
    let bound = d.operation_bound() + SLACK;
    assert!(took < bound, "answered after {took:?} (bound {bound:?})");
    assert!(d.emulator.boards().is_empty(), "no board while frozen");
    assert!(
        recorder.outcomes().is_empty(),
        "nothing settled while frozen"
    );

    // The redelivery, once DynamoDB is back, makes each board once.
    d.proxy.set(None);
    let healthy = board_events::App {
        service: service_with(&d.healthy_settings, d.store.clone(), d.clock.clone()),
        publisher: Box::new(recorder.clone()),
    };
    let (back, _) = invoke(&healthy, batch, Duration::from_secs(60)).await;
    assert!(back.is_empty(), "{back:?}");
    let mut names: Vec<String> = d.emulator.boards().into_iter().map(|b| b.name).collect();
    names.sort();
    assert_eq!(names, vec!["Queued 1".to_string(), "Queued 2".to_string()]);
    assert_eq!(recorder.outcomes().len(), 2);
    assert!(recorder
        .outcomes()
        .iter()
        .all(|o| matches!(o, Outcome::Created(_))));
}

#[tokio::test]
async fn secrets_manager_frozen_at_cold_start_fails_init_fast() {
    // The real create-board Lambda binary, built as it is now.
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = tokio::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", Function::CreateBoard.name()])
        .current_dir(&workspace)
        .status()
        .await
        .expect("cargo build");
    assert!(built.success(), "building create-board failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    let binary = target.join("debug").join(Function::CreateBoard.name());
    assert!(binary.exists(), "{}", binary.display());

    let emulator = Emulator::start(emulator_config()).await.expect("emulator");
    let proxy = FaultProxy::start(upstream(&crate::support::moto_endpoint()))
        .await
        .expect("fault proxy");
    proxy.set(Some(Fault::Freeze));
    let sealing_keys = miro_connect::seal::Sealer::generate_key_ring_entry("cold");
    let mut env = crate::support::settings(&emulator, "cold-start-table");
    for (k, v) in [
        ("TOKEN_SEALING_KEYS", sealing_keys.expose()),
        (
            "MIRO_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        ),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &proxy.url()),
        ("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb_local_url()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_OPERATION_TIMEOUT_MS", "1000"),
        ("AWS_ATTEMPT_TIMEOUT_MS", "300"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ("RUST_LOG", "info"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    let started = Instant::now();
    let child = tokio::process::Command::new(&binary)
        .env_clear()
        .envs(&env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn create-board");
    let out = match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
        Ok(out) => out.expect("create-board output"),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => panic!("create-board still running after 60 s: killed"),
    };
    let took = started.elapsed();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "init did not fail: {output}");
    let bound = Duration::from_millis(1000) + Duration::from_secs(5);
    assert!(took < bound, "init failed after {took:?} (bound {bound:?})");
    assert!(
        output.contains("cold start failed"),
        "the operator's log line is missing: {output}"
    );
    assert!(
        proxy.requests() >= 1,
        "Secrets Manager was asked (through the proxy)"
    );
    let sealing_key = sealing_keys.expose().split(':').nth(1).expect("id:key");
    for secret in [emulator.config().client_secret.as_str(), sealing_key] {
        assert!(!output.contains(secret), "a secret reached the output");
    }
}

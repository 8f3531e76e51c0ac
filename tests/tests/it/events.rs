//! Board creation from AWS events, against moto's SQS and EventBridge,
//! DynamoDB Local and the emulator: exactly once, within Miro's rate limits,
//! and with no message lost under faults.

use crate::support::{aws_config, service_with, Backend, TestApp};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::QueueAttributeName;
use lambda_http::http::{Method, StatusCode};
use lambda_runtime::{Context, LambdaEvent};
use miro_connect::events::{CreatedDetail, EventBridgePublisher, FailedDetail, REQUESTED, SOURCE};
use miro_emulator::{BoardFault, EmulatorConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A bus with the template's rule (requests → a queue) and a test rule
/// (outcomes → a queue the test reads), all on moto.
pub(crate) struct Bus {
    sqs: aws_sdk_sqs::Client,
    pub(crate) events: aws_sdk_eventbridge::Client,
    pub(crate) name: String,
    requests: String,
    outcomes: String,
}

impl Bus {
    pub(crate) async fn new() -> Self {
        let aws = aws_config(Backend::Moto).await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let events = aws_sdk_eventbridge::Client::new(&aws);
        let name = format!("bus-{}", uuid::Uuid::new_v4());
        events
            .create_event_bus()
            .name(&name)
            .send()
            .await
            .expect("bus");
        let mut bus = Bus {
            sqs,
            events,
            name,
            requests: String::new(),
            outcomes: String::new(),
        };
        bus.requests = bus
            .queue_for("requests", json!({ "detail-type": [REQUESTED] }))
            .await;
        bus.outcomes = bus
            .queue_for("outcomes", json!({ "source": [SOURCE] }))
            .await;
        bus
    }

    async fn queue_for(&self, what: &str, pattern: Value) -> String {
        let url = self
            .sqs
            .create_queue()
            .queue_name(format!("{what}-{}", uuid::Uuid::new_v4()))
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("url");
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("arn");
        let rule = format!("{what}-rule");
        self.events
            .put_rule()
            .name(&rule)
            .event_bus_name(&self.name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .expect("rule");
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(arn)
            .build()
            .expect("target");
        self.events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&self.name)
            .targets(target)
            .send()
            .await
            .expect("targets");
        url
    }

    /// What another AWS service does to ask for a board.
    pub(crate) async fn request_board(&self, detail: Value) {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source("test.app")
            .detail_type(REQUESTED)
            .detail(detail.to_string())
            .build();
        let out = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .expect("put events");
        assert_eq!(out.failed_entry_count(), 0);
    }

    /// Up to `count` messages from `queue`, waiting a bounded time for them.
    async fn receive(&self, queue: &str, count: usize) -> Vec<aws_sdk_sqs::types::Message> {
        let mut got = Vec::new();
        for _ in 0..20 {
            if got.len() >= count {
                break;
            }
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            got.extend(out.messages.unwrap_or_default());
        }
        got
    }

    pub(crate) async fn requests(&self, count: usize) -> Vec<SqsMessage> {
        let messages = self.receive(&self.requests, count).await;
        assert_eq!(
            messages.len(),
            count,
            "every request event reached the queue"
        );
        messages
            .into_iter()
            .map(|m| {
                let mut message = SqsMessage::default();
                message.message_id = m.message_id;
                message.receipt_handle = m.receipt_handle;
                message.body = m.body;
                message
            })
            .collect()
    }

    /// The lifecycle events published so far (waiting, bounded, for
    /// `expected`), as (detail-type, detail); board outcomes are left out.
    pub(crate) async fn lifecycle(&self, expected: usize) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        // Bounded; once `expected` are in, one empty read ends it (so that
        // one more than expected is caught too).
        for _ in 0..20 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.outcomes)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() && seen.len() >= expected {
                break;
            }
            for m in messages {
                let event: Value =
                    serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("event");
                assert_eq!(event["source"], SOURCE);
                let kind = event["detail-type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if !kind.starts_with("Miro Board") {
                    seen.push((kind, event["detail"].clone()));
                }
            }
        }
        seen
    }

    /// The outcome events published so far: (created, failed).
    pub(crate) async fn outcomes(
        &self,
        expected: usize,
    ) -> (Vec<CreatedDetail>, Vec<FailedDetail>) {
        let mut created = Vec::new();
        let mut failed = Vec::new();
        for m in self.receive(&self.outcomes, expected).await {
            let event: Value =
                serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("event");
            assert_eq!(event["source"], SOURCE);
            match event["detail-type"].as_str() {
                Some("Miro Board Created") => {
                    created.push(serde_json::from_value(event["detail"].clone()).expect("created"))
                }
                Some("Miro Board Creation Failed") => {
                    failed.push(serde_json::from_value(event["detail"].clone()).expect("failed"))
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        (created, failed)
    }
}

/// The consumer as the Lambda runtime runs it, on the deployment's table and bus.
pub(crate) async fn consumer(
    app: &TestApp,
    bus: &Bus,
    settings: &HashMap<String, String>,
) -> board_events::App {
    let service = service_with(settings, app.store.clone(), app.clock.clone());
    let publisher = EventBridgePublisher::new(bus.events.clone(), bus.name.clone());
    board_events::App {
        service,
        publisher: Box::new(publisher),
    }
}

pub(crate) async fn invoke(
    app: &board_events::App,
    records: Vec<SqsMessage>,
    seconds_left: u64,
) -> Vec<String> {
    let mut event = SqsEvent::default();
    event.records = records;
    let mut context = Context::default();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64;
    context.deadline = now_ms + seconds_left * 1000;
    let response = board_events::handle(app, LambdaEvent::new(event, context))
        .await
        .expect("handler");
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

fn ask(user: &str, name: &str) -> Value {
    json!({ "user_id": user, "board": { "name": name } })
}

#[tokio::test]
async fn the_same_message_three_times_makes_one_board() {
    let app = TestApp::new().await;
    app.connect("eva").await;
    let bus = Bus::new().await;
    let consumer = consumer(&app, &bus, &app.settings).await;
    bus.request_board(ask("eva", "Once")).await;
    let message = bus.requests(1).await.remove(0);
    for _ in 0..3 {
        assert!(invoke(&consumer, vec![message.clone()], 30)
            .await
            .is_empty());
    }
    assert_eq!(app.emulator.boards().len(), 1);
    let (created, failed) = bus.outcomes(3).await;
    assert!(failed.is_empty());
    assert_eq!(created.len(), 3, "each delivery reports the one board");
    assert!(created
        .iter()
        .all(|c| c.board_id == created[0].board_id && c.user_id == "eva"));

    // Two events carrying the same idempotency key are one board too.
    for _ in 0..2 {
        bus.request_board(json!({ "user_id": "eva", "board": { "name": "Keyed" }, "idempotency_key": "order-17" })).await;
    }
    let messages = bus.requests(2).await;
    // Handled at once, the second finds the first in progress, waits for it
    // and replays its board: neither goes back to the queue for a visibility
    // timeout.
    assert!(invoke(&consumer, messages, 30).await.is_empty());
    let (created, failed) = bus.outcomes(2).await;
    assert!(failed.is_empty());
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].board_id, created[1].board_id);
    assert_eq!(
        app.emulator
            .boards()
            .iter()
            .filter(|b| b.name == "Keyed")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_batch_of_ten_with_two_bad_messages() {
    let app = TestApp::new().await;
    app.connect("fay").await;
    let bus = Bus::new().await;
    let consumer = consumer(&app, &bus, &app.settings).await;
    for i in 0..8 {
        bus.request_board(ask("fay", &format!("Board {i}"))).await;
    }
    bus.request_board(ask("fay", &"x".repeat(61))).await;
    bus.request_board(ask("not-connected", "Never")).await;
    let messages = bus.requests(10).await;

    let retry = invoke(&consumer, messages, 60).await;
    assert!(
        retry.is_empty(),
        "permanent failures are published, not retried: {retry:?}"
    );
    assert_eq!(app.emulator.boards().len(), 8);
    let (created, failed) = bus.outcomes(10).await;
    assert_eq!(created.len(), 8);
    assert_eq!(failed.len(), 2);
    let by_reason: HashMap<&str, &FailedDetail> =
        failed.iter().map(|f| (f.reason.as_str(), f)).collect();
    assert_eq!(by_reason["invalid_board"].user_id.as_deref(), Some("fay"));
    let not_connected = by_reason["miro_authorization_required"];
    assert_eq!(not_connected.user_id.as_deref(), Some("not-connected"));
    // An event starts no flow: whoever reads the bus gets no consent link
    // bound to this user, and no pending authorization was stored for one.
    let pending = crate::support::scan(&app.dynamo, &app.table)
        .await
        .into_iter()
        .filter(|item| {
            item.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("AUTHZ#"))
        })
        .count();
    assert_eq!(pending, 0, "an event started a flow");
}

#[tokio::test]
async fn the_same_idempotency_key_twice_on_post_boards_is_one_board() {
    let app = TestApp::new().await;
    app.connect("gil").await;
    let post = |body: &'static str, key: &'static str| {
        let req = crate::support::request(
            Method::POST,
            "/boards",
            Some("gil"),
            Some(body),
            "application/json",
        );
        let mut req = req;
        req.headers_mut()
            .insert("idempotency-key", key.parse().expect("header"));
        crate::support::route(&app.service, req)
    };
    let first: crate::support::Reply = post(r#"{"name":"Keyed"}"#, "k-1").await.into();
    let second: crate::support::Reply = post(r#"{"name":"Keyed"}"#, "k-1").await.into();
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.json()["board"], second.json()["board"]);
    assert_eq!(second.headers["idempotency-replayed"], "true");
    assert_eq!(app.emulator.boards().len(), 1);

    let reused: crate::support::Reply = post(r#"{"name":"Other"}"#, "k-1").await.into();
    reused.assert_client_error(422, "idempotency_key_reused");
    let bad: crate::support::Reply = post(r#"{"name":"Other"}"#, "").await.into();
    bad.assert_client_error(400, "invalid_parameter");
    assert_eq!(app.emulator.boards().len(), 1);
}

#[tokio::test]
async fn a_burst_into_the_rate_limit_waits_for_the_reset() {
    let app = TestApp::with_emulator(EmulatorConfig {
        board_rate_limit: Some((4, 2)),
        ..crate::support::emulator_config()
    })
    .await;
    app.connect("hal").await;
    let bus = Bus::new().await;
    let consumer = consumer(&app, &bus, &app.settings).await;
    for i in 0..12 {
        bus.request_board(ask("hal", &format!("Burst {i}"))).await;
    }
    let messages = bus.requests(12).await;
    let retry = invoke(&consumer, messages, 60).await;
    assert!(retry.is_empty(), "{retry:?}");
    let boards = app.emulator.boards();
    assert_eq!(boards.len(), 12);
    let mut names: Vec<_> = boards.iter().map(|b| b.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 12, "every board once");
    let (limited, after_limit) = app.emulator.rate_limit_stats();
    assert!(limited >= 1, "the burst did run into the limit");
    // After the first 429 of a window, what may still arrive in it is what
    // was in flight (at most CONCURRENCY - 1 others) plus what a task that
    // finished with a 201 started before the 429 had closed the gate (at
    // most as many again). A consumer that did not wait would send every
    // message again and again.
    assert!(
        after_limit < 2 * board_events::CONCURRENCY,
        "after a 429 only requests already under way arrived before the reset ({after_limit})"
    );
}

#[tokio::test]
async fn a_wait_longer_than_the_invocation_goes_back_to_the_queue() {
    let app = TestApp::with_emulator(EmulatorConfig {
        board_rate_limit: Some((1, 60)),
        ..crate::support::emulator_config()
    })
    .await;
    app.connect("ida").await;
    let bus = Bus::new().await;
    let consumer = consumer(&app, &bus, &app.settings).await;
    for i in 0..3 {
        bus.request_board(ask("ida", &format!("Slow {i}"))).await;
    }
    let messages = bus.requests(3).await;
    let started = std::time::Instant::now();
    let retry = invoke(&consumer, messages, 8).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "gave up within the invocation"
    );
    assert!(app.emulator.boards().len() <= 1);
    assert_eq!(
        retry.len() + app.emulator.boards().len(),
        3,
        "the rest come back, none lost"
    );
}

#[tokio::test]
async fn faults_never_duplicate_a_board_or_lose_a_message() {
    let app = TestApp::new().await;
    app.connect("jon").await;
    app.connect("kai").await;
    let bus = Bus::new().await;
    let mut settings = app.settings.clone();
    settings.insert("MIRO_TIMEOUT_MS".into(), "800".into());
    let consumer = consumer(&app, &bus, &settings).await;
    app.emulator.inject_board_faults(&[
        BoardFault::FailBefore(503),
        BoardFault::FailAfter(500),
        BoardFault::SlowAfter(2_000),
        BoardFault::DropAfter,
    ]);
    for i in 0..6 {
        bus.request_board(ask("jon", &format!("Faulty {i}"))).await;
    }
    // kai's token is due and the token endpoint is down: retry later.
    app.make_refresh_due("kai").await;
    app.emulator.fail_token_endpoint(Some(502));
    bus.request_board(ask("kai", "Later")).await;
    let messages = bus.requests(7).await;

    let mut retry = invoke(&consumer, messages.clone(), 60).await;
    let kai_message = messages
        .iter()
        .find(|m| m.body.as_deref().is_some_and(|b| b.contains("kai")))
        .expect("kai");
    assert_eq!(
        retry,
        vec![kai_message.message_id.clone().expect("id")],
        "only the transient failure comes back"
    );

    // Redeliver everything (as SQS would after a crash), then kai's once Miro is back.
    app.emulator.fail_token_endpoint(None);
    // Past the cooldown the failed refresh left.
    app.clock.advance(31);
    retry.extend(invoke(&consumer, messages.clone(), 60).await);
    assert_eq!(
        retry.len(),
        1,
        "the token endpoint is back: nothing comes back again"
    );

    let boards = app.emulator.boards();
    let mut names: Vec<_> = boards.iter().map(|b| b.name.clone()).collect();
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), total, "no board was created twice");
    assert!(names.contains(&"Later".to_string()));

    let (created, failed) = bus.outcomes(14).await;
    // Every jon message settled the same way both times: created, or a
    // published permanent failure whose board may or may not exist.
    for i in 0..6 {
        let name = format!("Faulty {i}");
        let c = created.iter().filter(|c| c.name == name).count();
        assert!(c == 2 || c == 0, "{name}: {c} created events");
    }
    assert_eq!(
        failed
            .iter()
            .filter(|f| f.reason == "miro_outcome_unknown")
            .count(),
        8,
        "4 faults, twice each"
    );
    assert_eq!(
        created.iter().filter(|c| c.user_id == "jon").count(),
        4,
        "2 clean boards, twice each"
    );
    assert_eq!(created.iter().filter(|c| c.user_id == "kai").count(), 1);
}

#[tokio::test]
async fn a_board_from_a_template_redelivered_three_times_is_one_board_with_every_invitation() {
    let app = TestApp::new().await;
    app.connect("ria").await;
    let template = app
        .emulator
        .add_template(miro_emulator::TEAM_ID, "Retro template", "retro-v1");
    let bus = Bus::new().await;
    let consumer = consumer(&app, &bus, &app.settings).await;
    bus.request_board(json!({
        "user_id": "ria",
        "board": {
            "name": "Event retro",
            "template_board_id": template,
            "members": crate::templates::retro_members(1),
        },
    }))
    .await;
    let message = bus.requests(1).await.remove(0);
    // The second invitation chunk fails at Miro while the first two
    // deliveries last (each retries it until its invocation runs short, and
    // records where it stopped).
    let mut faults = vec![BoardFault::Pass];
    faults.extend([BoardFault::FailBefore(503); 40]);
    app.emulator.inject_member_faults(&faults);
    for delivery in 0..2 {
        let back = invoke(&consumer, vec![message.clone()], 6).await;
        assert_eq!(back.len(), 1, "delivery {delivery} handed the message back");
    }
    app.emulator.clear_member_faults();
    for _ in 0..2 {
        assert!(invoke(&consumer, vec![message.clone()], 30)
            .await
            .is_empty());
    }

    let copies: Vec<_> = app
        .emulator
        .boards()
        .into_iter()
        .filter(|b| b.copied_from.as_deref() == Some(template.as_str()))
        .collect();
    assert_eq!(copies.len(), 1, "one board, whatever the deliveries");
    let calls = app.emulator.member_calls();
    assert_eq!(calls.len(), 3, "each chunk carried out once");
    assert!(calls.iter().all(|c| c.emails.len() <= 20));
    let (created, failed) = bus.outcomes(2).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(created.len(), 2, "the finishing delivery and the replay");
    for c in &created {
        assert_eq!(c.board_id, copies[0].id);
        let invitations = c.invitations.as_ref().expect("invitations");
        assert_eq!(invitations.invited.len(), 44);
        assert_eq!(invitations.failed.len(), 1);
    }
}

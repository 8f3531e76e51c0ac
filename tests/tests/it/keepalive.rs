//! Operating it: lifecycle events on the bus (moto's EventBridge and SQS),
//! and the keep-alive sweep against the emulator on DynamoDB Local.

use crate::events::Bus;
use crate::support::{service_with, TestApp};
use futures_util::StreamExt;
use lambda_http::http::{Method, StatusCode};
use miro_connect::domain::ConnectionKey;
use miro_connect::events::EventBridgePublisher;
use miro_connect::identity::AppUser;
use miro_connect::service::keepalive::SweepReport;
use miro_connect::store::ConnectionStore;
use miro_emulator::{MIRO_USER_ID, SECOND_TEAM_ID, TEAM_ID};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;

/// A deployment whose service publishes lifecycle events on a moto bus.
async fn on_bus(extra: &[(&str, &str)]) -> (TestApp, Bus) {
    let mut app = TestApp::with(crate::support::emulator_config(), extra).await;
    let bus = Bus::new().await;
    app.service =
        service_with(&app.settings, app.store.clone(), app.clock.clone()).with_lifecycle(Arc::new(
            EventBridgePublisher::new(bus.events.clone(), bus.name.clone()),
        ));
    (app, bus)
}

async fn sweep(app: &TestApp) -> SweepReport {
    app.service
        .sweep(Instant::now() + Duration::from_secs(60))
        .await
        .expect("sweep")
}

/// Our clock and Miro's move on together.
fn days_pass(app: &TestApp, days: i64) {
    app.clock.advance(days * DAY);
    app.emulator.advance_clock(days * DAY);
}

fn event(kind: &str, detail: Value) -> (String, Value) {
    (kind.to_string(), detail)
}

fn sorted(mut events: Vec<(String, Value)>) -> Vec<(String, Value)> {
    events.sort_by_key(|(k, d)| format!("{k}{d}"));
    events
}

#[tokio::test]
async fn each_lifecycle_event_is_published_exactly_when_it_should_be() {
    let (app, bus) = on_bus(&[]).await;
    app.connect("vic").await;
    let asked = app
        .create_board("vic", &json!({ "team_id": SECOND_TEAM_ID }).to_string())
        .await;
    asked.assert_client_error(401, "miro_authorization_required");
    let made = app.create_board("vic", r#"{"name":"Quiet"}"#).await;
    assert_eq!(
        made.status,
        StatusCode::CREATED,
        "a board announces nothing"
    );
    for _ in 0..2 {
        let gone = app
            .call(Method::DELETE, "/miro/connections", Some("vic"), None)
            .await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
    }

    // A grant Miro killed, found out by a user's request.
    app.connect("wil").await;
    app.emulator.kill_all_grants();
    app.expire_access_token("wil").await;
    let dead = app.create_board("wil", r#"{"name":"Dead"}"#).await;
    dead.assert_client_error(401, "miro_authorization_required");

    let published = bus.lifecycle(6).await;
    assert_eq!(
        sorted(published),
        sorted(vec![
            event(
                "Miro Connected",
                json!({ "user_id": "vic", "team_id": TEAM_ID, "miro_user_id": MIRO_USER_ID })
            ),
            event(
                "Miro Reauthorization Required",
                json!({ "user_id": "vic", "team_id": SECOND_TEAM_ID })
            ),
            event(
                "Miro Disconnected",
                json!({ "user_id": "vic", "team_id": TEAM_ID, "reason": "user_request" })
            ),
            event(
                "Miro Connected",
                json!({ "user_id": "wil", "team_id": TEAM_ID, "miro_user_id": MIRO_USER_ID })
            ),
            event(
                "Miro Disconnected",
                json!({ "user_id": "wil", "team_id": TEAM_ID, "reason": "grant_rejected" })
            ),
            event("Miro Reauthorization Required", json!({ "user_id": "wil" })),
        ]),
        "once each, the second disconnect and the plain board announcing nothing"
    );
}

#[tokio::test]
async fn a_connection_three_days_from_its_end_is_refreshed_and_needs_no_consent_after_sixty_days() {
    let (app, bus) = on_bus(&[]).await;
    app.connect("xia").await;
    let before = app.connection("xia").await.expect("connected");
    days_pass(&app, 57);
    let report = sweep(&app).await;
    assert_eq!(
        (report.due, report.refreshed, report.errors),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(app.emulator.token_calls(), 2, "one refresh");
    let after = app.connection("xia").await.expect("still connected");
    assert_eq!(after.version, before.version + 1);
    assert!(
        after.refresh_expires_at > before.refresh_expires_at,
        "60 days again"
    );

    // Well past the first refresh token's 60 days: no consent needed.
    days_pass(&app, 10);
    let made = app.create_board("xia", r#"{"name":"Day 67"}"#).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let kinds: Vec<String> = bus.lifecycle(1).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["Miro Connected"], "nothing expiring, nothing lost");
}

#[tokio::test]
async fn a_connection_revoked_at_miro_is_found_by_the_sweep_and_reported() {
    let (app, bus) = on_bus(&[]).await;
    app.connect("yas").await;
    app.connect("zed").await;
    // Both users revoke the app at Miro; Miro tells nobody.
    app.emulator.kill_all_grants();

    // yas's access token is still fresh: the idle-connection probe (Miro's
    // token context) finds the revocation. (Its idle spell is shortened by
    // moving its next sweep to now.)
    let yas = app.connection("yas").await.expect("connected");
    assert!(app
        .store
        .reschedule_sweep(&yas.key, yas.version, app.clock_now() - 1)
        .await
        .expect("reschedule"));
    let report = sweep(&app).await;
    assert_eq!((report.due, report.revoked), (1, 1), "{report:?}");
    assert!(app.connection("yas").await.is_none(), "removed");

    // zed is found a week later, its access token long expired: the refresh
    // the sweep needs is refused, which is the same news.
    days_pass(&app, 8);
    let report = sweep(&app).await;
    assert_eq!((report.due, report.revoked), (1, 1), "{report:?}");
    assert!(app.connection("zed").await.is_none());

    let published: Vec<(String, Value)> = bus
        .lifecycle(4)
        .await
        .into_iter()
        .filter(|(k, _)| k == "Miro Disconnected")
        .collect();
    assert_eq!(
        sorted(published),
        sorted(vec![
            event(
                "Miro Disconnected",
                json!({ "user_id": "yas", "team_id": TEAM_ID, "reason": "revoked_at_miro" })
            ),
            event(
                "Miro Disconnected",
                json!({ "user_id": "zed", "team_id": TEAM_ID, "reason": "grant_rejected" })
            ),
        ])
    );
}

#[tokio::test]
async fn without_keep_alive_the_app_hears_of_the_end_before_and_when_it_comes() {
    let (app, bus) = on_bus(&[("KEEPALIVE_REFRESH", "false")]).await;
    app.connect("abe").await;
    days_pass(&app, 54);
    let report = sweep(&app).await;
    assert_eq!((report.expiring, report.refreshed), (1, 0), "{report:?}");
    assert_eq!(app.emulator.token_calls(), 1, "nothing refreshed");
    assert_eq!(sweep(&app).await.due, 0, "announced once");
    days_pass(&app, 7);
    let report = sweep(&app).await;
    assert_eq!(report.expired, 1, "{report:?}");

    let kinds: Vec<(String, Value)> = bus.lifecycle(3).await;
    let expiring = kinds
        .iter()
        .filter(|(k, _)| k == "Miro Connection Expiring")
        .count();
    assert_eq!(expiring, 1);
    assert!(kinds.contains(&event(
        "Miro Disconnected",
        json!({ "user_id": "abe", "team_id": TEAM_ID, "reason": "expired_idle" })
    )));
}

#[tokio::test]
async fn two_sweeps_and_a_user_request_at_once_make_one_refresh() {
    let app = TestApp::new().await;
    app.connect("bo").await;
    days_pass(&app, 57);
    let (a, b, made) = tokio::join!(
        sweep(&app),
        sweep(&app),
        app.create_board("bo", r#"{"name":"Meanwhile"}"#)
    );
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(a.errors + b.errors, 0, "{a:?} {b:?}");
    assert_eq!(
        app.emulator.token_calls(),
        2,
        "one code exchange, one refresh"
    );
}

#[tokio::test]
async fn with_ten_thousand_connections_the_sweep_reads_only_the_fifty_due() {
    use miro_connect_tests::fault_proxy::FaultProxy;
    let app = TestApp::with(
        crate::support::emulator_config(),
        &[("KEEPALIVE_REFRESH", "false")],
    )
    .await;
    let now = app.clock_now();
    let connection = |i: usize, sweep_at: i64| miro_connect::domain::Connection {
        key: ConnectionKey::new(
            &AppUser::parse(&format!("bulk-{i}")).expect("user"),
            TEAM_ID,
        ),
        profile: miro_connect::domain::ConnectionProfile {
            miro_user_id: None,
            team_name: None,
            scopes: vec![],
            connected_at: now,
        },
        access_token: miro_connect::secret::Secret::random(),
        refresh_token: Some(miro_connect::secret::Secret::random()),
        access_expires_at: Some(now + 3600),
        refresh_expires_at: Some(now + 50 * DAY),
        version: 1,
        lease_until: None,
        refresh_retry_at: None,
        sweep_at,
    };
    // 10,000 connections; every 200th is due (a few days ago), the rest
    // fall due over the coming weeks.
    let store = app.store.clone();
    let writes = futures_util::stream::iter(0..10_000usize)
        .map(|i| {
            let store = store.clone();
            let due = i % 200 == 0;
            let sweep_at = if due {
                now - (i as i64 % 3) * DAY - 10
            } else {
                now + (1 + i as i64 % 40) * DAY
            };
            let c = connection(i, sweep_at);
            async move { store.put_connection(&c).await.expect("put") }
        })
        .buffer_unordered(64)
        .count()
        .await;
    assert_eq!(writes, 10_000);

    let proxy = FaultProxy::start(crate::storage_faults::upstream(
        &crate::storage_faults::dynamodb_local_url(),
    ))
    .await
    .expect("proxy");
    let client = crate::storage_faults::proxied_client(&app.settings, &proxy).await;
    let proxied = Arc::new(miro_connect::store::dynamo::DynamoStore::new(
        client,
        app.table.clone(),
        crate::support::sealer(&app.sealing_keys),
    ));
    let service = service_with(&app.settings, proxied, app.clock.clone());
    proxy.record(true);
    let report = service
        .sweep(Instant::now() + Duration::from_secs(120))
        .await
        .expect("sweep");
    assert_eq!(report.due, 50, "{report:?}");
    assert_eq!(report.errors, 0, "{report:?}");

    // Every item DynamoDB handed over, counted at the wire.
    let mut read = 0;
    let mut scans = 0;
    for (target, answer) in proxy.answers() {
        let target = target.unwrap_or_default();
        scans += usize::from(target.ends_with(".Scan"));
        let body = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| &answer[at + 4..])
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(body).unwrap_or_default();
        read += value["Items"].as_array().map_or(0, Vec::len);
        read += usize::from(value.get("Item").is_some());
    }
    assert_eq!(scans, 0, "never a Scan");
    assert_eq!(
        read, 100,
        "the 50 due, from the index, and each read once more (consistently) to act on it"
    );
    assert_eq!(
        service
            .sweep(Instant::now() + Duration::from_secs(60))
            .await
            .expect("sweep")
            .due,
        0,
        "settled: none due until their next turn"
    );
}

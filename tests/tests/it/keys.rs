//! Retiring a sealing key (README, "Rotating the sealing keys"), on DynamoDB
//! Local against the emulator: three keys over time, the keep-alive's real
//! handler re-sealing a bounded number a run until the old key's count is
//! zero, each old key then removed and every connection still making
//! boards; a start refused while a removed key still seals connections, in
//! the service and in a real function binary's cold start; and connections
//! stored before key ids were recorded.

use crate::support::{emulator_config, scan, sealer, service_with, TestApp};
use lambda_http::http::StatusCode;
use lambda_runtime::{Context, LambdaEvent};
use miro_connect::clock::Clock;
use miro_connect::seal::Sealer;
use miro_connect::secret::Secret;
use miro_connect::service::reseal::KeyRingError;
use miro_connect::store::dynamo::DynamoStore;
use miro_connect::store::ConnectionStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: i64 = 86_400;

/// The deployment as it runs with this key ring (its store and service),
/// as a cold start after the secret changed builds it.
fn with_ring(app: &mut TestApp, entries: &[&Secret]) {
    let ring: Vec<&str> = entries.iter().map(|e| e.expose()).collect();
    app.sealing_keys = Secret::new(ring.join(","));
    app.store = Arc::new(DynamoStore::new(
        app.dynamo.clone(),
        app.table.clone(),
        sealer(&app.sealing_keys),
    ));
    app.service = service_with(&app.settings, app.store.clone(), app.clock.clone());
}

/// Our clock and Miro's move on together.
fn days_pass(app: &TestApp, days: i64) {
    app.clock.advance(days * DAY);
    app.emulator.advance_clock(days * DAY);
}

/// One scheduled keep-alive run through the function's own handler (the
/// sweep, then the re-seal pass), and the metric lines it wrote.
async fn keep_alive_run(app: &TestApp) -> (keep_alive::Report, Vec<String>) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let mut context = Context::default();
    // Time enough for the handler's 40 s margin and the work.
    context.deadline = now_ms + 120_000;
    let event = LambdaEvent::new(serde_json::json!({}), context);
    let (report, lines) =
        miro_connect::metrics::capture("keep-alive", keep_alive::handle(&app.service, event)).await;
    (report.expect("keep-alive run"), lines)
}

/// `SealedUnderKey` per `Key` in one run's metric lines, and `SealedUnderMissingKey`.
fn sealed_metrics(lines: &[String]) -> (BTreeMap<String, u64>, Option<u64>) {
    let mut by_key = BTreeMap::new();
    let mut missing = None;
    for line in lines {
        let v: Value = serde_json::from_str(line).expect("an EMF line");
        if let (Some(n), Some(key)) = (v["SealedUnderKey"].as_u64(), v["Key"].as_str()) {
            by_key.insert(key.to_string(), n);
        }
        if let Some(n) = v["SealedUnderMissingKey"].as_u64() {
            missing = Some(n);
        }
    }
    (by_key, missing)
}

/// Keep-alive runs until nothing is left under `old` (at most `bound`
/// runs); what each run left under it.
async fn runs_until_drained(app: &TestApp, old: &str, per_run: usize, bound: usize) -> Vec<u64> {
    let mut left = Vec::new();
    for _ in 0..bound {
        let (report, lines) = keep_alive_run(app).await;
        let keys = &report.keys;
        assert!(keys.resealed <= per_run, "bounded per run: {keys:?}");
        assert_eq!(
            (keys.moved_on, keys.unopenable, keys.errors, keys.missing),
            (0, 0, 0, 0),
            "{keys:?}"
        );
        let remaining = keys.remaining.get(old).copied().expect("counted");
        let (metrics, missing) = sealed_metrics(&lines);
        assert_eq!(metrics.get(old), Some(&remaining), "the metric says so");
        assert_eq!(missing, Some(0), "{lines:?}");
        left.push(remaining);
        if remaining == 0 {
            assert!(!keys.unfinished, "{keys:?}");
            return left;
        }
        assert!(keys.unfinished, "{keys:?}");
    }
    panic!("still sealed under {old} after {bound} runs: {left:?}");
}

/// Every connection item in the table: (user, its `sealed_by`, the key id
/// its access token names).
async fn sealed_items(app: &TestApp) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = scan(&app.dynamo, &app.table)
        .await
        .iter()
        .filter(|item| {
            item.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with("TEAM#"))
        })
        .map(|item| {
            let s = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let access = s("access_token_sealed");
            (
                s("pk").trim_start_matches("CONN#").to_string(),
                s("sealed_by"),
                Sealer::key_id_of(&access).unwrap_or_default().to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

async fn every_user_makes_a_board(app: &TestApp, users: &[&str], name: &str) {
    for user in users {
        let made = app
            .create_board(user, &serde_json::json!({ "name": name }).to_string())
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{user}: {}", made.body);
    }
}

#[tokio::test]
async fn three_keys_over_time_each_removed_once_its_count_is_zero_every_connection_still_usable() {
    let mut app = TestApp::with(emulator_config(), &[("KEEPALIVE_RESEAL_PER_RUN", "2")]).await;
    let (k1, k2, k3) = (
        Sealer::generate_key_ring_entry("k1"),
        Sealer::generate_key_ring_entry("k2"),
        Sealer::generate_key_ring_entry("k3"),
    );

    // Day 0: k1 alone seals five connections.
    with_ring(&mut app, &[&k1]);
    app.service.check_sealing_keys().await.expect("starts");
    let first = ["ada", "bob", "cy", "dee", "eve"];
    for user in first {
        app.connect(user).await;
    }
    let (report, _) = keep_alive_run(&app).await;
    assert_eq!(report.keys.newest, "k1");
    assert!(report.keys.remaining.is_empty(), "{:?}", report.keys);

    // Day 1: k2 first, k1 kept after it. A new connection is sealed under
    // k2; the runs re-seal two of k1's a run until none is left.
    days_pass(&app, 1);
    with_ring(&mut app, &[&k2, &k1]);
    app.service.check_sealing_keys().await.expect("starts");
    app.connect("fay").await;
    assert_eq!(
        runs_until_drained(&app, "k1", 2, 10).await,
        [3, 1, 0],
        "five under k1, two a run"
    );
    // k1 removed once its count is zero: the start goes on.
    with_ring(&mut app, &[&k2]);
    app.service
        .check_sealing_keys()
        .await
        .expect("k1 seals nothing any more");
    let second: Vec<&str> = first.iter().copied().chain(["fay"]).collect();
    // A day on, the first five's access tokens have expired: their boards
    // also refresh, with refresh tokens that k2 re-sealed.
    every_user_makes_a_board(&app, &second, "After k1").await;
    assert_eq!(
        app.emulator.token_calls(),
        second.len() + first.len(),
        "a code exchange each and a refresh for each of the first five: no new consent"
    );

    // Day 2: k3 first, k2 after it.
    days_pass(&app, 1);
    with_ring(&mut app, &[&k3, &k2]);
    app.service.check_sealing_keys().await.expect("starts");
    app.connect("gus").await;
    let (report, _) = keep_alive_run(&app).await;
    assert_eq!(
        report.keys.remaining.get("k2"),
        Some(&4),
        "{:?}",
        report.keys
    );

    // k2 removed too early: the start is refused, naming it and its count.
    let without_k2 = Arc::new(DynamoStore::new(
        app.dynamo.clone(),
        app.table.clone(),
        sealer(&k3),
    ));
    let early = service_with(&app.settings, without_k2, app.clock.clone());
    match early.check_sealing_keys().await {
        Err(e @ KeyRingError::StillSealing(_)) => {
            let message = e.to_string();
            assert!(
                message.contains(
                    "TOKEN_SEALING_KEYS lacks a key that still seals connections: k2 (4 connections, counted "
                ),
                "{message}"
            );
            assert!(!message.contains("k1"), "k1 seals nothing: {message}");
            assert!(!message.contains(k2.expose()), "no key material: {message}");
        }
        other => panic!("started without k2: {other:?}"),
    }

    // With k2 kept, the runs go on until none is left under it.
    assert_eq!(runs_until_drained(&app, "k2", 2, 10).await, [2, 0]);
    with_ring(&mut app, &[&k3]);
    app.service
        .check_sealing_keys()
        .await
        .expect("k2 seals nothing any more");
    let all: Vec<&str> = second.iter().copied().chain(["gus"]).collect();
    every_user_makes_a_board(&app, &all, "After k2").await;

    // What is stored: every connection under k3, its index entry saying so.
    let items = sealed_items(&app).await;
    assert_eq!(items.len(), all.len(), "{items:?}");
    for (user, sealed_by, key_id) in &items {
        assert_eq!(
            (sealed_by.as_str(), key_id.as_str()),
            ("SEALED#k3", "k3"),
            "{user}"
        );
    }
    let (report, lines) = keep_alive_run(&app).await;
    assert_eq!(report.keys.remaining, BTreeMap::new(), "{:?}", report.keys);
    assert_eq!(sealed_metrics(&lines), (BTreeMap::new(), Some(0)));
}

/// A function binary as a cold start on Lambda runs it, with this ring:
/// its exit and its output. The Runtime API is nowhere, so a start that
/// goes on ends at its first wait for an event.
async fn cold_start(app: &TestApp, binary: &std::path::Path, ring: &[&Secret]) -> (bool, String) {
    let mut env: BTreeMap<String, String> = app.lambda_env().into_iter().collect();
    let ring: Vec<&str> = ring.iter().map(|e| e.expose()).collect();
    env.insert("TOKEN_SEALING_KEYS".into(), ring.join(","));
    env.insert("AWS_LAMBDA_RUNTIME_API".into(), "127.0.0.1:9".into());
    env.insert("RUST_LOG".into(), "info".into());
    let child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(&env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn keep-alive");
    let out = match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
        Ok(out) => out.expect("keep-alive output"),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => panic!("keep-alive still running after 60 s: killed"),
    };
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), output)
}

#[tokio::test]
async fn a_cold_start_is_refused_while_a_removed_key_still_seals_connections() {
    // The real keep-alive binary, built as it is now.
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = tokio::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "keep-alive"])
        .current_dir(&workspace)
        .status()
        .await
        .expect("cargo build");
    assert!(built.success(), "building keep-alive failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    let binary = target.join("debug").join("keep-alive");

    let mut app = TestApp::with(emulator_config(), &[("KEEPALIVE_RESEAL_PER_RUN", "1")]).await;
    let (k1, k2) = (
        Sealer::generate_key_ring_entry("k1"),
        Sealer::generate_key_ring_entry("k2"),
    );
    with_ring(&mut app, &[&k1]);
    app.connect("hal").await;
    app.connect("ivy").await;
    with_ring(&mut app, &[&k2, &k1]);
    let (report, _) = keep_alive_run(&app).await;
    assert_eq!(
        report.keys.remaining.get("k1"),
        Some(&1),
        "{:?}",
        report.keys
    );

    let (started, output) = cold_start(&app, &binary, &[&k2]).await;
    assert!(!started, "it started without k1: {output}");
    assert!(
        output.contains(
            "TOKEN_SEALING_KEYS lacks a key that still seals connections: k1 (1 connection, counted "
        ),
        "the operator is told which key and why: {output}"
    );
    assert!(
        !output.contains("\"cold start\""),
        "no init finished: {output}"
    );
    for key in [&k1, &k2] {
        let material = key.expose().split(':').nth(1).expect("id:key");
        assert!(!output.contains(material), "key material in the output");
    }

    // With k1 kept, the same start goes on (to its first wait for an event).
    let (_, output) = cold_start(&app, &binary, &[&k2, &k1]).await;
    assert!(output.contains("\"cold start\""), "init finished: {output}");
    assert!(!output.contains("lacks"), "{output}");
}

#[tokio::test]
async fn a_connection_stored_before_key_ids_were_recorded_is_resealed_once_the_sweep_reschedules_it(
) {
    let mut app = TestApp::new().await;
    let (k1, k2) = (
        Sealer::generate_key_ring_entry("k1"),
        Sealer::generate_key_ring_entry("k2"),
    );
    with_ring(&mut app, &[&k1]);
    app.connect("old").await;
    // As a version that did not record the sealing key stored it.
    let c = app.connection("old").await.expect("connected");
    app.dynamo
        .update_item()
        .table_name(&app.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CONN#{}", c.key.user)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TEAM#{}", c.key.team_id)),
        )
        .update_expression("REMOVE sealed_by")
        .send()
        .await
        .expect("as stored before");

    with_ring(&mut app, &[&k2, &k1]);
    let (report, _) = keep_alive_run(&app).await;
    assert_eq!(
        (report.keys.resealed, report.keys.remaining.get("k1")),
        (0, Some(&0)),
        "not found under any key yet: {:?}",
        report.keys
    );

    // Due now (the sweep reschedules every connection it looks at, and
    // looks at each within KEEPALIVE_PROBE_DAYS): it joins the index.
    assert!(app
        .store
        .reschedule_sweep(&c.key, c.version, app.clock.now() - 1)
        .await
        .expect("reschedule"));
    let (report, lines) = keep_alive_run(&app).await;
    assert_eq!(report.sweep.probed, 1, "{:?}", report.sweep);
    assert_eq!(report.keys.resealed, 1, "{:?}", report.keys);
    assert_eq!(report.keys.remaining.get("?"), None, "none left unrecorded");
    assert_eq!(sealed_metrics(&lines).0.get("?"), None);
    assert_eq!(
        sealed_items(&app).await,
        [("old".to_string(), "SEALED#k2".to_string(), "k2".to_string())]
    );
    with_ring(&mut app, &[&k2]);
    app.service.check_sealing_keys().await.expect("starts");
    every_user_makes_a_board(&app, &["old"], "Still here").await;
}

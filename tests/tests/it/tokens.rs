//! Tokens that stay safe and alive: sealing, one refresh per connection
//! across processes, forced refresh, dead grants, outages, status and revoke.

use crate::support::{scan, TestApp};
use lambda_http::http::{Method, StatusCode};
use miro_connect::domain::ConnectionKey;
use miro_connect::identity::AppUser;
use miro_connect::service::tokens::LEASE_SECONDS;
use miro_connect::store::ConnectionStore;
use std::process::Stdio;
use std::time::Duration;

/// Runs `count` concurrent board creations for `user` in a new OS process.
fn burst(app: &TestApp, user: &str, count: usize) -> tokio::process::Child {
    burst_with_env(app.lambda_env(), user, count)
}

fn burst_with_env(env: Vec<(String, String)>, user: &str, count: usize) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_board-burst"))
        .envs(env)
        .env("BURST_USER", user)
        .env("BURST_COUNT", count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn board-burst")
}

async fn statuses(child: tokio::process::Child) -> Vec<String> {
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the burst finished in time")
        .expect("burst output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn fifty_concurrent_creations_in_two_processes_refresh_once() {
    let app = TestApp::new().await;
    app.connect("zoe").await;
    let before = app.connection("zoe").await.expect("connected");
    app.expire_access_token("zoe").await;
    assert_eq!(app.emulator.token_calls(), 1);

    let refreshed_from = miro_connect::clock::Clock::now(&miro_connect::clock::SystemClock);
    let (a, b) = (burst(&app, "zoe", 25), burst(&app, "zoe", 25));
    let (a, b) = tokio::join!(statuses(a), statuses(b));
    let all: Vec<String> = a.into_iter().chain(b).collect();
    assert_eq!(all.len(), 50);
    assert!(all.iter().all(|s| s == "201"), "{all:?}");
    assert_eq!(
        app.emulator.token_calls(),
        2,
        "exactly one refresh reached Miro"
    );
    assert_eq!(app.emulator.boards().len(), 50);

    let after = app.connection("zoe").await.expect("still connected");
    assert_eq!(after.version, before.version + 1);
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotated refresh token was kept"
    );
    let sixty_days = miro_connect::service::REFRESH_TOKEN_LIFETIME_SECONDS;
    assert!(
        after.refresh_expires_at >= Some(refreshed_from + sixty_days),
        "TTL restarted at the refresh"
    );

    // And it still refreshes afterwards.
    app.expire_access_token("zoe").await;
    let reply = app
        .create_board("zoe", r#"{"name":"After the burst"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(app.emulator.token_calls(), 3);
}

#[tokio::test]
async fn a_refresher_killed_after_miro_rotated_fails_safe() {
    let app = TestApp::new().await;
    app.connect("yuri").await;
    app.expire_access_token("yuri").await;
    app.emulator.stall_refreshes(true);
    let mut child = burst(&app, "yuri", 1);
    for _ in 0..400 {
        if app.emulator.token_calls() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        app.emulator.token_calls(),
        2,
        "the child's refresh reached Miro"
    );
    child.kill().await.expect("kill the refresher");
    app.emulator.stall_refreshes(false);

    // Miro rotated; the new tokens died with the process. While its lease
    // runs, others wait (bounded) and get a retryable 503.
    let waiting = app
        .create_board("yuri", r#"{"name":"During the lease"}"#)
        .await;
    waiting.assert_client_error(503, "miro_unavailable");
    assert!(waiting.headers.contains_key("retry-after"));
    assert!(app.connection("yuri").await.is_some());

    // After the lease, the dead refresh token is found out once: the
    // connection is removed and the user is asked to connect again.
    app.clock.advance(LEASE_SECONDS + 1);
    let asked = app
        .create_board("yuri", r#"{"name":"After the crash"}"#)
        .await;
    asked.assert_client_error(401, "miro_authorization_required");
    assert_eq!(app.emulator.token_calls(), 3);
    assert!(app.connection("yuri").await.is_none());
    assert!(app.emulator.boards().is_empty());

    // One consent later the board asked for is there.
    let query = app
        .consent(asked.json()["authorize_url"].as_str().expect("url"), true)
        .await;
    let completion = crate::support::completion_from(&app.callback(&query).await);
    let done = app.complete("yuri", &completion).await;
    assert_eq!(done.json()["board"]["name"], "After the crash");
}

#[tokio::test]
async fn no_token_in_clear_and_a_sealed_value_only_opens_in_its_item() {
    let app = TestApp::new().await;
    app.connect("una").await;
    app.connect("victor").await;
    app.create_board("una", "{}").await;
    let items = scan(&app.dynamo, &app.table).await;
    let dump = format!("{items:?}");
    let secrets = app.emulator.issued_secrets();
    assert!(secrets.len() >= 6);
    for secret in &secrets {
        assert!(
            !dump.contains(secret.as_str()),
            "a token or code is stored in clear"
        );
    }

    // Move una's sealed access token into victor's item: it must not open there.
    let key = |u: &str| aws_sdk_dynamodb::types::AttributeValue::S(format!("CONN#{u}"));
    let una = items
        .iter()
        .find(|i| i.get("pk") == Some(&key("una")) && i.contains_key("access_token_sealed"))
        .expect("una's item")
        .clone();
    let mut victor = items
        .iter()
        .find(|i| i.get("pk") == Some(&key("victor")) && i.contains_key("access_token_sealed"))
        .expect("victor's item")
        .clone();
    victor.insert(
        "access_token_sealed".into(),
        una["access_token_sealed"].clone(),
    );
    app.dynamo
        .put_item()
        .table_name(&app.table)
        .set_item(Some(victor))
        .send()
        .await
        .expect("put");
    let read = app
        .store
        .get_connection(
            &ConnectionKey::new(
                &AppUser::parse("victor").expect("user"),
                miro_emulator::TEAM_ID,
            ),
            0,
        )
        .await;
    // A value sealed for another item does not open here: the connection
    // reads as not connected (with a warning), never as another user's.
    assert!(
        matches!(read, Ok(None)),
        "a value sealed for another item opened"
    );
}

#[tokio::test]
async fn refresh_ahead_of_expiry_keeps_working_tokens_fresh() {
    let app = TestApp::new().await;
    app.connect("wes").await;
    let mut c = app.connection("wes").await.expect("connected");
    c.access_expires_at = Some(c.access_expires_at.expect("expiring") - 3599 + 60);
    app.store.put_connection(&c).await.expect("put");
    let reply = app.create_board("wes", "{}").await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        app.emulator.token_calls(),
        2,
        "refreshed a minute before expiry"
    );
    assert!(
        !app.emulator.access_token_works(c.access_token.expose()),
        "rotation killed the old token"
    );
}

#[tokio::test]
async fn a_401_on_a_token_believed_valid_forces_one_refresh_and_one_retry() {
    let app = TestApp::new().await;
    app.connect("xena").await;
    app.emulator.advance_clock(3600); // Miro says expired; our record says valid.
    let reply = app.create_board("xena", r#"{"name":"Retried"}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(app.emulator.token_calls(), 2);
    assert_eq!(app.emulator.boards().len(), 1);
}

#[tokio::test]
async fn a_dead_grant_asks_for_consent_again() {
    for expire_first in [true, false] {
        let app = TestApp::new().await;
        app.connect("yan").await;
        app.emulator.kill_all_grants();
        if expire_first {
            app.expire_access_token("yan").await;
        }
        let reply = app.create_board("yan", "{}").await;
        reply.assert_client_error(401, "miro_authorization_required");
        assert!(reply.json()["authorize_url"].as_str().is_some());
        assert!(
            app.connection("yan").await.is_none(),
            "the dead connection is removed"
        );
        let status = app
            .call(Method::GET, "/miro/connections", Some("yan"), None)
            .await;
        assert_eq!(status.json()["connections"], serde_json::json!([]));
    }
}

#[tokio::test]
async fn token_endpoint_outage_is_a_503_and_the_tokens_are_kept() {
    let app = TestApp::new().await;
    app.connect("zed").await;
    app.expire_access_token("zed").await;
    let before = app.connection("zed").await.expect("connected");
    app.emulator.fail_token_endpoint(Some(503));
    let reply = app.create_board("zed", "{}").await;
    reply.assert_client_error(503, "miro_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    let kept = app.connection("zed").await.expect("kept");
    assert_eq!(kept.refresh_token, before.refresh_token);
    assert_eq!(kept.version, before.version);

    app.emulator.fail_token_endpoint(None);
    // Past the cooldown the failed refresh left.
    app.clock.advance(31);
    let reply = app.create_board("zed", "{}").await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "the same tokens refresh once Miro is back"
    );
}

#[tokio::test]
async fn disconnect_revokes_at_miro_and_forgets() {
    let app = TestApp::new().await;
    app.connect("amy").await;
    let token = app.connection("amy").await.expect("connected").access_token;
    assert!(app.emulator.access_token_works(token.expose()));

    let gone = app
        .call(Method::DELETE, "/miro/connections", Some("amy"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert!(
        !app.emulator.access_token_works(token.expose()),
        "Miro no longer takes the token"
    );
    assert!(app.connection("amy").await.is_none());
    let again = app
        .call(Method::DELETE, "/miro/connections", Some("amy"), None)
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "idempotent");
    app.create_board("amy", "{}")
        .await
        .assert_client_error(401, "miro_authorization_required");
}

#[tokio::test]
async fn status_shows_the_connection_and_never_a_token() {
    let app = TestApp::new().await;
    let none = app
        .call(Method::GET, "/miro/connections", Some("ben"), None)
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json(), serde_json::json!({ "connections": [] }));

    app.connect("ben").await;
    let status = app
        .call(Method::GET, "/miro/connections", Some("ben"), None)
        .await;
    let body = &status.json()["connections"][0];
    assert_eq!(body["team_id"], miro_emulator::TEAM_ID);
    assert_eq!(body["team_name"], miro_emulator::TEAM_NAME);
    assert_eq!(body["default"], true, "the first connection is the default");
    assert_eq!(body["miro_user_id"], miro_emulator::MIRO_USER_ID);
    assert!(body["scopes"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(body["expires_at"].as_str().is_some());
    app.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn a_cold_start_reads_its_secrets_from_secrets_manager() {
    let app = TestApp::new().await;
    app.connect("cleo").await;
    let secrets = aws_sdk_secretsmanager::Client::new(
        &crate::support::aws_config(crate::support::Backend::Moto).await,
    );
    let value = serde_json::json!({
        "MIRO_CLIENT_SECRET": app.emulator.config().client_secret,
        "TOKEN_SEALING_KEYS": app.sealing_keys.expose(),
    });
    let created = secrets
        .create_secret()
        .name(format!("miro-connect-{}", uuid::Uuid::new_v4()))
        .secret_string(value.to_string())
        .send()
        .await
        .expect("create secret");
    let arn = created.arn().expect("arn").to_string();

    // No secret in the environment: only where to find it.
    let mut env: Vec<(String, String)> = app
        .lambda_env()
        .into_iter()
        .filter(|(k, _)| k != "MIRO_CLIENT_SECRET" && k != "TOKEN_SEALING_KEYS")
        .collect();
    env.push(("MIRO_SECRET_ARN".into(), arn));
    env.push((
        "AWS_ENDPOINT_URL_SECRETS_MANAGER".into(),
        crate::support::moto_endpoint(),
    ));
    app.expire_access_token("cleo").await; // the refresh needs the client secret
    let out = statuses(burst_with_env(env, "cleo", 1)).await;
    assert_eq!(out, vec!["201".to_string()]);
    assert_eq!(app.emulator.token_calls(), 2);
}

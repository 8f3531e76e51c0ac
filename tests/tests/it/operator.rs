//! The operator's mistakes cost nobody a connection: a client secret
//! rotated at Miro but not in the stack opens the refresh breaker instead of
//! deleting connections; without the breaker, rejected connections are
//! retired and `restore` brings back those Miro still honours; a refresh
//! that failed transiently is not retried by every request.

use crate::support::{service_with, TestApp};
use http::{Method, StatusCode};
use miro_connect::service::breaker::{RestoreFilter, RestoreReport};
use miro_connect::store::ConnectionStore;

const USERS: usize = 30;
const ROTATED: &str = "rotated-in-the-developer-portal";

fn user(i: usize) -> String {
    format!("user-{i:02}")
}

/// 30 users connected, each with an access token Miro no longer takes,
/// and the app's client secret rotated at Miro but not in the stack.
async fn thirty_users_after_a_rotation(extra: &[(&str, &str)]) -> TestApp {
    let app = TestApp::with(crate::support::emulator_config(), extra).await;
    for i in 0..USERS {
        app.connect(&user(i)).await;
        app.make_refresh_due(&user(i)).await;
    }
    app.emulator.advance_clock(3600);
    app.emulator.rotate_client_secret(ROTATED);
    app
}

/// The stack's secret updated to the rotated one (a new cold start).
fn fix_the_secret(app: &mut TestApp) {
    app.settings
        .insert("MIRO_CLIENT_SECRET".into(), ROTATED.into());
    app.service = service_with(&app.settings, app.store.clone(), app.clock.clone());
}

async fn connected(app: &TestApp) -> usize {
    let mut n = 0;
    for i in 0..USERS {
        n += usize::from(app.connection(&user(i)).await.is_some());
    }
    n
}

#[tokio::test]
async fn a_rotated_client_secret_opens_the_breaker_and_every_user_keeps_their_connection() {
    let mut app = thirty_users_after_a_rotation(&[]).await;
    let mut misconfigured = 0;
    for i in 0..USERS {
        let reply = app.create_board(&user(i), "{}").await;
        match reply.status.as_u16() {
            // Before the breaker has seen enough to open: taken at its word.
            401 if i < 2 => reply.assert_client_error(401, "miro_authorization_required"),
            _ => {
                reply.assert_client_error(503, "miro_misconfigured");
                assert!(reply.headers.contains_key("retry-after"));
                misconfigured += 1;
            }
        }
    }
    assert_eq!(misconfigured, USERS - 2, "the third rejection opens it");
    assert_eq!(
        connected(&app).await,
        USERS,
        "no connection lost: the two retired before it opened are back"
    );
    assert_eq!(app.emulator.live_grants(), USERS);
    let calls = app.emulator.token_calls();
    let reply = app.create_board(&user(5), "{}").await;
    reply.assert_client_error(503, "miro_misconfigured");
    assert_eq!(
        app.emulator.token_calls(),
        calls,
        "an open breaker sends Miro nothing"
    );
    let view = app.service.breaker().await.expect("breaker");
    assert!(view.open);
    assert_eq!(view.rejected_connections, 3);

    fix_the_secret(&mut app);
    app.clock.advance(61);
    for i in 0..USERS {
        let reply = app.create_board(&user(i), "{}").await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{} without consenting again: {}",
            user(i),
            reply.body
        );
    }
    let view = app.service.breaker().await.expect("breaker");
    assert!(
        !view.open && view.opened_at.is_none(),
        "closed by the probe"
    );
}

#[tokio::test]
async fn without_the_breaker_rejected_connections_are_retired_and_restore_brings_back_those_miro_honours(
) {
    let mut app = thirty_users_after_a_rotation(&[("BREAKER_REJECTIONS", "0")]).await;
    for i in 0..USERS {
        app.create_board(&user(i), "{}")
            .await
            .assert_client_error(401, "miro_authorization_required");
    }
    assert_eq!(connected(&app).await, 0, "every one reads as not connected");
    let retired = app
        .store
        .retired_connections(app.clock_now())
        .await
        .expect("retired");
    assert_eq!(retired.len(), USERS, "but every one is kept, sealed");
    // Five of them really did revoke the app at Miro meanwhile.
    for r in retired.iter().take(5) {
        assert!(app
            .emulator
            .revoke_grant(r.connection.access_token.expose()));
    }

    fix_the_secret(&mut app);
    let report = app
        .service
        .restore(&RestoreFilter {
            reason: Some("grant_rejected".into()),
            ..Default::default()
        })
        .await
        .expect("restore");
    assert_eq!(
        report,
        RestoreReport {
            tried: USERS,
            restored: USERS - 5,
            still_rejected: 5,
            failed: 0,
        }
    );
    let revoked: Vec<String> = retired
        .iter()
        .take(5)
        .map(|r| r.connection.key.user.to_string())
        .collect();
    for i in 0..USERS {
        let reply = app.create_board(&user(i), "{}").await;
        if revoked.contains(&user(i)) {
            reply.assert_client_error(401, "miro_authorization_required");
        } else {
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        }
    }

    // A user's own disconnect erases the retired copy too.
    let gone = &revoked[0];
    let reply = app
        .call(Method::DELETE, "/miro/connections", Some(gone), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let left = app
        .store
        .retired_connections(app.clock_now())
        .await
        .expect("retired");
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|r| r.connection.key.user.as_str() != gone));
}

#[tokio::test]
async fn one_dead_grant_is_taken_at_its_word_at_once() {
    let app = TestApp::new().await;
    app.connect("ann").await;
    app.connect("bob").await;
    let token = app.connection("ann").await.expect("connected").access_token;
    app.expire_access_token("ann").await;
    assert!(app.emulator.revoke_grant(token.expose()));
    app.create_board("ann", "{}")
        .await
        .assert_client_error(401, "miro_authorization_required");
    assert!(app.connection("ann").await.is_none());
    let view = app.service.breaker().await.expect("breaker");
    assert!(!view.open);
    let reply = app.create_board("bob", "{}").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn a_transient_refresh_failure_cools_the_connection_down_for_every_caller() {
    let app = TestApp::new().await;
    app.connect("cid").await;
    app.expire_access_token("cid").await;
    app.emulator.fail_token_endpoint(Some(503));
    app.create_board("cid", "{}")
        .await
        .assert_client_error(503, "miro_unavailable");
    let calls = app.emulator.token_calls();
    for _ in 0..5 {
        let reply = app.create_board("cid", "{}").await;
        reply.assert_client_error(503, "miro_unavailable");
        let wait: u64 = reply.headers["retry-after"]
            .to_str()
            .expect("header")
            .parse()
            .expect("seconds");
        assert!((1..=30).contains(&wait), "{wait}");
    }
    assert_eq!(
        app.emulator.token_calls(),
        calls,
        "no refresh sent during the cooldown"
    );
    app.emulator.fail_token_endpoint(None);
    app.clock.advance(31);
    let reply = app.create_board("cid", "{}").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

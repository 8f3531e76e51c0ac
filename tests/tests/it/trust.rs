//! The promises a deployment makes to its users under attack and when Miro
//! misbehaves: no transient answer destroys a connection, a reconnect is
//! never undone, Miro's answers are outside input, a flow completes only in
//! the browser that started it, and a disconnect always takes effect.
//! Each test goes through the handlers, against the emulator with the
//! matching fault, on DynamoDB Local.

use crate::support::{
    completion_from, consent_with, emulator_config, query_value, service_with, settings, TestApp,
};
use lambda_http::http::{Method, StatusCode};
use miro_connect::store::dynamo::DynamoStore;
use miro_emulator::{TokenFault, ATTACKER_MIRO_USER_ID, MIRO_USER_ID};
use std::sync::Arc;

/// Every answer of the token endpoint that is not a verdict on the grant.
fn transient_answers() -> Vec<TokenFault> {
    vec![
        TokenFault::RateLimited {
            retry_after: Some(7),
            reset_in: None,
        },
        TokenFault::RateLimited {
            retry_after: None,
            reset_in: Some(30),
        },
        TokenFault::Redirect,
        TokenFault::HtmlOk,
        TokenFault::EmptyOk,
        TokenFault::Status(500),
        TokenFault::Status(503),
        TokenFault::HtmlError(400),
        TokenFault::HtmlError(401),
        TokenFault::Stall,
    ]
}

/// A deployment whose Miro calls give up quickly (for the stalled answer).
async fn quick_app() -> TestApp {
    TestApp::with(emulator_config(), &[("MIRO_TIMEOUT_MS", "400")]).await
}

fn retry_after(reply: &crate::support::Reply) -> u64 {
    reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {}", reply.body))
}

#[tokio::test]
async fn a_transient_token_answer_on_refresh_keeps_the_connection() {
    let app = quick_app().await;
    app.connect("tia").await;
    for fault in transient_answers() {
        app.make_refresh_due("tia").await;
        app.emulator.set_token_fault(Some(fault));
        let reply = app.create_board("tia", r#"{"name":"During"}"#).await;
        let expected = match fault {
            TokenFault::RateLimited { .. } => (429, "miro_rate_limited"),
            _ => (503, "miro_unavailable"),
        };
        reply.assert_client_error(expected.0, expected.1);
        let wait = retry_after(&reply);
        if let TokenFault::RateLimited {
            retry_after: Some(s),
            ..
        } = fault
        {
            assert_eq!(wait, s, "Retry-After as Miro said");
        }
        if let TokenFault::RateLimited {
            reset_in: Some(s), ..
        } = fault
        {
            assert!(wait >= 1 && wait <= s as u64 + 1, "until the reset: {wait}");
        }
        let status = app
            .call(Method::GET, "/miro/connections", Some("tia"), None)
            .await;
        assert_eq!(
            status.json()["connections"][0]["team_id"],
            miro_emulator::TEAM_ID,
            "{fault:?} disconnected the user"
        );
        // The lease was released and the tokens kept: once Miro answers, the
        // very next call refreshes with the same refresh token and works.
        app.emulator.set_token_fault(None);
        // Past the cooldown the failed refresh left.
        app.clock.advance(31);
        let after = app.create_board("tia", r#"{"name":"After"}"#).await;
        assert_eq!(
            after.status,
            StatusCode::CREATED,
            "{fault:?}: {}",
            after.body
        );
    }
    assert_eq!(app.emulator.live_grants(), 1);
}

#[tokio::test]
async fn only_a_json_400_from_the_token_endpoint_is_a_dead_grant() {
    let app = TestApp::new().await;
    app.connect("uma").await;
    app.make_refresh_due("uma").await;
    app.emulator.set_token_fault(Some(TokenFault::Status(400)));
    app.create_board("uma", "{}")
        .await
        .assert_client_error(401, "miro_authorization_required");
    assert!(app.connection("uma").await.is_none());
}

#[tokio::test]
async fn a_transient_token_answer_on_the_code_exchange_parks_the_code_again() {
    let app = quick_app().await;
    for (i, fault) in transient_answers().into_iter().enumerate() {
        let user = format!("vic-{i}");
        let completion = app.authorize(&user).await;
        app.emulator.set_token_fault(Some(fault));
        let reply = app.complete(&user, &completion).await;
        assert!(
            matches!(reply.status.as_u16(), 429 | 503),
            "{fault:?}: {} {}",
            reply.status,
            reply.body
        );
        retry_after(&reply);
        app.emulator.set_token_fault(None);
        let again = app.complete(&user, &completion).await;
        assert_eq!(again.status, StatusCode::OK, "{fault:?}: {}", again.body);
    }
}

#[tokio::test]
async fn a_reconnect_during_a_refresh_is_not_undone() {
    let app = TestApp::new().await;
    app.connect("wes").await;
    let before = app.connection("wes").await.expect("connected");
    app.make_refresh_due("wes").await;
    // The refresh reaches Miro (which rotates at once) and its answer is slow:
    // the user reconnects in between.
    app.emulator.delay_refresh_answers(Some(1500));
    let calls_before = app.emulator.token_calls();
    let refreshing = {
        let request = crate::support::request(
            Method::POST,
            "/boards",
            Some("wes"),
            Some(r#"{"name":"While reconnecting"}"#),
            "application/json",
        );
        let service = &app.service;
        async move { crate::support::route(service, request).await }
    };
    let reconnect = async {
        // Reconnect once the refresh has reached Miro (which rotated at
        // once) and while its answer is on the way.
        for _ in 0..200 {
            if app.emulator.token_calls() > calls_before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let completion = app.authorize("wes").await;
        app.complete("wes", &completion).await
    };
    let (board, reconnected) = tokio::join!(refreshing, reconnect);
    app.emulator.delay_refresh_answers(None);
    assert_eq!(reconnected.status, StatusCode::OK, "{}", reconnected.body);
    let board: crate::support::Reply = board.into();
    assert_eq!(board.status, StatusCode::CREATED, "{}", board.body);

    let after = app.connection("wes").await.expect("still connected");
    assert_ne!(after.version, before.version);
    assert!(
        app.emulator.access_token_works(after.access_token.expose()),
        "the stored tokens are the new grant's, and alive"
    );
    assert_eq!(
        app.emulator.live_grants(),
        1,
        "the old grant, and what its refresh produced, are revoked"
    );
    let next = app.create_board("wes", r#"{"name":"Next"}"#).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
}

#[tokio::test]
async fn versions_never_repeat_across_a_disconnect_and_a_reconnect() {
    let app = TestApp::new().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        app.connect("xena").await;
        let c = app.connection("xena").await.expect("connected");
        assert!(seen.insert(c.version), "version {} came back", c.version);
        let gone = app
            .call(Method::DELETE, "/miro/connections", Some("xena"), None)
            .await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn huge_expires_in_is_clamped_not_a_panic() {
    let app = TestApp::new().await;
    for (user, huge) in [
        ("yan", serde_json::json!(i64::MAX)),
        ("yoko", serde_json::json!(u64::MAX)),
    ] {
        app.emulator.override_expires_in(Some(huge));
        app.connect(user).await;
        let c = app.connection(user).await.expect("connected");
        let now = miro_connect::clock::Clock::now(app.clock.as_ref());
        let expires = c.access_expires_at.expect("an expiry");
        assert!(expires > now && expires <= now + 86_400, "{expires}");
        let board = app.create_board(user, "{}").await;
        assert_eq!(board.status, StatusCode::CREATED, "{}", board.body);
    }
}

#[tokio::test]
async fn only_https_view_links_reach_the_app() {
    let app = TestApp::new().await;
    app.connect("zed").await;
    app.emulator
        .override_view_link(Some("javascript:alert(1)".into()));
    let reply = app.create_board("zed", r#"{"name":"Link"}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(
        reply.json()["board"].get("view_link").is_none(),
        "{}",
        reply.body
    );
    assert!(!reply.body.contains("javascript"));
}

#[tokio::test]
async fn oversized_miro_answers_are_not_read() {
    let app = TestApp::new().await;
    app.connect("abe").await;
    app.emulator
        .pad_board_bodies(Some(miro_emulator::OVERSIZE_PADDING));
    // The board may exist at Miro: an answer we refuse to read is ambiguous.
    app.create_board("abe", "{}")
        .await
        .assert_client_error(502, "miro_outcome_unknown");
    app.emulator.pad_board_bodies(None);

    let completion = app.authorize("bea").await;
    app.emulator
        .pad_token_bodies(Some(miro_emulator::OVERSIZE_PADDING));
    let reply = app.complete("bea", &completion).await;
    reply.assert_client_error(503, "miro_unavailable");
}

#[tokio::test]
async fn a_completion_needs_the_flow_secret_of_the_browser_that_started_it() {
    let app = TestApp::new().await;
    let completion = app.authorize("cleo").await;
    let secret = app.flow_secret("cleo").expect("a flow secret");
    app.complete_with("cleo", &completion, None)
        .await
        .assert_client_error(403, "completion_forbidden");
    // Refused and destroyed: the right secret cannot complete it afterwards.
    app.complete_with("cleo", &completion, Some(&secret))
        .await
        .assert_client_error(400, "invalid_completion");

    let completion = app.authorize("cleo").await;
    let wrong = miro_connect::secret::Secret::random();
    app.complete_with("cleo", &completion, Some(wrong.expose()))
        .await
        .assert_client_error(403, "completion_forbidden");
    assert!(app.connection("cleo").await.is_none());
}

#[tokio::test]
async fn a_leaked_authorize_url_cannot_link_the_attackers_miro() {
    let app = TestApp::new().await;
    // The user's page asked for a board; the 401's authorize_url leaks (a log
    // line, an error reporter, a shared screen).
    let asked = app.create_board("dora", r#"{"name":"Mine"}"#).await;
    asked.assert_client_error(401, "miro_authorization_required");
    let leaked = asked.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    // The attacker consents with their own Miro and sends the user the link.
    let query = consent_with(&leaked, &[("decision", "allow"), ("miro_user", "attacker")]).await;
    let link = completion_from(&app.callback(&query).await);
    // The user's page opens it in another tab: no flow secret there.
    app.complete_with("dora", &link, None)
        .await
        .assert_client_error(403, "completion_forbidden");
    assert!(app.connection("dora").await.is_none());
    assert!(app
        .emulator
        .boards()
        .iter()
        .all(|b| b.miro_user_id != ATTACKER_MIRO_USER_ID));

    // The user's own flow, in the tab that kept its secret, still works.
    let own = app.authorize("dora").await;
    let done = app.complete("dora", &own).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.json()["connection"]["miro_user_id"], MIRO_USER_ID);
}

#[tokio::test]
async fn a_return_to_with_a_planted_result_is_refused() {
    let app = TestApp::new().await;
    for planted in [
        "https://app.example.test/miro/done?miro_error=access_denied",
        "https://app.example.test/miro/done?x=1&miro_authorization=abc",
    ] {
        let body = serde_json::json!({ "return_to": planted }).to_string();
        app.start("earl", Some(&body))
            .await
            .assert_client_error(400, "return_to_not_allowed");
    }
}

#[tokio::test]
async fn an_injected_code_fails_the_pkce_check() {
    let app = TestApp::new().await;
    let victim = app.start("fern", None).await;
    let victim_url =
        url::Url::parse(victim.json()["authorize_url"].as_str().expect("url")).expect("url");
    assert_eq!(
        query_value(&victim_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_value(&victim_url, "code_challenge").is_some());
    // The attacker steals the code Miro issued for the victim's flow…
    let stolen = app.consent(victim_url.as_str(), true).await;
    let code = stolen
        .split('&')
        .find_map(|p| p.strip_prefix("code="))
        .expect("code")
        .to_string();
    // …and pushes it into a flow of their own.
    let own = app.start("gus", None).await;
    let own_url = url::Url::parse(own.json()["authorize_url"].as_str().expect("url")).expect("url");
    let state = query_value(&own_url, "state").expect("state");
    let injected = format!("code={code}&state={state}");
    let completion = completion_from(&app.callback(&injected).await);
    let reply = app.complete("gus", &completion).await;
    reply.assert_client_error(401, "miro_authorization_required");
    assert!(
        app.connection("gus").await.is_none(),
        "linked to the victim's Miro"
    );
    assert!(app.emulator.pkce_challenges_seen() >= 1);
}

#[tokio::test]
async fn disconnect_works_while_miro_is_down_and_revokes_later() {
    let app = TestApp::new().await;
    app.connect("hal").await;
    app.expire_access_token("hal").await;
    app.emulator.set_token_fault(Some(TokenFault::Status(503)));
    app.emulator.fail_revoke(Some(503));
    let gone = app
        .call(Method::DELETE, "/miro/connections", Some("hal"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
    let status = app
        .call(Method::GET, "/miro/connections", Some("hal"), None)
        .await;
    assert_eq!(status.json()["connections"], serde_json::json!([]));
    app.create_board("hal", "{}")
        .await
        .assert_client_error(401, "miro_authorization_required");
    assert_eq!(app.emulator.live_grants(), 1, "not revoked yet");

    // Miro is back: the next disconnect finishes the revocation.
    app.emulator.set_token_fault(None);
    app.emulator.fail_revoke(None);
    let again = app
        .call(Method::DELETE, "/miro/connections", Some("hal"), None)
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(app.emulator.live_grants(), 0, "the grant is dead at Miro");
}

#[tokio::test]
async fn a_reconnect_revokes_a_grant_whose_revocation_was_pending() {
    let app = TestApp::new().await;
    app.connect("ida").await;
    app.emulator.fail_revoke(Some(502));
    let gone = app
        .call(Method::DELETE, "/miro/connections", Some("ida"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    app.emulator.fail_revoke(None);
    app.connect("ida").await;
    assert_eq!(app.emulator.live_grants(), 1, "only the new grant lives");
}

#[tokio::test]
async fn a_connection_whose_key_left_the_ring_reads_as_disconnected() {
    let app = TestApp::new().await;
    app.connect("jo").await;
    // The deployment rotated its keys and dropped the old one.
    let store = Arc::new(DynamoStore::new(
        app.dynamo.clone(),
        app.table.clone(),
        crate::support::test_sealer(),
    ));
    let rotated = service_with(
        &settings(&app.emulator, &app.table),
        store,
        app.clock.clone(),
    );
    let req = crate::support::request(
        Method::GET,
        "/miro/connections",
        Some("jo"),
        None,
        "application/json",
    );
    let status: crate::support::Reply = crate::support::route(&rotated, req).await.into();
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.json()["connections"], serde_json::json!([]));
    let req = crate::support::request(
        Method::POST,
        "/boards",
        Some("jo"),
        Some("{}"),
        "application/json",
    );
    let asked: crate::support::Reply = crate::support::route(&rotated, req).await.into();
    asked.assert_client_error(401, "miro_authorization_required");
}

#[tokio::test]
async fn a_user_holds_a_bounded_number_of_live_authorizations() {
    let app = TestApp::new().await;
    for _ in 0..miro_connect::service::MAX_LIVE_FLOWS {
        let started = app.start("kai", None).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    }
    let refused = app.start("kai", None).await;
    refused.assert_client_error(429, "too_many_authorizations");
    let wait = retry_after(&refused);
    assert!((1..=600).contains(&wait), "{wait}");
    // The one-click path counts too.
    app.create_board("kai", "{}")
        .await
        .assert_client_error(429, "too_many_authorizations");
    // Another user is not affected; once the flows expire, the user may start again.
    let other = app.start("lea", None).await;
    assert_eq!(other.status, StatusCode::CREATED);
    app.clock.advance(601);
    let again = app.start("kai", None).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
}

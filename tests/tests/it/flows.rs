//! Every flow of `docs/architecture.md` (1–4) through the handlers, against the Miro
//! emulator, with the DynamoDB adapter on DynamoDB Local.

use crate::support::{completion_from, query_value, service_with, settings, TestApp, RETURN_TO};
use lambda_http::http::{Method, StatusCode};
use miro_connect::secret::Secret;
use miro_emulator::{EmulatorConfig, PROJECT_ID, TEAM_ID};

#[tokio::test]
async fn connect_then_create_board() {
    let app = TestApp::new().await;
    let started = app
        .start(
            "alice",
            Some(r#"{"return_to":"https://app.example.test/miro/done?tab=2"}"#),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED);
    let authorize_url =
        url::Url::parse(started.json()["authorize_url"].as_str().expect("url")).expect("url");
    let state = query_value(&authorize_url, "state").expect("state");
    assert_eq!(state.len(), 43, "256 bits of state");
    assert!(started.json()["expires_at"].as_str().is_some());

    let query = app.consent(authorize_url.as_str(), true).await;
    let back = app.callback(&query).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let to = back.location();
    assert_eq!(
        query_value(&to, "tab").as_deref(),
        Some("2"),
        "return_to kept as given"
    );
    let completion = query_value(&to, "miro_authorization").expect("completion");

    let done = app.complete("alice", &completion).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let connection = &done.json()["connection"];
    assert_eq!(connection["team_id"], TEAM_ID);
    assert_eq!(connection["default"], true);
    assert!(done.json().get("board").is_none(), "no intent, no board");

    let created = app
        .create_board(
            "alice",
            &format!(
                r#"{{"name":"Sprint planning","description":"Q3","team_id":"{TEAM_ID}","project_id":"{PROJECT_ID}",
                "policy":{{"sharingPolicy":{{"access":"view"}},"permissionsPolicy":{{"copyAccess":"team_editors"}}}}}}"#
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let board = &created.json()["board"];
    assert_eq!(board["name"], "Sprint planning");
    assert_eq!(board["team"]["id"], TEAM_ID);
    // The emulator's view link (its drawing of the board), passed on as it
    // is on the configured Miro origin.
    let drawn = format!("{}/app/board/", app.emulator.base_url());
    assert!(board["view_link"]
        .as_str()
        .is_some_and(|l| l.starts_with(&drawn)));
    assert!(board["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let boards = app.emulator.boards();
    assert_eq!(boards.len(), 1);
    assert_eq!(boards[0].id, board["id"].as_str().expect("id"));
    assert_eq!(boards[0].body["policy"]["sharingPolicy"]["access"], "view");
    assert_eq!(app.emulator.token_calls(), 1);

    // Nothing in the table is a token or a code in clear.
    let table = format!("{:?}", crate::support::scan(&app.dynamo, &app.table).await);
    for secret in app.emulator.issued_secrets() {
        assert!(!table.contains(&secret));
    }
    app.assert_no_secret_leaked(&[state, completion]);
}

#[tokio::test]
async fn one_click_creates_the_intended_board_once() {
    let app = TestApp::new().await;
    let asked = app
        .create_board("bob", r#"{"name":"From one click"}"#)
        .await;
    asked.assert_client_error(401, "miro_authorization_required");
    let authorize_url = asked.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(asked.json()["expires_at"].as_str().is_some());
    assert!(app.emulator.boards().is_empty());

    let query = app.consent(&authorize_url, true).await;
    let completion = completion_from(&app.callback(&query).await);
    let done = app.complete("bob", &completion).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.json()["board"]["name"], "From one click");
    assert_eq!(app.emulator.boards().len(), 1);

    // The completion is spent: presenting it again creates nothing.
    app.complete("bob", &completion)
        .await
        .assert_client_error(400, "invalid_completion");
    // Replaying Miro's redirect creates nothing either.
    app.callback(&query).await.assert_error_page();
    assert_eq!(
        app.emulator.boards().len(),
        1,
        "the intent ran exactly once"
    );

    // Connected now: the next board needs no consent.
    let second = app.create_board("bob", r#"{"name":"Second"}"#).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(app.emulator.boards().len(), 2);
    let state =
        query_value(&url::Url::parse(&authorize_url).expect("url"), "state").expect("state");
    app.assert_no_secret_leaked(&[state, completion]);
}

#[tokio::test]
async fn deny_returns_to_the_app_with_an_error_and_no_connection() {
    let app = TestApp::new().await;
    let started = app.start("carol", None).await;
    let query = app
        .consent(
            started.json()["authorize_url"].as_str().expect("url"),
            false,
        )
        .await;
    let back = app.callback(&query).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let to = back.location();
    assert!(to.as_str().starts_with(RETURN_TO));
    assert_eq!(
        query_value(&to, "miro_error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(&to, "miro_authorization"), None);
    assert_eq!(
        app.items().await,
        0,
        "the pending authorization is consumed, nothing stored"
    );
    app.create_board("carol", "{}")
        .await
        .assert_client_error(401, "miro_authorization_required");
}

#[tokio::test]
async fn a_state_is_used_once() {
    let app = TestApp::new().await;
    let started = app.start("dave", None).await;
    let query = app
        .consent(started.json()["authorize_url"].as_str().expect("url"), true)
        .await;
    completion_from(&app.callback(&query).await);
    let replay = app.callback(&query).await;
    replay.assert_error_page();
    let state = query
        .split('&')
        .find_map(|p| p.strip_prefix("state="))
        .expect("state");
    assert!(
        !replay.body.contains(state),
        "the error page reflects nothing"
    );
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let app = TestApp::new().await;
    let started = app.start("erin", None).await;
    let query = app
        .consent(started.json()["authorize_url"].as_str().expect("url"), true)
        .await;
    app.clock.advance(601);
    let back = app.callback(&query).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert_eq!(
        query_value(&back.location(), "miro_error").as_deref(),
        Some("expired")
    );
    assert_eq!(query_value(&back.location(), "miro_authorization"), None);
    assert_eq!(app.items().await, 0);
}

#[tokio::test]
async fn an_unknown_state_gets_the_static_page() {
    let app = TestApp::new().await;
    let forged = Secret::random();
    let reply = app
        .callback(&format!("code=code-forged&state={}", forged.expose()))
        .await;
    reply.assert_error_page();
    assert!(!reply.body.contains(forged.expose()));
    assert_eq!(app.items().await, 0);
}

#[tokio::test]
async fn another_user_cannot_complete_and_destroys_the_completion() {
    let app = TestApp::new().await;
    let completion = app.authorize("victim").await;
    app.complete("attacker", &completion)
        .await
        .assert_client_error(403, "completion_forbidden");
    app.complete("victim", &completion)
        .await
        .assert_client_error(400, "invalid_completion");
    assert_eq!(
        app.emulator.token_calls(),
        0,
        "the code was never exchanged"
    );
    app.create_board("attacker", "{}")
        .await
        .assert_client_error(401, "miro_authorization_required");
    app.create_board("victim", "{}")
        .await
        .assert_client_error(401, "miro_authorization_required");
}

#[tokio::test]
async fn return_to_outside_the_allow_list_is_refused_at_start() {
    let app = TestApp::new().await;
    for bad in [
        "https://evil.example.net/steal",
        "https://app.example.test.evil.net/",
        "http://app.example.test/miro/done",
        "https://user@app.example.test/",
        "javascript:alert(1)",
        "//evil.example.net/",
        "/relative",
    ] {
        let body = serde_json::json!({ "return_to": bad }).to_string();
        app.start("frank", Some(&body))
            .await
            .assert_client_error(400, "return_to_not_allowed");
    }
    assert_eq!(app.items().await, 0);
}

#[tokio::test]
async fn a_redirect_uri_miro_does_not_know_is_refused_at_the_emulator() {
    // The service registers a redirect URI that differs from the app's by a trailing slash.
    let app = TestApp::new().await;
    let mut wrong = settings(&app.emulator, &app.table);
    wrong.insert(
        "MIRO_REDIRECT_URI".into(),
        format!("{}/", crate::support::REDIRECT_URI),
    );
    let misconfigured = service_with(&wrong, app.store.clone(), app.clock.clone());

    let req = crate::support::request(
        Method::POST,
        "/miro/authorizations",
        Some("gina"),
        None,
        "application/json",
    );
    let started: crate::support::Reply = crate::support::route(&misconfigured, req).await.into();
    let authorize_url = started.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    let page = reqwest::get(&authorize_url).await.expect("authorize");
    assert_eq!(page.status(), 400);
    assert!(page
        .text()
        .await
        .expect("body")
        .contains("Redirect URI mismatch"));

    // And a code issued for the right URI does not exchange under the wrong one.
    let completion = app.authorize("gina").await;
    let body =
        serde_json::json!({ "completion": completion, "flow_secret": app.flow_secret("gina") })
            .to_string();
    let req = crate::support::request(
        Method::POST,
        "/miro/authorizations/complete",
        Some("gina"),
        Some(&body),
        "application/json",
    );
    let done: crate::support::Reply = crate::support::route(&misconfigured, req).await.into();
    done.assert_client_error(401, "miro_authorization_required");
    assert_eq!(app.emulator.token_calls(), 1);
}

#[tokio::test]
async fn a_code_exchanged_after_ten_minutes_is_refused() {
    let app = TestApp::new().await;
    let completion = app.authorize("hank").await;
    app.emulator.advance_clock(601);
    app.complete("hank", &completion)
        .await
        .assert_client_error(401, "miro_authorization_required");
}

#[tokio::test]
async fn team_id_as_a_number_is_accepted() {
    let app = TestApp::with_emulator(EmulatorConfig {
        team_id_as_number: true,
        ..crate::support::emulator_config()
    })
    .await;
    let completion = app.authorize("ivan").await;
    let done = app.complete("ivan", &completion).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        done.json()["connection"]["team_id"],
        TEAM_ID,
        "no precision lost above 2^53"
    );
}

#[tokio::test]
async fn miro_refusing_a_board_is_a_client_error() {
    let app = TestApp::new().await;
    app.connect("judy").await;
    // A project that does not exist in the team: Miro answers 404.
    let reply = app.create_board("judy", r#"{"project_id":"999"}"#).await;
    reply.assert_client_error(422, "miro_rejected");
    assert!(app.emulator.boards().is_empty());
}

#[tokio::test]
async fn a_token_miro_refuses_asks_for_consent_again() {
    let app = TestApp::with_emulator(EmulatorConfig {
        access_token_lifetime: Some(3599),
        ..crate::support::emulator_config()
    })
    .await;
    app.connect("kim").await;
    // Miro kills the token (say, the app was uninstalled): the caller is asked to connect again.
    app.emulator.advance_clock(2 * 86_400 * 60);
    let reply = app.create_board("kim", r#"{"name":"After"}"#).await;
    reply.assert_client_error(401, "miro_authorization_required");
}

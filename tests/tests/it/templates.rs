//! Boards from a template, shared with people, as one request that finishes
//! or can be retried to the end: through the HTTP handlers against the
//! emulator on DynamoDB Local. (The same through events is in `events`.)

use crate::support::{query_value, TestApp};
use lambda_http::http::StatusCode;
use miro_emulator::{BoardFault, FAILING_INVITATION_DOMAIN, SECOND_TEAM_ID, TEAM_ID};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;

/// 25 editors and 20 viewers, `failing` of the editors at an address Miro
/// cannot invite.
pub fn retro_members(failing: usize) -> Vec<Value> {
    let mut members = Vec::new();
    for i in 0..25 {
        let domain = if i < failing {
            FAILING_INVITATION_DOMAIN
        } else {
            "example.com"
        };
        members.push(json!({ "email": format!("editor{i}@{domain}"), "role": "editor" }));
    }
    for i in 0..20 {
        members.push(json!({ "email": format!("viewer{i}@example.com"), "role": "viewer" }));
    }
    members
}

fn retro(template: &str, failing: usize) -> Value {
    json!({
        "name": "Sprint 42 retro",
        "template_board_id": template,
        "members": retro_members(failing),
        "invitation_message": "Retro on Friday",
    })
}

/// Every member call: at most 20 emails, one role; as many as the chunks.
fn assert_chunked(app: &TestApp, board_id: &str) {
    let calls = app.emulator.member_calls();
    assert!(calls.iter().all(|c| c.board_id == board_id));
    assert!(
        calls.iter().all(|c| c.emails.len() <= 20),
        "≤ 20 emails a call"
    );
    let editors: usize = calls
        .iter()
        .filter(|c| c.role == "editor")
        .map(|c| c.emails.len())
        .sum();
    let viewers: usize = calls
        .iter()
        .filter(|c| c.role == "viewer")
        .map(|c| c.emails.len())
        .sum();
    assert_eq!(
        (editors, viewers),
        (25, 20),
        "each email once, with its own role"
    );
    assert!(calls
        .iter()
        .all(|c| c.message.as_deref() == Some("Retro on Friday")));
}

async fn post(app: &TestApp, user: &str, body: &Value, key: Option<&str>) -> crate::support::Reply {
    match key {
        Some(key) => app.create_board_keyed(user, &body.to_string(), key).await,
        None => app.create_board(user, &body.to_string()).await,
    }
}

#[tokio::test]
async fn a_copy_with_45_invitations_in_two_roles_makes_one_board_and_reports_failures() {
    let app = TestApp::new().await;
    app.connect("kit").await;
    let template = app
        .emulator
        .add_template(TEAM_ID, "Retro template", "retro-v1");

    let made = post(&app, "kit", &retro(&template, 2), None).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let body = made.json();
    assert_eq!(body["board"]["name"], "Sprint 42 retro");

    let copies: Vec<_> = app
        .emulator
        .boards()
        .into_iter()
        .filter(|b| b.copied_from.as_deref() == Some(template.as_str()))
        .collect();
    assert_eq!(copies.len(), 1, "exactly one board");
    assert_eq!(copies[0].id, body["board"]["id"].as_str().expect("id"));
    assert_eq!(
        copies[0].content.as_deref(),
        Some("retro-v1"),
        "the template's content"
    );
    assert_eq!(
        app.emulator.member_calls().len(),
        3,
        "20 + 5 editors, 20 viewers"
    );
    assert_chunked(&app, &copies[0].id);

    let invited = body["invitations"]["invited"].as_array().expect("invited");
    let failed = body["invitations"]["failed"].as_array().expect("failed");
    assert_eq!(invited.len(), 43);
    assert_eq!(failed.len(), 2, "reported, not retried: {failed:?}");
    assert!(failed.iter().all(|f| f["email"]
        .as_str()
        .is_some_and(|e| e.ends_with(FAILING_INVITATION_DOMAIN))
        && f["reason"] == "INVITATION_FAILED"));
    app.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn a_fault_on_the_second_invitation_chunk_is_finished_by_a_retry_with_the_same_key() {
    let app = TestApp::new().await;
    app.connect("lev").await;
    let template = app
        .emulator
        .add_template(TEAM_ID, "Retro template", "retro-v1");
    app.emulator
        .inject_member_faults(&[BoardFault::Pass, BoardFault::FailBefore(503)]);

    let first = post(&app, "lev", &retro(&template, 0), Some("retro-42")).await;
    first.assert_client_error(503, "miro_unavailable");
    assert!(first.headers.contains_key("retry-after"));
    assert_eq!(
        app.emulator.member_calls().len(),
        1,
        "the first chunk went out"
    );

    let again = post(&app, "lev", &retro(&template, 0), Some("retro-42")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let board_id = again.json()["board"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        again.json()["invitations"]["invited"]
            .as_array()
            .map(Vec::len),
        Some(45)
    );
    assert_eq!(app.emulator.boards().len(), 1, "one copy");
    assert_eq!(
        app.emulator.member_calls().len(),
        3,
        "the first chunk was not sent again"
    );
    assert_chunked(&app, &board_id);

    // A third request replays without calling Miro.
    let replay = post(&app, "lev", &retro(&template, 0), Some("retro-42")).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.headers["idempotency-replayed"], "true");
    assert_eq!(replay.json()["board"]["id"], board_id.as_str());
    assert_eq!(app.emulator.member_calls().len(), 3);
}

#[tokio::test]
async fn a_process_killed_between_the_copy_and_the_invitations_is_finished_by_a_retry() {
    let app = TestApp::new().await;
    app.connect("max").await;
    let template = app
        .emulator
        .add_template(TEAM_ID, "Retro template", "retro-v1");
    // The first invitation is carried out, and its answer never comes in time.
    app.emulator
        .inject_member_faults(&[BoardFault::SlowAfter(60_000)]);
    let body = retro(&template, 0).to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_board-burst"))
        .envs(app.lambda_env())
        .env("BURST_USER", "max")
        .env("BURST_COUNT", "1")
        .env("BURST_BODY", &body)
        .env("BURST_KEY", "retro-crash")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn board-burst");
    for _ in 0..400 {
        if !app.emulator.member_calls().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        app.emulator.member_calls().len(),
        1,
        "the child got to its first invitation"
    );
    child.kill().await.expect("kill the process");

    // Its claim could still be alive: a retry at once is told to wait.
    let waiting = post(&app, "max", &retro(&template, 0), Some("retro-crash")).await;
    waiting.assert_client_error(409, "idempotency_in_progress");
    // Once no invocation could still hold it, the retry resumes with the
    // board the dead process made.
    app.clock.advance(15 * 60 + 1);
    let done = post(&app, "max", &retro(&template, 0), Some("retro-crash")).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    let copies = app
        .emulator
        .boards()
        .into_iter()
        .filter(|b| b.copied_from.is_some())
        .count();
    assert_eq!(copies, 1, "one board");
    assert_eq!(
        done.json()["invitations"]["invited"]
            .as_array()
            .map(Vec::len),
        Some(45)
    );
    let board_id = done.json()["board"]["id"].as_str().expect("id").to_string();
    // The chunk whose answer died with the process is sent again (Miro takes
    // a repeated invitation as a no-op); every member is on the board once.
    assert_eq!(app.emulator.member_calls().len(), 4);
    assert_eq!(app.emulator.board_members(&board_id).len(), 45);
}

#[tokio::test]
async fn a_template_the_user_cannot_see_is_a_clear_client_error() {
    let app = TestApp::new().await;
    app.connect("ned").await;
    let hidden = app.emulator.add_hidden_board(TEAM_ID, "Secret", "secret");
    for template in [hidden.as_str(), "uXjVNoSuchBoard="] {
        let reply = post(&app, "ned", &json!({ "template_board_id": template }), None).await;
        reply.assert_client_error(422, "template_not_found");
    }
    assert!(app.emulator.member_calls().is_empty());

    // Miro's copy takes no project: refused before Miro is called.
    let reply = post(
        &app,
        "ned",
        &json!({ "template_board_id": hidden, "project_id": "123" }),
        None,
    )
    .await;
    reply.assert_client_error(400, "invalid_parameter");
    assert!(reply.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("project")));
    for bad in [
        json!({ "members": [{ "email": "not-an-email", "role": "editor" }] }),
        json!({ "members": [{ "email": "a@example.com", "role": "owner" }] }),
        json!({ "members": (0..101).map(|i| json!({ "email": format!("p{i}@example.com"), "role": "viewer" })).collect::<Vec<_>>() }),
    ] {
        let reply = post(&app, "ned", &bad, None).await;
        assert!(
            reply.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {} {}",
            reply.status,
            reply.body
        );
    }
    assert!(app.emulator.boards().is_empty(), "nothing made");
}

#[tokio::test]
async fn a_template_in_a_team_without_a_connection_takes_one_consent() {
    let app = TestApp::new().await;
    app.connect("ora").await;
    let template = app
        .emulator
        .add_template(SECOND_TEAM_ID, "Team two template", "two-v1");
    let body = json!({
        "name": "From team two",
        "template_board_id": template,
        "team_id": SECOND_TEAM_ID,
        "members": [{ "email": "pal@example.com", "role": "commenter" }],
    });
    let asked = post(&app, "ora", &body, None).await;
    asked.assert_client_error(401, "miro_authorization_required");
    let url = url::Url::parse(asked.json()["authorize_url"].as_str().expect("url")).expect("url");
    assert_eq!(
        query_value(&url, "team_id").as_deref(),
        Some(SECOND_TEAM_ID)
    );

    let query = app.consent(url.as_str(), true).await;
    let completion = crate::support::completion_from(&app.callback(&query).await);
    let done = app.complete("ora", &completion).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.json()["board"]["team"]["id"], SECOND_TEAM_ID);
    assert_eq!(
        done.json()["invitations"]["invited"],
        json!(["pal@example.com"])
    );
    let copies: Vec<_> = app
        .emulator
        .boards()
        .into_iter()
        .filter(|b| b.copied_from.is_some())
        .collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].content.as_deref(), Some("two-v1"));
}

//! Connections per Miro team, through the HTTP handlers against the emulator
//! on DynamoDB Local: a user connected in two teams gets boards in each with
//! that team's own token; a team without a connection (or one where Miro says
//! the app is not installed) is one consent away; disconnecting one team
//! leaves the other; nobody reaches another user's connection.

use crate::support::{completion_from, consent_with, query_value, Reply, TestApp};
use lambda_http::http::{Method, StatusCode};
use miro_emulator::{SECOND_TEAM_ID, SECOND_TEAM_NAME, TEAM_ID, THIRD_TEAM_ID};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

/// Starts a flow preselecting `team`, consents as Miro's page offers it,
/// and completes it.
async fn connect_team(app: &TestApp, user: &str, team: &str) -> Reply {
    let started = app
        .start(user, Some(&json!({ "team_id": team }).to_string()))
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let url = started.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    finish_consent(app, user, &url, None).await
}

/// Consents at `url` (picking `pick` on Miro's page, if given), follows the
/// callback and completes the flow.
async fn finish_consent(app: &TestApp, user: &str, url: &str, pick: Option<&str>) -> Reply {
    let mut form = vec![("decision", "allow")];
    if let Some(team) = pick {
        form.push(("team_id", team));
    }
    let query = consent_with(url, &form).await;
    let back = app.callback(&query).await;
    let done = app.complete(user, &completion_from(&back)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    done
}

async fn list(app: &TestApp, user: &str) -> serde_json::Value {
    let listed = app
        .call(Method::GET, "/miro/connections", Some(user), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.json()["connections"].clone()
}

fn teams_of(connections: &serde_json::Value) -> Vec<(String, bool)> {
    connections
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            (
                c["team_id"].as_str().expect("team").to_string(),
                c["default"].as_bool().expect("default"),
            )
        })
        .collect()
}

async fn board_in(app: &TestApp, user: &str, team: Option<&str>, name: &str) -> Reply {
    let mut body = json!({ "name": name });
    if let Some(team) = team {
        body["team_id"] = json!(team);
    }
    app.create_board(user, &body.to_string()).await
}

#[tokio::test]
async fn two_teams_each_get_boards_with_their_own_token() {
    let app = TestApp::new().await;
    let first = connect_team(&app, "ana", TEAM_ID).await;
    assert_eq!(first.json()["connection"]["team_id"], TEAM_ID);
    assert_eq!(first.json()["connection"]["default"], true);
    let second = connect_team(&app, "ana", SECOND_TEAM_ID).await;
    assert_eq!(second.json()["connection"]["team_id"], SECOND_TEAM_ID);
    assert_eq!(second.json()["connection"]["team_name"], SECOND_TEAM_NAME);
    assert_eq!(
        second.json()["connection"]["default"],
        false,
        "a later connection does not take the default over"
    );
    assert_eq!(
        teams_of(&list(&app, "ana").await),
        vec![(TEAM_ID.into(), true), (SECOND_TEAM_ID.into(), false)]
    );

    for (team, name) in [(TEAM_ID, "In the first"), (SECOND_TEAM_ID, "In the second")] {
        let made = board_in(&app, "ana", Some(team), name).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        assert_eq!(made.json()["board"]["team"]["id"], team);
    }
    let unnamed = board_in(&app, "ana", None, "Default team").await;
    assert_eq!(unnamed.json()["board"]["team"]["id"], TEAM_ID);

    let boards = app.emulator.boards();
    assert_eq!(boards.len(), 3);
    for board in &boards {
        assert_eq!(
            app.emulator.token_team(&board.access_token).as_deref(),
            Some(board.team_id.as_str()),
            "{} was made with its own team's token",
            board.name
        );
    }
    assert_ne!(boards[0].access_token, boards[1].access_token);

    // The default moves where the user says, and boards follow it.
    let chosen = app
        .call(
            Method::PUT,
            &format!("/miro/connections/{SECOND_TEAM_ID}/default"),
            Some("ana"),
            None,
        )
        .await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.body);
    assert_eq!(
        teams_of(&chosen.json()["connections"]),
        vec![(TEAM_ID.into(), false), (SECOND_TEAM_ID.into(), true)]
    );
    let unnamed = board_in(&app, "ana", None, "New default").await;
    assert_eq!(unnamed.json()["board"]["team"]["id"], SECOND_TEAM_ID);
    let unknown = app
        .call(
            Method::PUT,
            &format!("/miro/connections/{THIRD_TEAM_ID}/default"),
            Some("ana"),
            None,
        )
        .await;
    unknown.assert_client_error(404, "not_connected");
    app.assert_no_secret_leaked(&[]);
}

#[tokio::test]
async fn a_board_for_a_team_without_a_connection_takes_one_consent_and_is_made_once() {
    let app = TestApp::new().await;
    connect_team(&app, "bea", TEAM_ID).await;
    let asked = board_in(&app, "bea", Some(THIRD_TEAM_ID), "Third team board").await;
    asked.assert_client_error(401, "miro_authorization_required");
    assert!(app.emulator.boards().is_empty(), "Miro was not called");
    let url = url::Url::parse(asked.json()["authorize_url"].as_str().expect("url")).expect("url");
    assert_eq!(
        query_value(&url, "team_id").as_deref(),
        Some(THIRD_TEAM_ID),
        "the consent preselects the board's team"
    );

    let done = finish_consent(&app, "bea", url.as_str(), None).await;
    assert_eq!(done.json()["connection"]["team_id"], THIRD_TEAM_ID);
    assert_eq!(done.json()["board"]["name"], "Third team board");
    assert_eq!(done.json()["board"]["team"]["id"], THIRD_TEAM_ID);
    let boards = app.emulator.boards();
    assert_eq!(boards.len(), 1, "exactly once");
    assert_eq!(boards[0].team_id, THIRD_TEAM_ID);
    assert_eq!(
        teams_of(&list(&app, "bea").await),
        vec![(TEAM_ID.into(), true), (THIRD_TEAM_ID.into(), false)]
    );
}

#[tokio::test]
async fn the_team_picked_at_miro_is_the_one_connected() {
    let app = TestApp::new().await;
    let started = app
        .start("cyd", Some(&json!({ "team_id": TEAM_ID }).to_string()))
        .await;
    let url = started.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    // Miro's page preselects TEAM_ID; the user picks the second team there.
    let done = finish_consent(&app, "cyd", &url, Some(SECOND_TEAM_ID)).await;
    assert_eq!(done.json()["connection"]["team_id"], SECOND_TEAM_ID);
    assert_eq!(
        teams_of(&list(&app, "cyd").await),
        vec![(SECOND_TEAM_ID.into(), true)]
    );
    assert!(app.connection_in("cyd", SECOND_TEAM_ID).await.is_some());
    assert!(app.connection("cyd").await.is_none());
}

#[tokio::test]
async fn disconnecting_one_team_leaves_the_other_working() {
    let app = TestApp::new().await;
    connect_team(&app, "dov", TEAM_ID).await;
    connect_team(&app, "dov", SECOND_TEAM_ID).await;
    let first_token = app.connection("dov").await.expect("connected").access_token;
    let second_token = app
        .connection_in("dov", SECOND_TEAM_ID)
        .await
        .expect("connected")
        .access_token;

    for _ in 0..2 {
        let gone = app
            .call(
                Method::DELETE,
                &format!("/miro/connections/{TEAM_ID}"),
                Some("dov"),
                None,
            )
            .await;
        assert_eq!(
            gone.status,
            StatusCode::NO_CONTENT,
            "idempotent: {}",
            gone.body
        );
    }
    let revoked = app.emulator.revoked_tokens();
    assert!(revoked.contains(&first_token.expose().to_string()));
    assert!(!revoked.contains(&second_token.expose().to_string()));
    assert_eq!(
        teams_of(&list(&app, "dov").await),
        vec![(SECOND_TEAM_ID.into(), true)],
        "the default moved to the remaining connection"
    );

    let kept = board_in(&app, "dov", Some(SECOND_TEAM_ID), "Still here").await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);
    let unnamed = board_in(&app, "dov", None, "Default").await;
    assert_eq!(unnamed.json()["board"]["team"]["id"], SECOND_TEAM_ID);
    let asked = board_in(&app, "dov", Some(TEAM_ID), "Gone team").await;
    asked.assert_client_error(401, "miro_authorization_required");

    let all = app
        .call(Method::DELETE, "/miro/connections", Some("dov"), None)
        .await;
    assert_eq!(all.status, StatusCode::NO_CONTENT, "{}", all.body);
    assert_eq!(list(&app, "dov").await, json!([]));
    assert!(app
        .emulator
        .revoked_tokens()
        .contains(&second_token.expose().to_string()));
    assert!(app.connection_in("dov", SECOND_TEAM_ID).await.is_none());
}

#[tokio::test]
async fn application_not_installed_at_miro_takes_the_same_one_consent_path() {
    let app = TestApp::new().await;
    connect_team(&app, "eli", TEAM_ID).await;
    connect_team(&app, "eli", SECOND_TEAM_ID).await;
    // An admin removes the app from the second team: Miro says nothing, and
    // the next call there answers `applicationNotInstalled`.
    app.emulator.uninstall_app(SECOND_TEAM_ID);

    let asked = board_in(&app, "eli", Some(SECOND_TEAM_ID), "After the uninstall").await;
    asked.assert_client_error(401, "miro_authorization_required");
    assert!(app.emulator.boards().is_empty());
    assert!(
        app.connection_in("eli", SECOND_TEAM_ID).await.is_some(),
        "the connection that got the error is kept"
    );
    let url = url::Url::parse(asked.json()["authorize_url"].as_str().expect("url")).expect("url");
    assert_eq!(
        query_value(&url, "team_id").as_deref(),
        Some(SECOND_TEAM_ID)
    );

    let done = finish_consent(&app, "eli", url.as_str(), None).await;
    assert_eq!(done.json()["board"]["name"], "After the uninstall");
    let boards = app.emulator.boards();
    assert_eq!(boards.len(), 1, "exactly once");
    assert_eq!(boards[0].team_id, SECOND_TEAM_ID);
    let first = board_in(&app, "eli", Some(TEAM_ID), "First team still works").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
}

#[tokio::test]
async fn events_take_a_team_with_the_same_rules() {
    let app = TestApp::new().await;
    connect_team(&app, "fay", TEAM_ID).await;
    connect_team(&app, "fay", SECOND_TEAM_ID).await;
    let request = |team: &str| miro_connect::domain::BoardRequest {
        name: Some(format!("Event board in {team}")),
        team_id: Some(team.to_string()),
        ..Default::default()
    };
    let user = miro_connect::identity::AppUser::parse("fay").expect("user");
    let deadline = miro_connect::service::Deadline::no_waiting();
    let made = app
        .service
        .create_board_as(
            &user,
            Some("event-1"),
            request(SECOND_TEAM_ID),
            deadline,
            miro_connect::service::Consent::ReportOnly,
        )
        .await
        .expect("made");
    assert_eq!(made.board.team.expect("team").id, SECOND_TEAM_ID);
    let missing = app
        .service
        .create_board_as(
            &user,
            Some("event-2"),
            request(THIRD_TEAM_ID),
            deadline,
            miro_connect::service::Consent::ReportOnly,
        )
        .await;
    assert!(
        matches!(
            missing,
            Err(miro_connect::Error::AuthorizationRequired(None))
        ),
        "reported, without a link: {missing:?}"
    );
}

#[tokio::test]
async fn one_user_never_reaches_another_users_connection_whatever_team_id() {
    let app = TestApp::new().await;
    connect_team(&app, "gil", TEAM_ID).await;
    let theirs = app.connection("gil").await.expect("connected");

    // Another user naming gil's team gets their own (missing) connection.
    let asked = board_in(&app, "hew", Some(TEAM_ID), "Not mine").await;
    asked.assert_client_error(401, "miro_authorization_required");
    assert_eq!(list(&app, "hew").await, json!([]));
    let default = app
        .call(
            Method::PUT,
            &format!("/miro/connections/{TEAM_ID}/default"),
            Some("hew"),
            None,
        )
        .await;
    default.assert_client_error(404, "not_connected");
    let gone = app
        .call(
            Method::DELETE,
            &format!("/miro/connections/{TEAM_ID}"),
            Some("hew"),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.connection("gil").await,
        Some(theirs),
        "gil's connection untouched"
    );
    assert!(app.emulator.boards().is_empty());

    // A team id that is not Miro's is refused before anything is read.
    for bad in ["..%2F..%2Fx", "a%23b", "TEAM%23x"] {
        let refused = app
            .call(
                Method::DELETE,
                &format!("/miro/connections/{bad}"),
                Some("hew"),
                None,
            )
            .await;
        refused.assert_client_error(400, "invalid_parameter");
    }
}

/// The race of `tokens::fifty_concurrent_creations_in_two_processes_refresh_once`,
/// on two teams of one user at once (two processes, 26 each, the teams in
/// turn): one refresh per team.
#[tokio::test]
async fn concurrent_creations_on_two_teams_in_two_processes_refresh_each_team_once() {
    let app = TestApp::new().await;
    connect_team(&app, "ivo", TEAM_ID).await;
    connect_team(&app, "ivo", SECOND_TEAM_ID).await;
    let mut before = Vec::new();
    for team in [TEAM_ID, SECOND_TEAM_ID] {
        before.push(app.connection_in("ivo", team).await.expect("connected"));
    }
    app.make_refresh_due_in("ivo", TEAM_ID).await;
    app.make_refresh_due_in("ivo", SECOND_TEAM_ID).await;
    app.emulator.advance_clock(3600);
    assert_eq!(app.emulator.token_calls(), 2, "two code exchanges");

    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_board-burst"))
            .envs(app.lambda_env())
            .env("BURST_USER", "ivo")
            .env("BURST_COUNT", "26")
            .env("BURST_TEAMS", format!("{TEAM_ID},{SECOND_TEAM_ID}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn board-burst")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(120), a.wait_with_output()),
        tokio::time::timeout(Duration::from_secs(120), b.wait_with_output())
    );
    let mut statuses = Vec::new();
    for out in [a, b] {
        let out = out
            .expect("the burst finished in time")
            .expect("burst output");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        statuses.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    assert_eq!(statuses.len(), 52);
    assert!(statuses.iter().all(|s| s == "201"), "{statuses:?}");
    assert_eq!(
        app.emulator.token_calls(),
        4,
        "exactly one refresh per team reached Miro"
    );
    let boards = app.emulator.boards();
    assert_eq!(boards.len(), 52);
    for (old, team) in before.iter().zip([TEAM_ID, SECOND_TEAM_ID]) {
        assert_eq!(boards.iter().filter(|b| b.team_id == team).count(), 26);
        let now = app
            .connection_in("ivo", team)
            .await
            .expect("still connected");
        assert_eq!(now.version, old.version + 1, "{team}: one refresh");
        assert_ne!(now.refresh_token, old.refresh_token);
    }
}

#[tokio::test]
async fn a_reconnect_never_takes_the_default_back() {
    use miro_connect::store::ConnectionStore;
    let app = TestApp::new().await;
    connect_team(&app, "jan", TEAM_ID).await;
    connect_team(&app, "jan", SECOND_TEAM_ID).await;
    // The default team's connection ends without the user asking (a dead
    // grant removes it): boards go to the other one from then on.
    let first = app.connection("jan").await.expect("connected");
    assert!(app
        .store
        .delete_connection_at(&first.key, first.version)
        .await
        .expect("delete"));
    assert_eq!(
        teams_of(&list(&app, "jan").await),
        vec![(SECOND_TEAM_ID.into(), true)]
    );

    // A second later (the list is oldest first; within one second, by team).
    app.clock.advance(1);
    let again = connect_team(&app, "jan", TEAM_ID).await;
    assert_eq!(again.json()["connection"]["default"], false);
    assert_eq!(
        teams_of(&list(&app, "jan").await),
        vec![(SECOND_TEAM_ID.into(), true), (TEAM_ID.into(), false)],
        "the team that served as default stays it"
    );
    let unnamed = board_in(&app, "jan", None, "Where it went").await;
    assert_eq!(unnamed.json()["board"]["team"]["id"], SECOND_TEAM_ID);
}

/// start → consent in `team` → callback: the completion and its flow secret,
/// as one tab of the app holds them.
async fn consented(app: &TestApp, user: &str, team: &str) -> (String, String) {
    let started = app
        .start(user, Some(&json!({ "team_id": team }).to_string()))
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let secret = started.json()["flow_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let url = started.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    let back = app
        .callback(&consent_with(&url, &[("decision", "allow")]).await)
        .await;
    (completion_from(&back), secret)
}

#[tokio::test]
async fn two_first_connects_at_once_answer_one_default() {
    let app = TestApp::new().await;
    for round in 0..6 {
        let user = format!("twin-{round}");
        let (a, a_secret) = consented(&app, &user, TEAM_ID).await;
        let (b, b_secret) = consented(&app, &user, SECOND_TEAM_ID).await;
        let (done_a, done_b) = tokio::join!(
            app.complete_with(&user, &a, Some(&a_secret)),
            app.complete_with(&user, &b, Some(&b_secret)),
        );
        let mut answered = Vec::new();
        for done in [&done_a, &done_b] {
            assert_eq!(done.status, StatusCode::OK, "{}", done.body);
            let connection = &done.json()["connection"];
            if connection["default"] == true {
                answered.push(connection["team_id"].as_str().expect("team").to_string());
            }
        }
        assert_eq!(answered.len(), 1, "round {round}: {answered:?}");
        let listed: Vec<String> = teams_of(&list(&app, &user).await)
            .into_iter()
            .filter(|(_, default)| *default)
            .map(|(team, _)| team)
            .collect();
        assert_eq!(listed, answered, "round {round}: the list agrees");
    }
}

#[tokio::test]
async fn a_default_chosen_while_its_team_is_disconnected_never_outlives_it() {
    let app = TestApp::new().await;
    for round in 0..6 {
        let user = format!("race-{round}");
        connect_team(&app, &user, TEAM_ID).await;
        connect_team(&app, &user, SECOND_TEAM_ID).await;
        let default = format!("/miro/connections/{SECOND_TEAM_ID}/default");
        let team = format!("/miro/connections/{SECOND_TEAM_ID}");
        let (chosen, gone) = tokio::join!(
            app.call(Method::PUT, &default, Some(&user), None),
            app.call(Method::DELETE, &team, Some(&user), None),
        );
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
        assert!(
            chosen.status == StatusCode::OK || chosen.status == StatusCode::NOT_FOUND,
            "{}",
            chosen.body
        );
        // Had the default kept naming the team just deleted, connecting it
        // again would take the default back.
        app.clock.advance(1);
        let again = connect_team(&app, &user, SECOND_TEAM_ID).await;
        assert_eq!(
            again.json()["connection"]["default"],
            false,
            "round {round}: {}",
            chosen.body
        );
    }
}

//! The emulator's own behaviour, over HTTP on loopback.

mod items;

use crate::oauth::s256;
use crate::*;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REDIRECT: &str = "http://app.test/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier";

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(EmulatorConfig {
        redirect_uris: vec![REDIRECT.into()],
        ..config
    })
    .await
    .expect("start")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn authorize_url(emu: &Emulator, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", emu.base_url())).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &emu.config().client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "s")
        .extend_pairs(extra);
    url.to_string()
}

/// Posts the consent form; the code, or the status of Miro's refusal.
async fn consent(emu: &Emulator, extra: &[(&str, &str)], form: &str) -> Result<String, u16> {
    let r = client()
        .post(authorize_url(emu, extra))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .expect("authorize");
    let Some(location) = r.headers().get("location") else {
        return Err(r.status().as_u16());
    };
    let location = url::Url::parse(location.to_str().expect("ascii")).expect("location");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string());
    code.ok_or(r.status().as_u16())
}

async fn token(emu: &Emulator, form: &[(&str, &str)]) -> reqwest::Response {
    let c = emu.config();
    let mut all = vec![
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    all.extend_from_slice(form);
    client()
        .post(format!("{}/v1/oauth/token", emu.base_url()))
        .form(&all)
        .send()
        .await
        .expect("token")
}

async fn exchange(emu: &Emulator, code: &str, verifier: Option<&str>) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    token(emu, &form).await
}

async fn json(r: reqwest::Response) -> Value {
    r.json().await.expect("json")
}

async fn create_board(emu: &Emulator, access: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v2/boards", emu.base_url()))
        .bearer_auth(access)
        .header("content-type", "application/json")
        .body(r#"{"name":"B"}"#)
        .send()
        .await
        .expect("board")
}

#[tokio::test]
async fn pkce_s256_is_enforced_and_a_wrong_verifier_burns_the_code() {
    let emu = emulator(EmulatorConfig::default()).await;
    let challenge = s256(VERIFIER);
    let pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = consent(&emu, &pkce, "decision=allow").await.expect("code");
    assert_eq!(emu.pkce_challenges_seen(), 1);

    let missing = exchange(&emu, &code, None).await;
    assert_eq!(missing.status(), 400);
    assert_eq!(json(missing).await["message"], "Invalid code verifier.");
    let burnt = exchange(&emu, &code, Some(VERIFIER)).await;
    assert_eq!(burnt.status(), 400, "the code was burnt");

    let code = consent(&emu, &pkce, "decision=allow").await.expect("code");
    let wrong = exchange(&emu, &code, Some(&format!("{VERIFIER}x"))).await;
    assert_eq!(wrong.status(), 400);
    let code = consent(&emu, &pkce, "decision=allow").await.expect("code");
    let ok = exchange(&emu, &code, Some(VERIFIER)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(emu.pkce_challenges_seen(), 3);

    // Without a challenge, a verifier is ignored.
    let code = consent(&emu, &[], "decision=allow").await.expect("code");
    assert_eq!(exchange(&emu, &code, Some("whatever")).await.status(), 200);
    assert_eq!(emu.pkce_challenges_seen(), 3);

    for method in [Some("plain"), Some("S512"), None] {
        let mut q = vec![("code_challenge", challenge.as_str())];
        q.extend(method.map(|m| ("code_challenge_method", m)));
        assert_eq!(consent(&emu, &q, "decision=allow").await, Err(400));
        let page = client()
            .get(authorize_url(&emu, &q))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 400);
    }
}

#[tokio::test]
async fn a_faulted_token_call_consumes_nothing() {
    let emu = emulator(EmulatorConfig::default()).await;
    let code = consent(&emu, &[], "decision=allow").await.expect("code");
    emu.inject_token_faults(&[
        TokenFault::RateLimited {
            retry_after: Some(7),
            reset_in: Some(30),
        },
        TokenFault::Redirect,
        TokenFault::HtmlOk,
        TokenFault::EmptyOk,
        TokenFault::Status(503),
        TokenFault::HtmlError(401),
    ]);
    let limited = exchange(&emu, &code, None).await;
    assert_eq!(limited.status(), 429);
    let h = limited.headers().clone();
    assert_eq!(h["retry-after"], "7");
    let reset: i64 = h["x-ratelimit-reset"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    assert!((now + 29..=now + 31).contains(&reset), "{reset} vs {now}");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert_eq!(json(limited).await["code"], "tooManyRequests");

    let redirect = exchange(&emu, &code, None).await;
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["location"], "https://miro.com/login");
    assert!(redirect.bytes().await.expect("body").is_empty());

    let html = exchange(&emu, &code, None).await;
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));

    let empty = exchange(&emu, &code, None).await;
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.headers()["content-length"], "0");
    assert_eq!(empty.headers()["content-type"], "application/json");

    let down = exchange(&emu, &code, None).await;
    assert_eq!(down.status(), 503);
    assert_eq!(json(down).await["type"], "error");

    let proxy = exchange(&emu, &code, None).await;
    assert_eq!(proxy.status(), 401);
    assert!(proxy.text().await.expect("body").contains("<html>"));

    // A stall: no answer, and still nothing consumed.
    emu.set_token_fault(Some(TokenFault::Stall));
    let stalled = tokio::time::timeout(Duration::from_millis(300), exchange(&emu, &code, None));
    assert!(stalled.await.is_err(), "never answered");
    emu.set_token_fault(None);

    let ok = exchange(&emu, &code, None).await;
    assert_eq!(ok.status(), 200, "the code was never used");
    let body = json(ok).await;
    assert_eq!(emu.token_calls(), 8);

    // A refresh under a fault is not rotated.
    let refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    emu.set_token_fault(Some(TokenFault::Status(502)));
    let grant = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    assert_eq!(token(&emu, &grant).await.status(), 502);
    emu.set_token_fault(None);
    assert_eq!(token(&emu, &grant).await.status(), 200);
    assert_eq!(token(&emu, &grant).await.status(), 400, "rotated now");
}

#[tokio::test]
async fn hostile_but_successful_answers() {
    let emu = emulator(EmulatorConfig::default()).await;
    emu.override_expires_in(Some(json!(u64::MAX)));
    let code = consent(&emu, &[], "decision=allow").await.expect("code");
    let text = exchange(&emu, &code, None)
        .await
        .text()
        .await
        .expect("body");
    assert!(
        text.contains("\"expires_in\":18446744073709551615"),
        "{text}"
    );
    let access = serde_json::from_str::<Value>(&text).expect("json")["access_token"]
        .as_str()
        .expect("access")
        .to_string();

    emu.override_view_link(Some("javascript:alert(1)".into()));
    emu.pad_board_bodies(Some(OVERSIZE_PADDING));
    let board = create_board(&emu, &access).await;
    assert_eq!(board.status(), 201);
    assert!(board.headers().get("content-length").is_none());
    let bytes = board.bytes().await.expect("body");
    assert!(bytes.len() > OVERSIZE_PADDING);
    let board: Value = serde_json::from_slice(&bytes).expect("still JSON");
    assert_eq!(board["viewLink"], "javascript:alert(1)");
    assert_eq!(emu.boards().len(), 1);

    emu.pad_token_bodies(Some(10));
    let code = consent(&emu, &[], "decision=allow").await.expect("code");
    let body = json(exchange(&emu, &code, None).await).await;
    assert_eq!(body["_padding"], "aaaaaaaaaa");
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn a_rate_limit_window_starts_at_the_first_request() {
    let emu = emulator(EmulatorConfig {
        board_rate_limit: Some((1, 60)),
        ..EmulatorConfig::default()
    })
    .await;
    let code = consent(&emu, &[], "decision=allow").await.expect("code");
    let access = json(exchange(&emu, &code, None).await).await["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let first = create_board(&emu, &access).await;
    assert_eq!(first.status(), 201);
    let second = create_board(&emu, &access).await;
    assert_eq!(second.status(), 429);
    let reset: i64 = second.headers()["x-ratelimit-reset"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!((now + 60..=now + 62).contains(&reset), "{reset} vs {now}");
    emu.advance_clock(60);
    assert_eq!(create_board(&emu, &access).await.status(), 201);
}

#[tokio::test]
async fn revoking_kills_the_refresh_token_too() {
    let emu = emulator(EmulatorConfig::default()).await;
    let code = consent(&emu, &[], "decision=allow").await.expect("code");
    let body = json(exchange(&emu, &code, None).await).await;
    let access = body["access_token"].as_str().expect("access").to_string();
    let refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    assert_eq!(emu.live_grants(), 1);
    let c = emu.config().clone();
    let revoke = || {
        client()
            .post(format!("{}/v2/oauth/revoke", emu.base_url()))
            .json(&json!({ "clientId": c.client_id, "clientSecret": c.client_secret, "accessToken": access }))
            .send()
    };
    emu.fail_revoke(Some(503));
    assert_eq!(revoke().await.expect("revoke").status(), 503);
    assert!(emu.revoked_tokens().is_empty());
    assert_eq!(emu.live_grants(), 1);
    emu.fail_revoke(None);
    assert_eq!(revoke().await.expect("revoke").status(), 204);
    assert_eq!(emu.revoked_tokens(), vec![access.clone()]);
    assert_eq!(emu.live_grants(), 0);
    assert!(!emu.access_token_works(&access));
    let grant = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    assert_eq!(token(&emu, &grant).await.status(), 400);
}

#[tokio::test]
async fn the_attacker_consents_as_another_miro_user() {
    let emu = emulator(EmulatorConfig::default()).await;
    let page = client()
        .get(authorize_url(&emu, &[]))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("page");
    assert!(page.contains("id=\"allow-as-attacker\""));
    let code = consent(&emu, &[], "miro_user=attacker")
        .await
        .expect("code");
    let body = json(exchange(&emu, &code, None).await).await;
    assert_eq!(body["user_id"], ATTACKER_MIRO_USER_ID);
    let access = body["access_token"].as_str().expect("access").to_string();
    assert_eq!(create_board(&emu, &access).await.status(), 201);
    assert_eq!(emu.boards()[0].miro_user_id, ATTACKER_MIRO_USER_ID);
    // A refreshed token stays the attacker's.
    let refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    let grant = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    let access = json(token(&emu, &grant).await).await["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    assert_eq!(create_board(&emu, &access).await.status(), 201);
    assert_eq!(emu.boards()[1].miro_user_id, ATTACKER_MIRO_USER_ID);

    let code = consent(&emu, &[], "decision=allow").await.expect("code");
    assert_eq!(
        json(exchange(&emu, &code, None).await).await["user_id"],
        MIRO_USER_ID
    );
    assert!(consent(&emu, &[], "decision=deny").await.is_err());
}

/// Posts the consent form; where Miro redirected to, or the status of its refusal.
async fn consent_redirect(
    emu: &Emulator,
    extra: &[(&str, &str)],
    form: &str,
) -> Result<url::Url, u16> {
    let r = client()
        .post(authorize_url(emu, extra))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .expect("authorize");
    match r.headers().get("location") {
        Some(l) => Ok(url::Url::parse(l.to_str().expect("ascii")).expect("location")),
        None => Err(r.status().as_u16()),
    }
}

fn param(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string())
}

/// Consents (the form as given), exchanges the code; the token answer.
async fn tokens(emu: &Emulator, extra: &[(&str, &str)], form: &str) -> Value {
    let code = consent(emu, extra, form).await.expect("code");
    json(exchange(emu, &code, None).await).await
}

/// An access token for the Miro user, installed in `team`.
async fn access_in(emu: &Emulator, team: &str) -> String {
    let body = tokens(emu, &[], &format!("decision=allow&team_id={team}")).await;
    body["access_token"].as_str().expect("access").to_string()
}

/// A REST call with a bearer token and a JSON body: (status, headers, body).
async fn call(
    emu: &Emulator,
    method: reqwest::Method,
    path: &str,
    access: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = client()
        .request(method, format!("{}{path}", emu.base_url()))
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .expect("call");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = r.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn post(emu: &Emulator, path: &str, access: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = call(emu, reqwest::Method::POST, path, access, body).await;
    (status, body)
}

async fn copy(emu: &Emulator, source: &str, access: &str, body: Value) -> (u16, Value) {
    let path = format!("/v2/boards?copy_from={source}");
    let (status, _, body) = call(emu, reqwest::Method::PUT, &path, access, body).await;
    (status, body)
}

async fn invite(emu: &Emulator, board: &str, access: &str, body: Value) -> (u16, Value) {
    post(emu, &format!("/v2/boards/{board}/members"), access, body).await
}

#[tokio::test]
async fn the_team_picked_at_consent_is_the_tokens_team() {
    let emu = emulator(EmulatorConfig::default()).await;
    let page = |q: Vec<(&'static str, &'static str)>| {
        let url = authorize_url(&emu, &q);
        async move {
            client()
                .get(url)
                .send()
                .await
                .expect("page")
                .text()
                .await
                .expect("page")
        }
    };
    let preselected = page(vec![("team_id", SECOND_TEAM_ID)]).await;
    assert!(preselected.contains("<select name=\"team_id\" id=\"team\">"));
    assert!(preselected.contains(&format!(
        "<option value=\"{SECOND_TEAM_ID}\" selected>{SECOND_TEAM_NAME}</option>"
    )));
    assert!(preselected.contains(&format!("<option value=\"{THIRD_TEAM_ID}\">")));
    let unknown = page(vec![("team_id", "42")]).await;
    assert!(unknown.contains(&format!("<option value=\"{TEAM_ID}\" selected>")));
    assert!(!unknown.contains("42"));

    // Preselected the second team, the user picks the third: the third it is.
    let second = [("team_id", SECOND_TEAM_ID)];
    let picked = format!("decision=allow&team_id={THIRD_TEAM_ID}");
    let back = consent_redirect(&emu, &second, &picked)
        .await
        .expect("redirect");
    assert_eq!(param(&back, "team_id").as_deref(), Some(THIRD_TEAM_ID));
    let code = param(&back, "code").expect("code");
    let body = json(exchange(&emu, &code, None).await).await;
    assert_eq!(body["team_id"], THIRD_TEAM_ID);
    let access = body["access_token"].as_str().expect("access").to_string();
    assert_eq!(emu.token_team(&access).as_deref(), Some(THIRD_TEAM_ID));
    let context = client()
        .get(format!("{}/v1/oauth-token", emu.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .expect("context");
    let context = json(context).await;
    assert_eq!(context["team"]["id"], THIRD_TEAM_ID);
    assert_eq!(context["team"]["name"], THIRD_TEAM_NAME);
    // A refresh keeps the team.
    let refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    let grant = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    let refreshed = json(token(&emu, &grant).await).await;
    assert_eq!(refreshed["team_id"], THIRD_TEAM_ID);
    let access = refreshed["access_token"].as_str().expect("access");
    assert_eq!(emu.token_team(access).as_deref(), Some(THIRD_TEAM_ID));

    // No team in the form: the preselected one; no preselection: the first.
    let back = consent_redirect(&emu, &second, "decision=allow")
        .await
        .expect("redirect");
    assert_eq!(param(&back, "team_id").as_deref(), Some(SECOND_TEAM_ID));
    let back = consent_redirect(&emu, &[], "decision=allow")
        .await
        .expect("redirect");
    assert_eq!(param(&back, "team_id").as_deref(), Some(TEAM_ID));

    // A team the deciding user is not in: Miro's error page, no redirect.
    let attacker_elsewhere = format!("miro_user=attacker&team_id={SECOND_TEAM_ID}");
    assert_eq!(
        consent_redirect(&emu, &[], &attacker_elsewhere).await,
        Err(400)
    );
    let nowhere = "decision=allow&team_id=3458764517517818999";
    assert_eq!(consent_redirect(&emu, &[], nowhere).await, Err(400));
    let attacker = format!("miro_user=attacker&team_id={TEAM_ID}");
    let back = consent_redirect(&emu, &[], &attacker)
        .await
        .expect("redirect");
    assert_eq!(param(&back, "team_id").as_deref(), Some(TEAM_ID));
    assert_eq!(team_name(SECOND_TEAM_ID), Some(SECOND_TEAM_NAME));
    assert_eq!(team_name("42"), None);

    // The number form, for the team picked.
    let numeric = emulator(EmulatorConfig {
        team_id_as_number: true,
        ..EmulatorConfig::default()
    })
    .await;
    let body = tokens(
        &numeric,
        &[],
        &format!("decision=allow&team_id={SECOND_TEAM_ID}"),
    )
    .await;
    assert_eq!(body["team_id"], json!(3_458_764_517_517_818_868u64));
}

#[tokio::test]
async fn a_token_works_for_its_own_team_only() {
    let emu = emulator(EmulatorConfig::default()).await;
    let first = access_in(&emu, TEAM_ID).await;
    let second = access_in(&emu, SECOND_TEAM_ID).await;
    for (access, team, name) in [
        (&first, TEAM_ID, TEAM_NAME),
        (&second, SECOND_TEAM_ID, SECOND_TEAM_NAME),
    ] {
        let (status, board) = post(&emu, "/v2/boards", access, json!({ "name": name })).await;
        assert_eq!(status, 201, "{board}");
        assert_eq!(board["team"]["id"], team);
        assert_eq!(board["team"]["name"], name);
        let (status, _) = post(&emu, "/v2/boards", access, json!({ "teamId": team })).await;
        assert_eq!(status, 201, "its own team, named");
    }
    for (access, other) in [(&first, SECOND_TEAM_ID), (&second, TEAM_ID)] {
        let (status, body) = post(&emu, "/v2/boards", access, json!({ "teamId": other })).await;
        assert_eq!(status, 403);
        assert_eq!(body["code"], "applicationNotInstalled");
        assert_eq!(body["type"], "error");
    }
    let (status, _) = post(&emu, "/v2/boards", &first, json!({ "teamId": 3 })).await;
    assert_eq!(status, 400, "a team id is a string");
    assert_eq!(emu.boards().len(), 4, "nothing made in another team");
    for b in emu.boards() {
        assert_eq!(
            emu.token_team(&b.access_token).as_deref(),
            Some(b.team_id.as_str()),
            "each board made with its own team's token"
        );
        assert_eq!(b.content, None);
        assert_eq!(b.copied_from, None);
    }
    // The project is in the first team only.
    let in_project = json!({ "projectId": PROJECT_ID });
    assert_eq!(
        post(&emu, "/v2/boards", &first, in_project.clone()).await.0,
        201
    );
    assert_eq!(post(&emu, "/v2/boards", &second, in_project).await.0, 404);
    assert_eq!(emu.token_team("access-never-issued"), None);
}

#[tokio::test]
async fn after_an_uninstall_only_a_new_consent_reaches_the_team() {
    let emu = emulator(EmulatorConfig::default()).await;
    let first = access_in(&emu, TEAM_ID).await;
    let body = tokens(
        &emu,
        &[],
        &format!("decision=allow&team_id={SECOND_TEAM_ID}"),
    )
    .await;
    let old = body["access_token"].as_str().expect("access").to_string();
    let (_, board) = post(&emu, "/v2/boards", &old, json!({})).await;
    let board = board["id"].as_str().expect("id").to_string();
    let template = emu.add_template(SECOND_TEAM_ID, "T", "t");

    emu.uninstall_app(SECOND_TEAM_ID);
    assert!(!emu.app_installed(SECOND_TEAM_ID));
    assert!(emu.app_installed(TEAM_ID));
    let not_installed = |(status, body): (u16, Value)| {
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["code"], "applicationNotInstalled");
    };
    not_installed(post(&emu, "/v2/boards", &old, json!({})).await);
    not_installed(copy(&emu, &template, &old, json!({})).await);
    let one = json!({ "emails": ["a@example.com"] });
    not_installed(invite(&emu, &board, &old, one.clone()).await);
    // Miro says nothing: the token still refreshes, and reaches nothing.
    let refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    let grant = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    let refreshed = json(token(&emu, &grant).await).await;
    let refreshed = refreshed["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    not_installed(post(&emu, "/v2/boards", &refreshed, json!({})).await);
    assert_eq!(
        post(&emu, "/v2/boards", &first, json!({})).await.0,
        201,
        "other teams work"
    );

    // A new consent there installs the app again: its token works, the old ones do not.
    let new = access_in(&emu, SECOND_TEAM_ID).await;
    assert!(emu.app_installed(SECOND_TEAM_ID));
    assert_eq!(post(&emu, "/v2/boards", &new, json!({})).await.0, 201);
    assert_eq!(
        invite(&emu, &board, &new, one).await.0,
        201,
        "the user's board, same team"
    );
    not_installed(post(&emu, "/v2/boards", &refreshed, json!({})).await);
    assert_eq!(emu.boards().len(), 3);
}

#[tokio::test]
async fn a_copy_keeps_the_content_and_makes_a_new_board_each_time() {
    let emu = emulator(EmulatorConfig::default()).await;
    let access = access_in(&emu, TEAM_ID).await;
    let template = emu.add_template(TEAM_ID, "Retro template", "retro-v1");
    let (status, board) = copy(&emu, &template, &access, json!({})).await;
    assert_eq!(status, 201, "{board}");
    assert_ne!(board["id"], template.as_str());
    assert_eq!(board["name"], "Retro template");
    assert_eq!(board["team"]["id"], TEAM_ID);
    assert_eq!(board["owner"]["id"], MIRO_USER_ID);
    assert!(board.get("project").is_none(), "a copy has no project");
    let policy = json!({ "sharingPolicy": { "access": "view" } });
    let named = json!({ "name": "Retro 12", "description": "Sprint 12", "policy": policy });
    let (status, again) = copy(&emu, &template, &access, named).await;
    assert_eq!(status, 201);
    assert_eq!(again["name"], "Retro 12");
    assert_eq!(again["description"], "Sprint 12");
    assert_eq!(again["policy"], policy);
    assert_ne!(again["id"], board["id"], "each copy is a new board");
    let boards = emu.boards();
    assert_eq!(boards.len(), 2);
    for b in &boards {
        assert_eq!(b.content.as_deref(), Some("retro-v1"));
        assert_eq!(b.copied_from.as_deref(), Some(template.as_str()));
        assert_eq!(b.access_token, access);
    }
    // A copy of a copy keeps the content too.
    let copied = boards[0].id.clone();
    assert_eq!(copy(&emu, &copied, &access, json!({})).await.0, 201);
    assert_eq!(emu.boards()[2].content.as_deref(), Some("retro-v1"));

    let hidden = emu.add_hidden_board(TEAM_ID, "Secret", "secret");
    let elsewhere = emu.add_template(SECOND_TEAM_ID, "Other team's", "other");
    for source in [hidden.as_str(), elsewhere.as_str(), "uXnope="] {
        let (status, body) = copy(&emu, source, &access, json!({})).await;
        assert_eq!(status, 404, "{source}");
        assert_eq!(body["code"], "notFound");
    }
    let (status, body) = copy(&emu, &template, &access, json!({ "projectId": PROJECT_ID })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalidParameters"))
    );
    assert_eq!(
        copy(&emu, &template, &access, json!({ "nope": 1 })).await.0,
        400
    );
    assert_eq!(
        copy(&emu, &template, &access, json!({ "name": "" }))
            .await
            .0,
        400
    );
    let other_team = json!({ "teamId": SECOND_TEAM_ID });
    let (status, body) = copy(&emu, &template, &access, other_team).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("applicationNotInstalled"))
    );
    let (status, _, _) = call(&emu, reqwest::Method::PUT, "/v2/boards", &access, json!({})).await;
    assert_eq!(status, 400, "copy_from is required");
    assert_eq!(emu.boards().len(), 3, "nothing copied by a refused call");

    // The other team's template, with a token for that team.
    let second = access_in(&emu, SECOND_TEAM_ID).await;
    let (status, board) = copy(&emu, &elsewhere, &second, json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(board["team"]["name"], SECOND_TEAM_NAME);
    // The attacker sees the first team's templates, not the user's boards.
    let attacker = tokens(&emu, &[], "miro_user=attacker").await["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    assert_eq!(copy(&emu, &template, &attacker, json!({})).await.0, 201);
    assert_eq!(copy(&emu, &copied, &attacker, json!({})).await.0, 404);

    let stats = client()
        .get(format!("{}/_emulator/stats", emu.base_url()))
        .send()
        .await
        .expect("stats");
    assert_eq!(json(stats).await["copies"], 5);
}

#[tokio::test]
async fn invitations_answer_201_with_their_failures() {
    let emu = emulator(EmulatorConfig::default()).await;
    let access = access_in(&emu, TEAM_ID).await;
    let (_, board) = post(&emu, "/v2/boards", &access, json!({ "name": "Team" })).await;
    let board = board["id"].as_str().expect("id").to_string();
    emu.fail_invitations_for(&["Bob@Example.com"]);
    let emails = json!(["ann@example.com", "bob@example.com", "cy@fails.example"]);
    let asked = json!({ "emails": emails, "role": "editor", "message": "Welcome" });
    let (status, body) = invite(&emu, &board, &access, asked).await;
    assert_eq!(status, 201, "{body}");
    let ids = body["successful"].as_array().expect("successful");
    assert_eq!(ids.len(), 1);
    assert!(ids[0].as_u64().is_some_and(|id| id > 1 << 53), "{ids:?}");
    assert_eq!(
        body["failed"],
        json!([
            { "email": "bob@example.com", "reason": "INVITATION_FAILED" },
            { "email": "cy@fails.example", "reason": "INVITATION_FAILED" },
        ])
    );
    // Again: the member is still one, with the same id; the role defaults.
    let (status, again) = invite(
        &emu,
        &board,
        &access,
        json!({ "emails": ["ANN@example.com"] }),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(again["successful"][0], ids[0]);
    assert_eq!(again["failed"], json!([]));
    assert_eq!(
        emu.board_members(&board),
        vec![("ann@example.com".to_string(), "editor".to_string())]
    );
    let calls = emu.member_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].board_id, board);
    assert_eq!(calls[0].role, "editor");
    assert_eq!(calls[0].message.as_deref(), Some("Welcome"));
    assert_eq!(calls[0].failed, ["bob@example.com", "cy@fails.example"]);
    assert_eq!(calls[1].role, "commenter");
    assert_eq!(calls[1].message, None);

    let many: Vec<String> = (0..21).map(|i| format!("p{i}@example.com")).collect();
    for refused in [
        json!({ "emails": many }),
        json!({ "emails": [] }),
        json!({}),
        json!({ "emails": ["not an address"] }),
        json!({ "emails": ["a@example.com"], "role": "admin" }),
        json!({ "emails": ["a@example.com"], "role": 1 }),
        json!({ "emails": ["a@example.com"], "nope": true }),
    ] {
        let (status, body) = invite(&emu, &board, &access, refused.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalidParameters")),
            "{refused}"
        );
    }
    let twenty: Vec<String> = (0..20).map(|i| format!("p{i}@example.com")).collect();
    let (status, body) = invite(
        &emu,
        &board,
        &access,
        json!({ "emails": twenty, "role": "owner" }),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["successful"].as_array().map(Vec::len), Some(20));

    // Boards out of the token's reach.
    let second = access_in(&emu, SECOND_TEAM_ID).await;
    let (_, theirs) = post(&emu, "/v2/boards", &second, json!({})).await;
    let theirs = theirs["id"].as_str().expect("id").to_string();
    let hidden = emu.add_hidden_board(TEAM_ID, "Hidden", "h");
    let one = json!({ "emails": ["a@example.com"] });
    for unreachable in [theirs.as_str(), hidden.as_str(), "uXnope="] {
        let (status, body) = invite(&emu, unreachable, &access, one.clone()).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("notFound")));
    }
    assert_eq!(invite(&emu, &theirs, &second, one).await.0, 201);
    assert_eq!(
        emu.member_calls().len(),
        4,
        "refused calls are not carried out"
    );
}

#[tokio::test]
async fn copy_and_member_faults_are_queued_per_step() {
    let emu = emulator(EmulatorConfig::default()).await;
    let access = access_in(&emu, TEAM_ID).await;
    let template = emu.add_template(TEAM_ID, "T", "t");
    emu.inject_copy_faults(&[
        BoardFault::FailBefore(503),
        BoardFault::FailAfter(500),
        BoardFault::DropAfter,
    ]);
    let (status, body) = copy(&emu, &template, &access, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("internalError"))
    );
    assert_eq!(emu.boards().len(), 0, "FailBefore copies nothing");
    assert_eq!(copy(&emu, &template, &access, json!({})).await.0, 500);
    assert_eq!(emu.boards().len(), 1, "FailAfter copies");
    let dropped = client()
        .put(format!("{}/v2/boards?copy_from={template}", emu.base_url()))
        .bearer_auth(&access)
        .json(&json!({}))
        .send()
        .await;
    // The connection ends before the head or mid-body: never a whole answer.
    match dropped {
        Ok(r) => assert!(r.bytes().await.is_err(), "the answer breaks off"),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    assert_eq!(emu.boards().len(), 2, "DropAfter copies");
    assert_eq!(copy(&emu, &template, &access, json!({})).await.0, 201);
    // Board creation has a queue of its own, untouched.
    assert_eq!(post(&emu, "/v2/boards", &access, json!({})).await.0, 201);

    let board = emu.boards()[0].id.clone();
    emu.inject_member_faults(&[
        BoardFault::Pass,
        BoardFault::FailBefore(503),
        BoardFault::FailAfter(502),
    ]);
    let one = |e: &str| json!({ "emails": [e] });
    assert_eq!(
        invite(&emu, &board, &access, one("a@example.com")).await.0,
        201
    );
    assert_eq!(
        invite(&emu, &board, &access, one("b@example.com")).await.0,
        503
    );
    assert_eq!(
        invite(&emu, &board, &access, one("c@example.com")).await.0,
        502
    );
    assert_eq!(
        invite(&emu, &board, &access, one("d@example.com")).await.0,
        201
    );
    let invited: Vec<String> = emu
        .member_calls()
        .iter()
        .map(|c| c.emails[0].clone())
        .collect();
    assert_eq!(invited, ["a@example.com", "c@example.com", "d@example.com"]);
    assert_eq!(emu.boards().len(), 4, "member faults make no boards");
}

#[tokio::test]
async fn credits_are_counted_per_miro_user() {
    let emu = emulator(EmulatorConfig {
        credit_rate_limit: Some((3_000, 60)),
        ..EmulatorConfig::default()
    })
    .await;
    let access = access_in(&emu, TEAM_ID).await;
    let template = emu.add_template(TEAM_ID, "T", "t");
    let remaining = |h: &reqwest::header::HeaderMap| {
        h["x-ratelimit-remaining"]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    let (status, h, board) = call(
        &emu,
        reqwest::Method::POST,
        "/v2/boards",
        &access,
        json!({}),
    )
    .await;
    assert_eq!((status, remaining(&h)), (201, "2500".into()));
    assert_eq!(h["x-ratelimit-limit"], "3000");
    let board = board["id"].as_str().expect("id").to_string();
    let copy_path = format!("/v2/boards?copy_from={template}");
    let (status, h, _) = call(&emu, reqwest::Method::PUT, &copy_path, &access, json!({})).await;
    assert_eq!(
        (status, remaining(&h)),
        (201, "500".into()),
        "a copy costs 2,000"
    );
    let (status, h, body) = call(&emu, reqwest::Method::PUT, &copy_path, &access, json!({})).await;
    assert_eq!(
        (status, remaining(&h)),
        (429, "500".into()),
        "no room for 2,000"
    );
    assert_eq!(body["code"], "tooManyRequests");
    let members = format!("/v2/boards/{board}/members");
    let (status, h, _) = call(
        &emu,
        reqwest::Method::POST,
        &members,
        &access,
        json!({ "emails": ["a@example.com"] }),
    )
    .await;
    assert_eq!(
        (status, remaining(&h)),
        (201, "0".into()),
        "an invitation costs 500"
    );
    let (status, _, _) = call(
        &emu,
        reqwest::Method::POST,
        "/v2/boards",
        &access,
        json!({}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(emu.credits_spent(MIRO_USER_ID), 3_000);
    // The invitation and the last create came after the window's first 429.
    assert_eq!(emu.rate_limit_stats(), (2, 2));

    // Another Miro user has a budget of their own.
    let attacker = tokens(&emu, &[], "miro_user=attacker").await["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let (status, h, _) = call(
        &emu,
        reqwest::Method::POST,
        "/v2/boards",
        &attacker,
        json!({}),
    )
    .await;
    assert_eq!((status, remaining(&h)), (201, "2500".into()));
    emu.advance_clock(60);
    let (status, h, _) = call(&emu, reqwest::Method::PUT, &copy_path, &access, json!({})).await;
    assert_eq!(
        (status, remaining(&h)),
        (201, "1000".into()),
        "a new window"
    );

    // The old setting: n boards a window is n x 500 credits.
    let boards = emulator(EmulatorConfig {
        board_rate_limit: Some((2, 60)),
        ..EmulatorConfig::default()
    })
    .await;
    let access = access_in(&boards, TEAM_ID).await;
    let (_, h, _) = call(
        &boards,
        reqwest::Method::POST,
        "/v2/boards",
        &access,
        json!({}),
    )
    .await;
    assert_eq!(h["x-ratelimit-limit"], "1000");
    assert_eq!(create_board(&boards, &access).await.status(), 201);
    assert_eq!(create_board(&boards, &access).await.status(), 429);
}

#[test]
fn s256_matches_rfc_7636_appendix_b() {
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[tokio::test]
async fn crowd_users_each_have_a_budget_of_their_own() {
    let emu = emulator(EmulatorConfig {
        credit_rate_limit: Some((500, 60)),
        ..EmulatorConfig::default()
    })
    .await;
    for id in ["1001", "1002"] {
        let body = tokens(&emu, &[], &format!("decision=allow&miro_user={id}")).await;
        assert_eq!(body["user_id"], id);
        assert_eq!(
            body["team_id"], TEAM_ID,
            "a crowd user is in the first team"
        );
        let access = body["access_token"].as_str().expect("access").to_string();
        let (status, _, _) = call(
            &emu,
            reqwest::Method::POST,
            "/v2/boards",
            &access,
            json!({}),
        )
        .await;
        assert_eq!(status, 201, "{id} spends its own 500 credits");
        let (status, _, _) = call(
            &emu,
            reqwest::Method::POST,
            "/v2/boards",
            &access,
            json!({}),
        )
        .await;
        assert_eq!(status, 429, "{id} has none left");
        assert_eq!(emu.credits_spent(id), 500);
    }
    // Not a crowd user: the named users, and anything but digits.
    for id in [
        MIRO_USER_ID,
        ATTACKER_MIRO_USER_ID,
        "12a",
        "",
        "12345678901234567890",
    ] {
        assert!(!is_crowd_user(id), "{id}");
    }
    let body = tokens(&emu, &[], "decision=allow&miro_user=someone").await;
    assert_eq!(
        body["user_id"], MIRO_USER_ID,
        "anything else is the emulated user"
    );
    let elsewhere = format!("decision=allow&miro_user=1003&team_id={SECOND_TEAM_ID}");
    assert!(
        consent(&emu, &[], &elsewhere).await.is_err(),
        "not in that team"
    );
}

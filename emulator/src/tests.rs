//! The emulator's own behaviour, over HTTP on loopback.

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

#[test]
fn s256_matches_rfc_7636_appendix_b() {
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

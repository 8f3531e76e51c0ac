//! Bad input never answers 5xx and changes nothing: each case gets a 4xx with
//! `{error, message}` (the callback: the static page), and the table stays empty.

use crate::support::{request, route, Reply, TestApp};
use lambda_http::http::Method;
use lambda_http::RequestExt;

const JWT_ROUTES: [(&str, &str); 3] = [
    ("/miro/authorizations", "{}"),
    ("/miro/authorizations/complete", r#"{"completion":"x"}"#),
    ("/boards", "{}"),
];

#[tokio::test]
async fn missing_or_invalid_claims_are_unauthenticated() {
    let app = TestApp::new().await;
    for (path, body) in JWT_ROUTES {
        app.call(Method::POST, path, None, Some(body))
            .await
            .assert_client_error(401, "unauthenticated");
        for bad_sub in ["", "line\nbreak", &"x".repeat(300)] {
            app.call(Method::POST, path, Some(bad_sub), Some(body))
                .await
                .assert_client_error(401, "unauthenticated");
        }
        // Claims without `sub`, or a user named in a header, are no identity.
        let mut ctx = miro_connect::http::authorizer_context("x");
        if let lambda_http::request::RequestContext::ApiGatewayV2(c) = &mut ctx {
            if let Some(jwt) = c.authorizer.as_mut().and_then(|a| a.jwt.as_mut()) {
                jwt.claims.clear();
                jwt.claims
                    .insert("email".into(), "alice@example.test".into());
            }
        }
        let mut req = request(Method::POST, path, None, Some(body), "application/json")
            .with_request_context(ctx);
        req.headers_mut()
            .insert("x-user-id", "alice".parse().expect("header"));
        Reply::from(route(&app.service, req).await).assert_client_error(401, "unauthenticated");
    }
    assert_eq!(app.items().await, 0);
}

#[tokio::test]
async fn malformed_oversized_and_mistyped_bodies() {
    let app = TestApp::new().await;
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(20_000));
    for (path, _) in JWT_ROUTES {
        for (body, status, code) in [
            ("{", 400, "malformed_json"),
            ("not json", 400, "malformed_json"),
            ("{} trailing", 400, "malformed_json"),
            (huge.as_str(), 413, "payload_too_large"),
            (r#"{"unknown_field":1}"#, 422, "invalid_body"),
            ("[]", 422, "invalid_body"),
            ("null", 422, "invalid_body"),
        ] {
            app.call(Method::POST, path, Some("alice"), Some(body))
                .await
                .assert_client_error(status, code);
        }
        app.call_with(Method::POST, path, Some("alice"), Some("{}"), "text/plain")
            .await
            .assert_client_error(415, "unsupported_media_type");
    }
    assert_eq!(app.items().await, 0);
}

#[tokio::test]
async fn out_of_range_board_fields() {
    let app = TestApp::new().await;
    let long_name = serde_json::json!({ "name": "x".repeat(61) }).to_string();
    let long_description = serde_json::json!({ "description": "x".repeat(301) }).to_string();
    for (body, code) in [
        (long_name.as_str(), "invalid_board"),
        (r#"{"name":""}"#, "invalid_board"),
        (long_description.as_str(), "invalid_board"),
        (r#"{"team_id":"1; DROP"}"#, "invalid_board"),
        (r#"{"project_id":""}"#, "invalid_board"),
        (r#"{"name":42}"#, "invalid_body"),
        (
            r#"{"policy":{"sharingPolicy":{"access":"public"}}}"#,
            "invalid_body",
        ),
        (
            r#"{"policy":{"permissionsPolicy":{"copyAccess":"everyone"}}}"#,
            "invalid_body",
        ),
        (
            r#"{"policy":{"sharingPolicy":{"teamAccess":"owner"}}}"#,
            "invalid_body",
        ),
        (r#"{"policy":{"bogus":{}}}"#, "invalid_body"),
    ] {
        app.create_board("alice", body)
            .await
            .assert_client_error(422, code);
    }
    let bad_team = app.start("alice", Some(r#"{"team_id":"../../x"}"#)).await;
    bad_team.assert_client_error(400, "invalid_parameter");
    assert_eq!(app.items().await, 0, "validated before anything is stored");
    assert!(
        app.emulator.boards().is_empty(),
        "validated before any call to Miro"
    );
}

#[tokio::test]
async fn callback_with_no_or_junk_parameters() {
    let app = TestApp::new().await;
    for query in [
        "",
        "code=abc",
        "state=",
        "state=short",
        "state=%00%01%02",
        "state=../../etc/passwd&code=x",
        "state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&state=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        "error=access_denied",
        "error=%3Cscript%3Ealert(1)%3C/script%3E&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "%zz=%zz",
    ] {
        let reply = app.call(Method::GET, &format!("/miro/callback?{query}"), None, None).await;
        reply.assert_error_page();
        assert!(!reply.body.contains("script"), "nothing reflected");
    }
    assert_eq!(app.items().await, 0);
}

#[tokio::test]
async fn completions_that_cannot_be_ours() {
    let app = TestApp::new().await;
    for completion in ["", "x", &"A".repeat(43), &"é".repeat(43)] {
        let body = serde_json::json!({ "completion": completion }).to_string();
        app.call(
            Method::POST,
            "/miro/authorizations/complete",
            Some("alice"),
            Some(&body),
        )
        .await
        .assert_client_error(400, "invalid_completion");
    }
    app.call(
        Method::POST,
        "/miro/authorizations/complete",
        Some("alice"),
        Some("{}"),
    )
    .await
    .assert_client_error(422, "invalid_body");
    app.call(
        Method::POST,
        "/miro/authorizations/complete",
        Some("alice"),
        None,
    )
    .await
    .assert_client_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn wrong_methods() {
    let app = TestApp::new().await;
    for (method, path) in [
        (Method::GET, "/miro/authorizations"),
        (Method::DELETE, "/miro/callback"),
        (Method::GET, "/boards"),
        (Method::PUT, "/boards"),
    ] {
        app.call(method, path, Some("alice"), None)
            .await
            .assert_client_error(405, "method_not_allowed");
    }
}

//! Property-based fuzzing of every parser of outside input, through the
//! public surface where there is one: no input panics, and none that a
//! caller sends answers 5xx. A bounded run is part of the test command;
//! a longer one: `PROPTEST_CASES=20000 tests/run --test fuzz`.

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use miro_connect::clock::SystemClock;
use miro_connect::config::Config;
use miro_connect::events::{Disposition, Outcome};
use miro_connect::http::authorizer_context;
use miro_connect::oauth::{
    MiroOAuth, MiroTokenResponse, OAuthError, TokenGrant, MAX_ACCESS_TOKEN_SECONDS,
};
use miro_connect::seal::Sealer;
use miro_connect::secret::Secret;
use miro_connect::service::Deadline;
use miro_connect::store::memory::MemoryStore;
use miro_connect::Service;
use oauth2::TokenResponse;
use proptest::prelude::*;
use serde_json::Value;
use std::sync::{Arc, Mutex, OnceLock};

/// A deployment's settings, with Miro at `miro` (scheme, host and port).
fn config(miro: &str) -> Config {
    let settings = [
        ("MIRO_CLIENT_ID", "fuzz"),
        ("MIRO_CLIENT_SECRET", "fuzz-secret"),
        (
            "MIRO_REDIRECT_URI",
            "https://connect.example.test/miro/callback",
        ),
        ("MIRO_AUTH_BASE_URL", miro),
        ("MIRO_API_BASE_URL", miro),
        ("ALLOWED_RETURN_ORIGINS", "https://app.example.test"),
        ("DEFAULT_RETURN_TO", "https://app.example.test/done"),
        ("MIRO_TIMEOUT_MS", "200"),
    ];
    let lookup = |k: &str| {
        settings
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    Config::from_lookup(lookup).expect("config")
}

/// A service on the in-memory store, with Miro at a closed loopback port:
/// no parser under test may get as far as calling it.
fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        miro_connect::bootstrap::wire(
            config("http://127.0.0.1:9"),
            Arc::new(MemoryStore::new()),
            Arc::new(SystemClock),
        )
        .expect("service")
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn request(method: Method, uri: &str, body: Vec<u8>, user: Option<&str>) -> Option<Request> {
    let req = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(if body.is_empty() {
            Body::Empty
        } else {
            Body::Binary(body)
        })
        .ok()?;
    Some(match user {
        Some(sub) => req.with_request_context(authorizer_context(sub)),
        None => req,
    })
}

fn status(response: Response<Body>) -> u16 {
    response.status().as_u16()
}

/// JSON-shaped input, often close to valid, plus raw bytes.
fn json_like() -> impl Strategy<Value = Vec<u8>> {
    let scalar = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        ".{0,80}".prop_map(serde_json::Value::String),
        "[a-z_]{0,12}".prop_map(serde_json::Value::String),
    ];
    let value = scalar.prop_recursive(3, 24, 6, |inner| {
        let keys = prop_oneof![
            Just("name".to_string()),
            Just("description".to_string()),
            Just("team_id".to_string()),
            Just("project_id".to_string()),
            Just("policy".to_string()),
            Just("template_board_id".to_string()),
            Just("members".to_string()),
            Just("email".to_string()),
            Just("role".to_string()),
            Just("invitation_message".to_string()),
            Just("sharingPolicy".to_string()),
            Just("permissionsPolicy".to_string()),
            Just("access".to_string()),
            Just("completion".to_string()),
            Just("return_to".to_string()),
            Just("user_id".to_string()),
            Just("board".to_string()),
            Just("detail".to_string()),
            Just("detail-type".to_string()),
            "[a-zA-Z_-]{1,10}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        4 => value.prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// Bodies shaped like `POST /boards`' own, with values in and out of Miro's ranges.
fn board_like() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::option::of(".{0,70}"),
        proptest::option::of(".{0,320}"),
        proptest::option::of("[ -~]{0,70}"),
        proptest::option::of("[A-Za-z0-9=_-]{0,70}"),
        proptest::option::of(prop_oneof![
            Just("view"),
            Just("edit"),
            Just("public"),
            Just("")
        ]),
        proptest::option::of("[A-Za-z0-9=_-]{0,70}"),
        proptest::option::of(prop::collection::vec(
            (
                "[ -~]{0,30}(@[a-z.]{0,12})?",
                prop_oneof![
                    Just("viewer"),
                    Just("commenter"),
                    Just("editor"),
                    Just("coowner"),
                    Just("owner"),
                    Just("")
                ],
            ),
            0..110,
        )),
        proptest::option::of(".{0,1100}"),
    )
        .prop_map(
            |(name, description, team_id, project_id, access, template, members, message)| {
                let mut body = serde_json::Map::new();
                let mut put = |k: &str, v: Option<String>| {
                    if let Some(v) = v {
                        body.insert(k.to_string(), serde_json::Value::String(v));
                    }
                };
                put("name", name);
                put("description", description);
                put("team_id", team_id);
                put("project_id", project_id);
                put("template_board_id", template);
                put("invitation_message", message);
                if let Some(access) = access {
                    body.insert(
                        "policy".into(),
                        serde_json::json!({ "sharingPolicy": { "access": access } }),
                    );
                }
                if let Some(members) = members {
                    body.insert(
                        "members".into(),
                        members
                            .into_iter()
                            .map(
                                |(email, role)| serde_json::json!({ "email": email, "role": role }),
                            )
                            .collect(),
                    );
                }
                serde_json::Value::Object(body).to_string().into_bytes()
            },
        )
}

/// Board content, often close to valid: items of every kind with any of
/// their fields, frames and refs that may or may not exist, connectors
/// between refs that may be frames, missing or the same item.
fn content_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just("sticky_note"),
        Just("text"),
        Just("shape"),
        Just("card"),
        Just("frame"),
        Just("image"),
    ];
    let number = prop_oneof![
        Just(Value::Null),
        (-2_000_000.0f64..2_000_000.0).prop_map(Value::from),
        (0.0f64..12_000.0).prop_map(Value::from),
        Just(Value::from("12")),
    ];
    let item = (
        kind,
        proptest::option::of("r[0-9]{1,2}"),
        proptest::option::of(".{0,1100}"),
        proptest::option::of(".{0,210}"),
        proptest::option::of(prop_oneof![
            Just("yellow".to_string()),
            Just("#ff00aa".to_string()),
            "[#a-z0-9]{0,8}"
        ]),
        proptest::option::of(prop_oneof![
            Just("square"),
            Just("circle"),
            Just("rectangle"),
            Just("blob")
        ]),
        (number.clone(), number.clone(), number.clone(), number),
        proptest::option::of("r[0-9]{1,2}"),
    )
        .prop_map(
            |(kind, reference, text, title, color, shape, (x, y, w, h), frame)| {
                let mut item = serde_json::json!({ "type": kind });
                let fields = item.as_object_mut().expect("object");
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v.filter(|v| !v.is_null()) {
                        fields.insert(k.into(), v);
                    }
                };
                put("ref", reference.map(Value::from));
                put("text", text.map(Value::from));
                put("title", title.map(Value::from));
                put("color", color.map(Value::from));
                put("shape", shape.map(Value::from));
                put("x", Some(x));
                put("y", Some(y));
                put("width", Some(w));
                put("height", Some(h));
                put("frame", frame.map(Value::from));
                item
            },
        );
    let connector = (
        "r[0-9]{1,2}",
        "r[0-9]{1,2}",
        proptest::option::of(prop_oneof![
            Just("straight"),
            Just("curved"),
            Just("zigzag")
        ]),
        proptest::option::of(".{0,210}"),
    )
        .prop_map(|(from, to, shape, caption)| {
            let mut c = serde_json::json!({ "from": from, "to": to });
            if let Some(shape) = shape {
                c["shape"] = shape.into();
            }
            if let Some(caption) = caption {
                c["caption"] = caption.into();
            }
            c
        });
    (
        prop::collection::vec(item, 0..40),
        prop::collection::vec(connector, 0..8),
    )
        .prop_map(
            |(items, connectors)| serde_json::json!({ "items": items, "connectors": connectors }),
        )
}

/// A query as sent: every byte a URI query may hold stays (`%` too, so odd
/// or broken escapes reach the handler), every other byte is escaped.
fn uri_query(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An answer: status, `Content-Type`, body.
type Answer = (u16, Option<&'static str>, Vec<u8>);

/// A stand-in for Miro's token endpoint that answers whatever a case sets.
struct TokenEndpoint {
    base: String,
    next: Arc<Mutex<Answer>>,
}

fn token_endpoint() -> &'static TokenEndpoint {
    use axum::http::{header, HeaderValue, StatusCode};
    static ENDPOINT: OnceLock<TokenEndpoint> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let next = Arc::new(Mutex::new((200, None, vec![])));
        let answer = next.clone();
        let app = axum::Router::new().route(
            "/v1/oauth/token",
            axum::routing::post(move || {
                let (status, content_type, body) =
                    answer.lock().unwrap_or_else(|p| p.into_inner()).clone();
                async move {
                    let mut r = axum::response::Response::new(axum::body::Body::from(body));
                    *r.status_mut() = StatusCode::from_u16(status).expect("a status");
                    if let Some(c) = content_type {
                        r.headers_mut()
                            .insert(header::CONTENT_TYPE, HeaderValue::from_static(c));
                    }
                    r
                }
            }),
        );
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        runtime().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenEndpoint { base, next }
    })
}

/// The OAuth client as deployed (form body, no redirects), pointed at
/// [`token_endpoint`].
fn oauth_client() -> &'static MiroOAuth {
    static OAUTH: OnceLock<MiroOAuth> = OnceLock::new();
    OAUTH.get_or_init(|| {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("client");
        MiroOAuth::new(&config(&token_endpoint().base), http, Arc::new(SystemClock))
    })
}

/// A grant's fields, comparable.
type GrantFields = (
    String,
    Option<String>,
    Option<u64>,
    Option<String>,
    Option<String>,
    Vec<String>,
);

fn grant_of(g: &TokenGrant) -> GrantFields {
    (
        g.access_token.expose().to_string(),
        g.refresh_token.as_ref().map(|t| t.expose().to_string()),
        g.expires_in,
        g.miro_user_id.clone(),
        g.team_id.clone(),
        g.scopes.clone(),
    )
}

/// What a grant must hold for a token response: its fields, `expires_in`
/// capped at [`MAX_ACCESS_TOKEN_SECONDS`].
fn expected_grant(t: &MiroTokenResponse) -> GrantFields {
    (
        t.access_token().secret().clone(),
        t.refresh_token().map(|r| r.secret().clone()),
        t.expires_in()
            .map(|d| d.as_secs().min(MAX_ACCESS_TOKEN_SECONDS)),
        t.extra_fields().user_id.clone(),
        t.extra_fields().team_id.clone(),
        t.scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    )
}

/// Miro's `{status, code, message, type}` or RFC 6749's `{error, …}`: a
/// JSON object with a string `code` or `error`, and every field the client
/// reads of its type (`status` a u16, `message` a string) or null.
fn is_miro_error(body: &[u8]) -> bool {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let is_str = |k: &str| o.get(k).is_some_and(Value::is_string);
    let null_or = |k: &str, ok: fn(&Value) -> bool| o.get(k).is_none_or(|v| v.is_null() || ok(v));
    (is_str("code") || is_str("error"))
        && null_or("code", Value::is_string)
        && null_or("error", Value::is_string)
        && null_or("message", Value::is_string)
        && null_or("status", |v| {
            v.as_u64().is_some_and(|n| n <= u64::from(u16::MAX))
        })
}

/// Statuses a token endpoint (or a proxy before it) may answer.
fn token_endpoint_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200),
        2 => Just(400),
        2 => Just(401),
        1 => Just(429),
        2 => prop::sample::select(vec![201, 202, 204, 206, 301, 302, 403, 404, 408, 500, 502, 503]),
        1 => 200u16..600,
    ]
}

/// A JSON value of any type, often an edge of one.
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        Just(serde_json::json!(3599)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1.5)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(3074457358607431473u64)),
        Just(Value::String(String::new())),
        Just(Value::String("bearer".into())),
        Just(Value::String("Bearer".into())),
        Just(Value::String("boards:write boards:read".into())),
        ".{0,40}".prop_map(Value::String),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
    ]
}

/// A JSON string, often one a field would hold.
fn json_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(String::new()),
        "[A-Za-z0-9_.-]{1,40}",
        Just("bearer".to_string()),
        Just("Bearer".to_string()),
        Just("boards:write boards:read".to_string()),
        Just("3458764517517818867".to_string()),
        ".{0,40}",
    ]
    .prop_map(Value::String)
}

/// A field's value: mostly of the type `usual` makes, sometimes any JSON.
fn mostly(usual: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![6 => usual, 1 => any_json()]
}

/// Bodies shaped like a token response, each field there or not, mostly of
/// its type (so that many are grants), sometimes of another.
fn token_like() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        (0u64..100_000).prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
    ]
    .boxed();
    let id = prop_oneof![json_string(), number.clone()].boxed();
    let field = |k: &'static str, p: f64, v: BoxedStrategy<Value>| {
        proptest::option::weighted(p, mostly(v)).prop_map(move |v| (k, v))
    };
    (
        field("access_token", 0.95, json_string().boxed()),
        field("token_type", 0.95, json_string().boxed()),
        field("refresh_token", 0.7, json_string().boxed()),
        field("expires_in", 0.7, number),
        field("scope", 0.7, json_string().boxed()),
        field("user_id", 0.7, id.clone()),
        field("team_id", 0.7, id),
    )
        .prop_map(|(a, b, c, d, e, f, g)| {
            let object: serde_json::Map<String, Value> = [a, b, c, d, e, f, g]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect();
            Value::Object(object).to_string().into_bytes()
        })
}

/// Bodies shaped like Miro's or RFC 6749's error, each field there or not,
/// mostly of its type, sometimes of another.
fn error_like() -> impl Strategy<Value = Vec<u8>> {
    let status = prop_oneof![
        Just(serde_json::json!(400)),
        Just(serde_json::json!(401)),
        any::<u32>().prop_map(|n| serde_json::json!(n)),
    ]
    .boxed();
    let field = |k: &'static str, v: BoxedStrategy<Value>| {
        proptest::option::weighted(0.5, mostly(v)).prop_map(move |v| (k, v))
    };
    (
        field("status", status),
        field("code", json_string().boxed()),
        field("message", json_string().boxed()),
        field("type", json_string().boxed()),
        field("error", json_string().boxed()),
        field("error_description", json_string().boxed()),
    )
        .prop_map(|(a, b, c, d, e, f)| {
            let object: serde_json::Map<String, Value> = [a, b, c, d, e, f]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect();
            Value::Object(object).to_string().into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn create_board_body(body in prop_oneof![json_like(), board_like()], key in proptest::option::of("[ -~]{0,300}")) {
        let answer = runtime().block_on(async {
            let mut req = request(Method::POST, "https://connect.example.test/boards", body, Some("fuzz-user"))?;
            if let Some(k) = key.and_then(|k| k.parse().ok()) {
                req.headers_mut().insert("idempotency-key", k);
            }
            Some(status(create_board::handle(service(), req).await.ok()?))
        });
        let status = answer.expect("the handler answers");
        prop_assert!((200..500).contains(&status), "POST /boards answered {status}");
    }

    #[test]
    fn callback_query(query in "[ -~]{0,200}", state in "[A-Za-z0-9_-]{43}") {
        // Every case reaches the handler: the query is kept as sent where a
        // URI allows it (odd escapes, `=` and `&` included) and escaped where not.
        for q in [query.clone(), format!("code={query}&state={state}"), format!("state={state}&error={query}")] {
            let uri = format!("https://connect.example.test/miro/callback?{}", uri_query(&q));
            let req = request(Method::GET, &uri, vec![], None);
            prop_assert!(req.is_some(), "{uri:?} does not build");
            let answer = runtime().block_on(auth_callback::handle(service(), req.expect("built")));
            prop_assert!(answer.is_ok(), "the callback failed on {uri:?}: {:?}", answer.err());
            let status = status(answer.expect("answered"));
            prop_assert!(status == 400 || status == 303, "callback answered {status} to {uri:?}");
        }
    }

    #[test]
    fn completion_body(body in json_like()) {
        let answer = runtime().block_on(async {
            let req = request(Method::POST, "https://connect.example.test/miro/authorizations/complete", body, Some("fuzz-user"))?;
            Some(status(auth_callback::handle(service(), req).await.ok()?))
        });
        let status = answer.expect("the handler answers");
        prop_assert!((400..500).contains(&status), "complete answered {status}");
    }

    #[test]
    fn start_body(body in json_like()) {
        let answer = runtime().block_on(async {
            let req = request(Method::POST, "https://connect.example.test/miro/authorizations", body, Some("fuzz-user"))?;
            Some(status(auth_start::handle(service(), req).await.ok()?))
        });
        let status = answer.expect("the handler answers");
        prop_assert!(status == 201 || (400..500).contains(&status), "start answered {status}");
    }

    #[test]
    fn event_detail(detail in json_like(), wrap in any::<bool>()) {
        let body = if wrap {
            let detail: serde_json::Value = serde_json::from_slice(&detail).unwrap_or(serde_json::Value::Null);
            serde_json::json!({ "id": "e-1", "detail-type": "Create Miro Board", "source": "fuzz", "detail": detail }).to_string()
        } else {
            String::from_utf8_lossy(&detail).into_owned()
        };
        let outcome = runtime().block_on(service().board_requested("m-1", &body, Deadline::no_waiting()));
        // Nobody is connected: nothing may be created, and nothing is worth a retry.
        prop_assert!(matches!(outcome, Disposition::Settled(Outcome::Failed(_))), "{outcome:?}");
    }

    #[test]
    fn miro_token_and_error_responses(
        status in token_endpoint_status(),
        content_type in prop_oneof![
            5 => Just(Some("application/json")),
            1 => Just(Some("application/json; charset=utf-8")),
            1 => Just(Some("text/html")),
            1 => Just(None),
        ],
        body in prop_oneof![3 => token_like(), 3 => error_like(), 1 => json_like()],
        refresh in any::<bool>(),
    ) {
        // Through the public surface: the code exchange or the refresh, over
        // HTTP, against a token endpoint that answers this.
        let endpoint = token_endpoint();
        let oauth = oauth_client();
        *endpoint.next.lock().unwrap_or_else(|p| p.into_inner()) = (status, content_type, body.clone());
        let got = runtime().block_on(async {
            if refresh {
                oauth.refresh(&Secret::new("fuzz-refresh-token")).await
            } else {
                oauth.exchange_code(&Secret::new("fuzz-code"), &Secret::new("v".repeat(43))).await
            }
        });
        let case = format!("{status} {content_type:?} {}", String::from_utf8_lossy(&body));
        let json_type = content_type.is_none_or(|c| c.to_ascii_lowercase().starts_with("application/json"));
        match (status, got) {
            // A 200 is a grant exactly when it is a token response with an
            // access token, and the grant is the body's, with `expires_in`
            // capped at a day.
            (200, got) => match serde_json::from_slice::<MiroTokenResponse>(&body)
                .ok()
                .filter(|t| json_type && !t.access_token().secret().is_empty())
            {
                Some(token) => {
                    let grant = got.map_err(|e| format!("{e} on {case}"));
                    prop_assert!(grant.is_ok(), "{:?}", grant.err());
                    let grant = grant.expect("a grant");
                    prop_assert_eq!(grant_of(&grant), expected_grant(&token), "{}", case);
                    prop_assert!(grant.expires_in.is_none_or(|s| s <= MAX_ACCESS_TOKEN_SECONDS));
                }
                None => prop_assert!(matches!(got, Err(OAuthError::Unavailable(_))), "{got:?} on {case}"),
            },
            // Only a 400 or 401 with a JSON error body kills the grant.
            (400 | 401, got) if is_miro_error(&body) => {
                prop_assert!(matches!(got, Err(OAuthError::Rejected(_))), "{got:?} on {case}")
            }
            (429, got) => prop_assert!(matches!(got, Err(OAuthError::RateLimited { .. })), "{got:?} on {case}"),
            // Anything else is no verdict on the grant.
            (_, got) => prop_assert!(matches!(got, Err(OAuthError::Unavailable(_))), "{got:?} on {case}"),
        }
    }

    #[test]
    fn any_board_content_is_validated_or_refused_never_a_panic(content in content_like()) {
        use miro_connect::domain::{content_phases, layout, BoardRequest, ContentStep, InvalidBoard};
        // Through both handlers: a client error or a consent, never a 5xx.
        for uri in ["https://connect.example.test/boards", "https://connect.example.test/boards/uXjVFuzz=/items"] {
            let status = runtime().block_on(async {
                let mut req = request(Method::POST, uri, content.to_string().into_bytes(), Some("fuzz-user"))?;
                if uri.ends_with("/items") {
                    req = req.with_path_parameters(std::collections::HashMap::from([("board_id".to_string(), "uXjVFuzz=".to_string())]));
                }
                Some(status(create_board::handle(service(), req).await.ok()?))
            });
            let status = status.expect("the handler answers");
            prop_assert!((200..500).contains(&status), "{uri} answered {status}");
        }
        // What validation lets through can be laid out and sent: every item
        // placed at finite coordinates, in exactly one step, ≤ 20 a bulk call.
        let Ok(request) = serde_json::from_value::<BoardRequest>(content) else { return Ok(()) };
        match request.validate() {
            Err(InvalidBoard::Item(e)) => prop_assert!(e.field.starts_with("items") || e.field.starts_with("connectors"), "{}", e.field),
            Err(e) => prop_assert!(false, "content refused as something else: {e:?}"),
            Ok(()) => {
                let placements = layout(&request.items);
                prop_assert_eq!(placements.len(), request.items.len());
                prop_assert!(placements.iter().all(|p| [p.x, p.y, p.width, p.height].iter().all(|v| v.is_finite())));
                let mut seen = vec![0; request.items.len()];
                for step in content_phases(&request.items, &request.connectors).iter().flatten() {
                    match step {
                        ContentStep::Frame(i) => seen[*i] += 1,
                        ContentStep::Bulk(indices) => {
                            prop_assert!(indices.len() <= 20);
                            for i in indices { seen[*i] += 1; }
                        }
                        ContentStep::Connector(_) => {}
                    }
                }
                prop_assert!(seen.iter().all(|n| *n == 1));
            }
        }
    }

    #[test]
    fn miro_board_response(body in json_like()) {
        // Whatever Miro's body holds, a board comes out only with an id.
        if let Some(board) = miro_connect::miro::parse_board(&body, None) {
            prop_assert!(!board.id.is_empty());
        }
    }

    #[test]
    fn sealed_value_decoding(place in ".{0,40}", sealed in "([a-z0-9]{0,4}\\.)?[A-Za-z0-9_=+/.-]{0,120}") {
        static SEALER: OnceLock<Sealer> = OnceLock::new();
        let sealer = SEALER.get_or_init(|| Sealer::from_key_ring(&Sealer::generate_key_ring_entry("k1")).expect("ring"));
        prop_assert!(sealer.open(&place, &sealed).is_err());
        let with_key_id = format!("k1.{sealed}");
        prop_assert!(sealer.open(&place, &with_key_id).is_err());
    }
}

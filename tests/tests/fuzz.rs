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
use miro_connect::oauth::{MiroOAuthError, MiroTokenResponse};
use miro_connect::seal::Sealer;
use miro_connect::service::Deadline;
use miro_connect::store::memory::MemoryStore;
use miro_connect::Service;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

/// A service on the in-memory store, with Miro at a closed loopback port:
/// no parser under test may get as far as calling it.
fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let settings = [
            ("MIRO_CLIENT_ID", "fuzz"),
            ("MIRO_CLIENT_SECRET", "fuzz-secret"),
            (
                "MIRO_REDIRECT_URI",
                "https://connect.example.test/miro/callback",
            ),
            ("MIRO_AUTH_BASE_URL", "http://127.0.0.1:9"),
            ("MIRO_API_BASE_URL", "http://127.0.0.1:9"),
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
        let config = Config::from_lookup(lookup).expect("config");
        miro_connect::bootstrap::wire(config, Arc::new(MemoryStore::new()), Arc::new(SystemClock))
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
    )
        .prop_map(|(name, description, team_id, project_id, access)| {
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
            if let Some(access) = access {
                body.insert(
                    "policy".into(),
                    serde_json::json!({ "sharingPolicy": { "access": access } }),
                );
            }
            serde_json::Value::Object(body).to_string().into_bytes()
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
        for q in [query.clone(), format!("code={query}&state={state}"), format!("state={state}&error={query}")] {
            let answer = runtime().block_on(async {
                let encoded: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
                let raw = format!("https://connect.example.test/miro/callback?{}", if q.contains('=') { q.replace(' ', "+") } else { encoded });
                let req = request(Method::GET, &raw, vec![], None)?;
                Some(status(auth_callback::handle(service(), req).await.ok()?))
            });
            if let Some(status) = answer {
                prop_assert!(status == 400 || status == 303, "callback answered {status}");
            }
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
    fn miro_token_and_error_responses(body in json_like()) {
        let _ = serde_json::from_slice::<MiroTokenResponse>(&body);
        let _ = serde_json::from_slice::<MiroOAuthError>(&body);
    }

    #[test]
    fn miro_board_response(body in json_like()) {
        // Whatever Miro's body holds, a board comes out only with an id.
        if let Some(board) = miro_connect::miro::parse_board(&body) {
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

//! Metrics as a deployment writes them (`shared/src/metrics.rs`): real flows
//! through the handlers against the emulator, their embedded-metric-format
//! lines captured. Every line is a valid EMF document with a documented name,
//! unit and dimensions, and neither a line nor a log line carries a token, a
//! code, a secret, a member's email or (in a metric) a user id.

use crate::support::{completion_from, query_value, TestApp};
use lambda_http::http::{Method, StatusCode};
use miro_connect::metrics::{Metric, CALLS, FUNCTION, NAMESPACE, OPERATIONS, REFRESH_FAILURES};
use miro_connect::routes::Function;
use miro_emulator::EmulatorConfig;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One data point as read back from its line.
#[derive(Debug)]
struct Point {
    metric: Metric,
    value: f64,
    dimensions: BTreeMap<String, String>,
}

/// Checks one line against the EMF specification and this project's
/// documented metrics, and reads it back.
fn parse(line: &str) -> Point {
    let root: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let root = root.as_object().expect("a JSON object");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    assert!(aws["Timestamp"].is_u64(), "Timestamp in ms: {line}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
    assert_eq!(directives.len(), 1, "{line}");
    let directive = directives[0].as_object().expect("a MetricDirective");
    assert_eq!(directive["Namespace"], NAMESPACE, "{line}");

    let metrics = directive["Metrics"].as_array().expect("Metrics");
    assert_eq!(metrics.len(), 1, "one metric a line: {line}");
    let name = metrics[0]["Name"].as_str().expect("Name");
    let metric = Metric::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{name} is no documented metric"));
    assert_eq!(metrics[0]["Unit"], metric.unit().as_str(), "{line}");
    let value = root
        .get(name)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{name} is a top-level number: {line}"));
    assert!(value >= 0.0, "{line}");

    let own: Vec<&str> = metric.dimensions().iter().map(|d| d.name()).collect();
    let sets: Vec<Vec<&str>> = directive["Dimensions"]
        .as_array()
        .expect("Dimensions")
        .iter()
        .map(|set| {
            set.as_array()
                .expect("a DimensionSet")
                .iter()
                .map(|d| d.as_str().expect("a dimension key"))
                .collect()
        })
        .collect();
    let with_function: Vec<&str> = std::iter::once(FUNCTION).chain(own.clone()).collect();
    assert_eq!(sets, vec![own, with_function], "{line}");

    let mut dimensions = BTreeMap::new();
    for key in sets.concat() {
        let value = root
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{key} is a top-level string: {line}"));
        dimensions.insert(key.to_string(), value.to_string());
    }
    // Nothing rides along: the metric, its dimensions and `_aws`.
    assert_eq!(root.len(), 2 + dimensions.len(), "{line}");
    for (key, value) in &dimensions {
        let allowed: Vec<&str> = match (key.as_str(), metric) {
            ("Function", _) => vec![Function::CreateBoard.name()],
            ("Call", _) => CALLS.to_vec(),
            ("Operation", _) => OPERATIONS.to_vec(),
            ("Reason", Metric::TokenRefreshFailures) => REFRESH_FAILURES.to_vec(),
            ("Reason", Metric::BoardsFailed) => miro_connect::error::CODES.to_vec(),
            _ => vec![],
        };
        assert!(
            allowed.contains(&value.as_str()),
            "{key}={value} is outside its closed set: {line}"
        );
    }
    Point {
        metric,
        value,
        dimensions,
    }
}

/// start → consent → callback → complete, keeping what a leak check needs:
/// the state, the completion id and the flow secret.
async fn connect(app: &TestApp, user: &str, secrets: &mut Vec<String>) {
    let started = app.start(user, None).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let url = started.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    secrets.push(query_value(&url::Url::parse(&url).expect("url"), "state").expect("state"));
    let completion = completion_from(&app.callback(&app.consent(&url, true).await).await);
    let done = app.complete(user, &completion).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    secrets.push(completion);
    secrets.extend(app.flow_secret(user));
}

fn secrets_of(app: &TestApp) -> Vec<String> {
    let mut secrets = app.emulator.issued_secrets();
    secrets.push(app.emulator.config().client_secret.clone());
    for entry in app.sealing_keys.expose().split(',') {
        secrets.extend(entry.split_once(':').map(|(_, key)| key.to_string()));
    }
    secrets
}

#[tokio::test]
async fn flows_write_valid_emf_with_documented_names_and_nothing_secret() {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("pat-{run}@example.com");
    let (owner, second, clicker, limited) = (
        format!("metrics-owner-{run}"),
        format!("metrics-second-{run}"),
        format!("metrics-clicker-{run}"),
        format!("metrics-limited-{run}"),
    );
    let app = TestApp::new().await;
    let rate_limited = TestApp::with_emulator(EmulatorConfig {
        board_rate_limit: Some((1, 60)),
        ..crate::support::emulator_config()
    })
    .await;
    let mut secrets = Vec::new();

    let ((), lines) = miro_connect::metrics::capture(Function::CreateBoard.name(), async {
        connect(&app, &owner, &mut secrets).await;
        // A board with a member: created, and the member invited.
        let body = serde_json::json!({
            "name": "Metrics",
            "members": [{ "email": email, "role": "viewer" }],
        })
        .to_string();
        let made = app.create_board(&owner, &body).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        assert_eq!(made.json()["invitations"]["invited"][0], email.as_str());

        // A refresh that works.
        app.make_refresh_due(&owner).await;
        let made = app.create_board(&owner, "{}").await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);

        // A refresh Miro's outage fails (transient), then one that works.
        app.expire_access_token(&owner).await;
        app.emulator.fail_token_endpoint(Some(503));
        app.create_board(&owner, "{}")
            .await
            .assert_client_error(503, "miro_unavailable");
        app.emulator.fail_token_endpoint(None);
        // Past the cooldown the failed refresh left.
        app.clock.advance(31);
        let made = app.create_board(&owner, "{}").await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);

        // A board with content, one bulk answer lost and read back; then
        // one whose item Miro refuses: the board is deleted.
        use miro_emulator::{BoardFault, ItemCallKind};
        let content = serde_json::json!({
            "items": [
                { "type": "frame", "ref": "f", "title": "F" },
                { "type": "sticky_note", "ref": "a", "text": "A", "frame": "f" },
                { "type": "text", "ref": "b", "text": "B" },
            ],
            "connectors": [{ "from": "a", "to": "b" }],
        })
        .to_string();
        app.emulator
            .inject_item_faults(ItemCallKind::Bulk { items: 0 }, &[BoardFault::DropAfter]);
        let made = app.create_board(&owner, &content).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        app.emulator.inject_item_faults(
            ItemCallKind::Bulk { items: 0 },
            &[BoardFault::FailBefore(400)],
        );
        app.create_board(&owner, &content)
            .await
            .assert_client_error(422, "invalid_item");

        // The operator's restore (a Scan), with nothing retired.
        app.service
            .restore(&Default::default())
            .await
            .expect("restore");

        // A disconnect revokes at Miro.
        connect(&app, &second, &mut secrets).await;
        let gone = app
            .call(Method::DELETE, "/miro/connections", Some(&second), None)
            .await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);

        // One click: the board a completed flow carried.
        let asked = app.create_board(&clicker, r#"{"name":"Intent"}"#).await;
        asked.assert_client_error(401, "miro_authorization_required");
        secrets.extend(app.flow_secret(&clicker));
        let url = asked.json()["authorize_url"]
            .as_str()
            .expect("url")
            .to_string();
        secrets.push(query_value(&url::Url::parse(&url).expect("url"), "state").expect("state"));
        let completion = completion_from(&app.callback(&app.consent(&url, true).await).await);
        let done = app.complete(&clicker, &completion).await;
        assert_eq!(done.json()["board"]["name"], "Intent", "{}", done.body);
        secrets.push(completion);

        // A dead grant: the refresh is refused.
        app.emulator.kill_all_grants();
        app.expire_access_token(&owner).await;
        app.create_board(&owner, "{}")
            .await
            .assert_client_error(401, "miro_authorization_required");

        // Miro's rate limit on a board.
        connect(&rate_limited, &limited, &mut secrets).await;
        let made = rate_limited.create_board(&limited, "{}").await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        rate_limited
            .create_board(&limited, "{}")
            .await
            .assert_client_error(429, "miro_rate_limited");
    })
    .await;

    let points: Vec<Point> = lines.iter().map(|l| parse(l)).collect();
    let seen = |metric: Metric, key: &str, value: &str| {
        points
            .iter()
            .any(|p| p.metric == metric && p.dimensions.get(key).map(String::as_str) == Some(value))
    };
    let total = |metric: Metric| -> f64 {
        points
            .iter()
            .filter(|p| p.metric == metric)
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(total(Metric::BoardsCreated), 6.0, "every board made, once");
    for reason in [
        "miro_unavailable",
        "miro_authorization_required",
        "miro_rate_limited",
    ] {
        assert!(seen(Metric::BoardsFailed, "Reason", reason), "{reason}");
    }
    assert!(total(Metric::TokenRefreshes) >= 3.0);
    for reason in REFRESH_FAILURES {
        assert!(
            seen(Metric::TokenRefreshFailures, "Reason", reason),
            "{reason}"
        );
    }
    assert!(seen(Metric::MiroRateLimited, "Call", "create_board"));
    for call in CALLS {
        assert!(seen(Metric::MiroLatency, "Call", call), "{call}");
    }
    for operation in OPERATIONS {
        assert!(
            seen(Metric::DynamoDbLatency, "Operation", operation),
            "{operation}"
        );
    }

    // Nothing secret and nothing personal, in a metric line or a log line.
    secrets.extend(secrets_of(&app));
    secrets.extend(secrets_of(&rate_limited));
    assert!(secrets.len() > 10, "{}", secrets.len());
    let logs = crate::support::captured_logs();
    assert!(logs.contains(&owner), "the logs are being captured");
    for line in &lines {
        for user in [&owner, &second, &clicker, &limited] {
            assert!(!line.contains(user.as_str()), "a user id in {line}");
        }
    }
    let lines = lines.join("\n");
    for secret in secrets.iter().chain([&email]) {
        assert!(!secret.is_empty());
        assert!(!lines.contains(secret.as_str()), "a metric line carries it");
        assert!(!logs.contains(secret.as_str()), "a log line carries it");
    }
    assert!(!lines.contains('@'), "no email in a metric line");
}

/// The README's metrics table names each metric, with its unit.
#[test]
fn the_readme_documents_every_metric() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Metrics section");
    let documented: BTreeSet<(String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((
                cells.get(1)?.trim_matches('`').to_string(),
                cells.get(2)?.to_string(),
            ))
        })
        .collect();
    let code: BTreeSet<(String, String)> = Metric::ALL
        .iter()
        .map(|m| (m.name().to_string(), m.unit().as_str().to_string()))
        .collect();
    assert_eq!(documented, code);
}

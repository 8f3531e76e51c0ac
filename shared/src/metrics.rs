//! Metrics in CloudWatch's embedded metric format (EMF): one JSON object a
//! line on stdout, which Lambda sends to the function's log group and
//! CloudWatch turns into metrics in the [`NAMESPACE`] namespace. Nothing to
//! call, no permission beyond the log group's, no latency added.
//!
//! A small module rather than a crate (README, "Metrics"): the one EMF crate
//! for Rust (`metrics_cloudwatch_embedded`) sits on the `metrics` facade's
//! process-wide recorder, flushed once per invocation through its own
//! runtime wrapper, so an invocation killed at its timeout loses what it
//! counted, and tests running side by side in one process share one buffer.
//! Here each data point is written as it happens, with serde_json, which
//! every function links already.
//!
//! What a line may carry is closed: the metric is a [`Metric`], a dimension
//! a [`Dimension`] whose value is a `&'static str` (a call name, an error
//! code, a DynamoDB operation, a sealing key's id from the ring
//! ([`key_id`]): never request data, so never a user id, an email or a
//! token), and the function's name from `AWS_LAMBDA_FUNCTION_NAME`.
//! Outside Lambda (that variable unset) nothing is written, unless a test
//! captures the lines ([`capture`]).

use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::future::Future;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The CloudWatch namespace of every metric here.
pub const NAMESPACE: &str = "MiroConnect";

/// Every metric this project writes. The names are the CloudWatch metric
/// names (README, "Metrics"; the template's dashboard and alarms use them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// A board made at Miro (not an idempotent replay): `POST /boards`,
    /// an event, or the board a completed flow carried.
    BoardsCreated,
    /// A board request that failed, by `Reason` (the API's error code).
    BoardsFailed,
    /// A refresh sent to Miro's token endpoint.
    TokenRefreshes,
    /// A refresh that got no new tokens, by `Reason`: `dead` (Miro refused
    /// the grant) or `transient` (a 429, a 5xx, a timeout).
    TokenRefreshFailures,
    /// A 429 from Miro, by `Call`.
    MiroRateLimited,
    /// The time to Miro's answer, by `Call`.
    MiroLatency,
    /// The time of one DynamoDB call (retries included), by `Operation`.
    DynamoDbLatency,
    /// Keep-alive: a connection whose tokens it refreshed.
    KeepAliveRefreshed,
    /// Keep-alive: a connection it probed at Miro.
    KeepAliveProbed,
    /// Keep-alive: a connection found revoked at Miro.
    KeepAliveRevoked,
    /// Keep-alive: a connection whose grant had expired.
    KeepAliveExpired,
    /// Keep-alive: a connection it could not handle (an error).
    KeepAliveErrors,
    /// A connection lifecycle event published.
    LifecyclePublished,
    /// A connection lifecycle event that could not be published.
    LifecyclePublishFailed,
    /// The refresh breaker opened: Miro rejected the refreshes of several
    /// connections at once (the app's own settings are the likely cause).
    RefreshBreakerOpened,
    /// A refresh not sent: the breaker is open, or the connection's last
    /// refresh failed moments ago (its cooldown).
    RefreshesHeldBack,
    /// A connection retired because Miro rejected its grant (restorable).
    ConnectionsRetired,
    /// A retired connection made live again (the breaker, or `restore`).
    ConnectionsRestored,
    /// Key retirement: connections still sealed under a key other than the
    /// newest, by `Key` (its id), as each keep-alive run counts them.
    SealedUnderKey,
    /// Key retirement: connections sealed under keys the ring no longer
    /// has (unreadable until the key is put back; alarmed).
    SealedUnderMissingKey,
}

/// The unit of a metric, as CloudWatch spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The dimensions a metric may carry besides `Function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// A failure's reason: an error code, or `dead` / `transient`.
    Reason,
    /// One of [`CALLS`].
    Call,
    /// One of [`OPERATIONS`].
    Operation,
    /// A sealing key's id ([`key_id`]).
    Key,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Reason => "Reason",
            Dimension::Call => "Call",
            Dimension::Operation => "Operation",
            Dimension::Key => "Key",
        }
    }
}

/// The dimension naming the Lambda function, on a second dimension set.
pub const FUNCTION: &str = "Function";

/// The `Call` values: Miro's token endpoint (exchange and refresh), board
/// create or copy, invitation, token context, revocation.
pub const CALLS: [&str; 10] = [
    "token",
    "create_board",
    "invite",
    "token_context",
    "revoke",
    "delete_board",
    "create_frame",
    "create_items",
    "create_connector",
    "list_items",
];

/// The `Operation` values: the DynamoDB calls the store makes.
pub const OPERATIONS: [&str; 6] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
];

/// The `Reason` values of [`Metric::TokenRefreshFailures`].
pub const REFRESH_FAILURES: [&str; 2] = ["dead", "transient"];

impl Metric {
    pub const ALL: [Metric; 20] = [
        Metric::BoardsCreated,
        Metric::BoardsFailed,
        Metric::TokenRefreshes,
        Metric::TokenRefreshFailures,
        Metric::MiroRateLimited,
        Metric::MiroLatency,
        Metric::DynamoDbLatency,
        Metric::KeepAliveRefreshed,
        Metric::KeepAliveProbed,
        Metric::KeepAliveRevoked,
        Metric::KeepAliveExpired,
        Metric::KeepAliveErrors,
        Metric::LifecyclePublished,
        Metric::LifecyclePublishFailed,
        Metric::RefreshBreakerOpened,
        Metric::RefreshesHeldBack,
        Metric::ConnectionsRetired,
        Metric::ConnectionsRestored,
        Metric::SealedUnderKey,
        Metric::SealedUnderMissingKey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::BoardsCreated => "BoardsCreated",
            Metric::BoardsFailed => "BoardsFailed",
            Metric::TokenRefreshes => "TokenRefreshes",
            Metric::TokenRefreshFailures => "TokenRefreshFailures",
            Metric::MiroRateLimited => "MiroRateLimited",
            Metric::MiroLatency => "MiroLatency",
            Metric::DynamoDbLatency => "DynamoDbLatency",
            Metric::KeepAliveRefreshed => "KeepAliveRefreshed",
            Metric::KeepAliveProbed => "KeepAliveProbed",
            Metric::KeepAliveRevoked => "KeepAliveRevoked",
            Metric::KeepAliveExpired => "KeepAliveExpired",
            Metric::KeepAliveErrors => "KeepAliveErrors",
            Metric::LifecyclePublished => "LifecyclePublished",
            Metric::LifecyclePublishFailed => "LifecyclePublishFailed",
            Metric::RefreshBreakerOpened => "RefreshBreakerOpened",
            Metric::RefreshesHeldBack => "RefreshesHeldBack",
            Metric::ConnectionsRetired => "ConnectionsRetired",
            Metric::ConnectionsRestored => "ConnectionsRestored",
            Metric::SealedUnderKey => "SealedUnderKey",
            Metric::SealedUnderMissingKey => "SealedUnderMissingKey",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::MiroLatency | Metric::DynamoDbLatency => Unit::Milliseconds,
            _ => Unit::Count,
        }
    }

    /// The dimensions every data point of this metric carries (besides
    /// `Function`), in this order.
    pub fn dimensions(self) -> &'static [Dimension] {
        match self {
            Metric::BoardsFailed | Metric::TokenRefreshFailures => &[Dimension::Reason],
            Metric::MiroRateLimited | Metric::MiroLatency => &[Dimension::Call],
            Metric::DynamoDbLatency => &[Dimension::Operation],
            Metric::SealedUnderKey => &[Dimension::Key],
            _ => &[],
        }
    }
}

/// The most key ids [`key_id`] keeps: a ring holds a few, the summary
/// every one a deployment ever had.
const MAX_KEY_IDS: usize = 64;

/// A sealing key's id as a dimension value. Key ids come from the
/// operator's key ring (letters and digits, checked when the ring is read),
/// never from a request; each distinct one is kept for the process's life,
/// at most [`MAX_KEY_IDS`] of them (then `other`). `?` stands for
/// connections whose key was not recorded; anything else is `invalid`.
pub fn key_id(id: &str) -> &'static str {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static IDS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let valid = id == "?"
        || (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !valid {
        return "invalid";
    }
    let Ok(mut ids) = IDS.lock() else {
        return "other";
    };
    if let Some(known) = ids.get(id) {
        return known;
    }
    if ids.len() >= MAX_KEY_IDS {
        return "other";
    }
    let kept: &'static str = Box::leak(id.to_string().into_boxed_str());
    ids.insert(kept);
    kept
}

/// Counts `n` of `metric`.
pub fn count(metric: Metric, n: u64, dimensions: &[(Dimension, &'static str)]) {
    record(metric, n as f64, dimensions);
}

/// A latency in milliseconds.
pub fn latency_ms(metric: Metric, ms: f64, dimensions: &[(Dimension, &'static str)]) {
    record(metric, ms, dimensions);
}

/// The time since `started`, in milliseconds.
pub fn since(metric: Metric, started: Instant, dimensions: &[(Dimension, &'static str)]) {
    latency_ms(metric, millis(started.elapsed()), dimensions);
}

/// Milliseconds to the microsecond: DynamoDB answers in a few.
fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

fn record(metric: Metric, value: f64, dimensions: &[(Dimension, &'static str)]) {
    debug_assert!(
        dimensions
            .iter()
            .map(|(d, _)| *d)
            .eq(metric.dimensions().iter().copied()),
        "{metric:?} takes {:?}",
        metric.dimensions()
    );
    let captured = CAPTURE.try_with(|c| {
        let line = line(metric, value, dimensions, c.function.as_deref(), now_ms());
        c.lines.borrow_mut().push(line);
    });
    if captured.is_ok() {
        return;
    }
    let Some(function) = lambda_function() else {
        return;
    };
    let mut line = line(metric, value, dimensions, Some(function), now_ms());
    line.push('\n');
    // One write per line keeps it whole beside the log lines; a metric that
    // cannot be written is not worth failing a request for.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// The function's name under Lambda (`None` elsewhere: nothing is written).
fn lambda_function() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| {
        std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|n| !n.is_empty())
    })
    .as_deref()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// One EMF document: the metric under its own dimensions (what the
/// dashboard and alarms read) and, with a function name, also per function.
pub fn line(
    metric: Metric,
    value: f64,
    dimensions: &[(Dimension, &'static str)],
    function: Option<&str>,
    timestamp_ms: u64,
) -> String {
    let own: Vec<&str> = dimensions.iter().map(|(d, _)| d.name()).collect();
    let mut sets = vec![own.clone()];
    let mut root = Map::new();
    if let Some(function) = function {
        sets.push(std::iter::once(FUNCTION).chain(own).collect());
        root.insert(FUNCTION.into(), Value::from(function));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": [{"Name": metric.name(), "Unit": metric.unit().as_str()}],
            }],
        }),
    );
    for (d, v) in dimensions {
        root.insert(d.name().into(), Value::from(*v));
    }
    // Whole numbers (counts) as integers; one that is not finite is no JSON
    // number, written as 0.
    let number = match value {
        v if v.fract() == 0.0 && (0.0..9.0e15).contains(&v) => Value::from(v as u64),
        v => serde_json::Number::from_f64(v).map_or(Value::from(0), Value::Number),
    };
    root.insert(metric.name().into(), number);
    Value::Object(root).to_string()
}

struct Capture {
    function: Option<String>,
    lines: RefCell<Vec<String>>,
}

tokio::task_local! {
    static CAPTURE: Capture;
}

/// Runs `work` with its metric lines kept and returned instead of written,
/// as if in the Lambda function `function`. For tests: only what `work`
/// itself runs is captured (not tasks it spawns), so tests side by side do
/// not see each other's lines.
pub async fn capture<F: Future>(function: &str, work: F) -> (F::Output, Vec<String>) {
    let capture = Capture {
        function: Some(function.to_string()),
        lines: RefCell::new(Vec::new()),
    };
    CAPTURE
        .scope(capture, async {
            let out = work.await;
            let lines = CAPTURE.with(|c| c.lines.take());
            (out, lines)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_emf_document() {
        let text = line(
            Metric::MiroLatency,
            12.5,
            &[(Dimension::Call, "create_board")],
            Some("stack-CreateBoard"),
            1_700_000_000_000,
        );
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            json!([["Call"], ["Function", "Call"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "MiroLatency", "Unit": "Milliseconds"}])
        );
        assert_eq!(v["Call"], "create_board");
        assert_eq!(v["Function"], "stack-CreateBoard");
        assert_eq!(v["MiroLatency"], 12.5);
        assert!(!text.contains('\n'));
    }

    #[test]
    fn without_dimensions_the_rollup_set_is_empty() {
        let v: Value =
            serde_json::from_str(&line(Metric::BoardsCreated, 1.0, &[], None, 1)).expect("JSON");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(v["BoardsCreated"], 1.0);
        assert_eq!(v.as_object().map(Map::len), Some(2), "{v}");
    }

    #[test]
    fn names_are_unique_and_dimensions_named_once() {
        let names: std::collections::BTreeSet<&str> =
            Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        assert!(!names.contains(FUNCTION));
    }

    #[test]
    fn key_ids_are_kept_once_and_only_valid_ones() {
        let first = key_id("k7");
        assert_eq!(first, "k7");
        assert!(std::ptr::eq(first, key_id("k7")), "kept once");
        assert_eq!(key_id("?"), "?");
        for bad in ["", "k-1", "a b", &"k".repeat(65)] {
            assert_eq!(key_id(bad), "invalid", "{bad}");
        }
    }

    #[tokio::test]
    async fn capture_keeps_the_lines_of_its_own_work() {
        let ((), lines) = capture("f", async {
            count(
                Metric::BoardsFailed,
                1,
                &[(Dimension::Reason, "miro_rate_limited")],
            );
        })
        .await;
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains(r#""Reason":"miro_rate_limited""#));
        let ((), none) = capture("f", async {}).await;
        assert!(none.is_empty());
    }
}

//! A counting reverse proxy: what a flow asks of DynamoDB and of Miro,
//! counted where it arrives.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How a request is named: DynamoDB's operation header, or method and path.
#[derive(Clone, Copy)]
pub enum Key {
    AmzTarget,
    Path,
}

struct Shared {
    upstream: String,
    key: Key,
    http: reqwest::Client,
    pending: Mutex<usize>,
    seen: Mutex<BTreeSet<String>>,
    units: Mutex<Units>,
    /// Requests by name since the last `take_named`.
    named: Mutex<Vec<String>>,
}

/// DynamoDB capacity consumed, as on-demand bills it: read and write
/// request units. The proxy asks for `ReturnConsumedCapacity` on every
/// call; DynamoDB Local counts a transaction's items once, so transactions
/// are doubled here, as DynamoDB bills them. A write refused by its
/// condition answers no capacity; DynamoDB bills it at least one unit, so
/// it is counted as one.
#[derive(Default, Clone, Copy, Debug)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

const READS: [&str; 5] = [
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
];
const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

pub struct Counting {
    pub url: String,
    shared: Arc<Shared>,
}

impl Counting {
    pub async fn start(upstream: &str, key: Key) -> Result<Self, Failure> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            key,
            http: reqwest::Client::new(),
            pending: Mutex::new(0),
            seen: Mutex::new(BTreeSet::new()),
            units: Mutex::new(Units::default()),
            named: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(forward).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { url, shared })
    }

    /// Requests since the last call.
    pub fn take(&self) -> usize {
        self.shared
            .pending
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// DynamoDB capacity since the last call.
    pub fn take_units(&self) -> Units {
        self.shared
            .units
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default()
    }

    /// The requests since the last call, by name.
    pub fn take_named(&self) -> Vec<String> {
        self.shared
            .named
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// Every kind of request seen.
    pub fn seen(&self) -> String {
        self.shared
            .seen
            .lock()
            .map(|s| s.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let name = match shared.key {
        Key::AmzTarget => parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('.').next())
            .unwrap_or("?")
            .to_string(),
        Key::Path => format!("{} {}", parts.method, parts.uri.path()),
    };
    if let (Ok(mut n), Ok(mut seen), Ok(mut named)) = (
        shared.pending.lock(),
        shared.seen.lock(),
        shared.named.lock(),
    ) {
        *n += 1;
        seen.insert(name.clone());
        named.push(name.clone());
    }
    let Ok(mut bytes) = to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let metered = matches!(shared.key, Key::AmzTarget)
        && (READS.contains(&name.as_str()) || WRITES.contains(&name.as_str()));
    let mut consistent = false;
    if metered {
        // DynamoDB Local checks no signature: the body may gain a field.
        if let Ok(serde_json::Value::Object(mut call)) = serde_json::from_slice(&bytes) {
            consistent = call.get("ConsistentRead") == Some(&serde_json::Value::Bool(true));
            call.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
            if let Ok(b) = serde_json::to_vec(&call) {
                bytes = b.into();
            }
        }
    }
    let target = format!(
        "{}{}",
        shared.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut upstream = shared.http.request(parts.method, target).body(bytes);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = answer.bytes().await.unwrap_or_default();
            if metered {
                count_units(&shared, &name, status.as_u16(), &body, consistent);
            }
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// Adds a DynamoDB answer's consumed capacity to the tally. A read bills at
/// least one unit (half of one when eventually consistent) even when it
/// finds nothing; DynamoDB Local then reports none.
fn count_units(shared: &Shared, name: &str, status: u16, body: &[u8], consistent: bool) {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let capacity = |c: &serde_json::Value| c["CapacityUnits"].as_f64().unwrap_or(0.0);
    let mut units = match &answer["ConsumedCapacity"] {
        serde_json::Value::Array(all) => all.iter().map(capacity).sum(),
        c @ serde_json::Value::Object(_) => capacity(c),
        _ => 0.0,
    };
    if name.starts_with("Transact") {
        units *= 2.0;
    }
    let refused = status == 400
        && answer["__type"]
            .as_str()
            .is_some_and(|t| t.ends_with("ConditionalCheckFailedException"));
    if refused {
        units = units.max(1.0);
    }
    if let Ok(mut u) = shared.units.lock() {
        if WRITES.contains(&name) {
            u.write += units;
        } else {
            u.read += units.max(if consistent { 1.0 } else { 0.5 });
        }
    }
}

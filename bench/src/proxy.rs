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
}

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
    if let (Ok(mut n), Ok(mut seen)) = (shared.pending.lock(), shared.seen.lock()) {
        *n += 1;
        seen.insert(name);
    }
    let Ok(bytes) = to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
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

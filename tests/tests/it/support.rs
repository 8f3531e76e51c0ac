//! The harness: real servers (DynamoDB Local, moto) started by `tests/run`,
//! the emulator started here on a port the OS picks, and the handlers called
//! the way API Gateway calls them.

use aws_sdk_dynamodb::Client as DynamoClient;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use miro_connect::clock::{Clock, OffsetClock};
use miro_connect::config::Config;
use miro_connect::http::authorizer_context;
use miro_connect::seal::Sealer;
use miro_connect::secret::Secret;
use miro_connect::store::dynamo::DynamoStore;
use miro_connect::store::Store;
use miro_connect::Service;
use miro_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

pub const APP_ORIGIN: &str = "https://app.example.test";
pub const RETURN_TO: &str = "https://app.example.test/miro/done";
pub const REDIRECT_URI: &str = "https://connect.example.test/miro/callback";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    DynamoDbLocal,
    Moto,
}

fn endpoint(backend: Backend) -> String {
    let var = match backend {
        Backend::DynamoDbLocal => "MIRO_CONNECT_TEST_DYNAMODB",
        Backend::Moto => "MIRO_CONNECT_TEST_MOTO",
    };
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with tests/run, which starts DynamoDB Local and moto"
        )
    })
}

/// The AWS configuration of a server at `url` (a backend, a fault proxy),
/// built as the functions build theirs: their AWS bounds, or the ones
/// `settings` give.
pub async fn aws_config_at(url: &str, settings: &[(&str, &str)]) -> aws_config::SdkConfig {
    use miro_connect::bootstrap as boot;
    let mut all: HashMap<&str, &str> = HashMap::from([
        (boot::AWS_ENDPOINT_URL, url),
        (boot::AWS_REGION, "us-east-1"),
        (boot::AWS_ACCESS_KEY_ID, "test"),
        (boot::AWS_SECRET_ACCESS_KEY, "test"),
    ]);
    all.extend(settings.iter().copied());
    boot::aws_config_from(|k| all.get(k).map(|v| v.to_string()))
        .await
        .expect("AWS settings")
}

pub async fn aws_config(backend: Backend) -> aws_config::SdkConfig {
    aws_config_at(&endpoint(backend), &[]).await
}

pub async fn dynamo_client(backend: Backend) -> DynamoClient {
    DynamoClient::new(&aws_config(backend).await)
}

pub fn moto_endpoint() -> String {
    endpoint(Backend::Moto)
}

/// A new table, as the template makes it, on the given backend.
pub async fn fresh_table(client: &DynamoClient) -> String {
    let table = format!("miro-connect-{}", uuid::Uuid::new_v4());
    DynamoStore::create_table(client, &table)
        .await
        .expect("create table");
    table
}

pub fn test_sealer() -> Arc<Sealer> {
    sealer(&Sealer::generate_key_ring_entry("test"))
}

pub fn sealer(keys: &Secret) -> Arc<Sealer> {
    Arc::new(Sealer::from_key_ring(keys).expect("key ring"))
}

/// Every item in a table, as DynamoDB holds it.
pub async fn scan(
    client: &DynamoClient,
    table: &str,
) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default()
}

pub fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        redirect_uris: vec![REDIRECT_URI.into()],
        ..EmulatorConfig::default()
    }
}

pub fn settings(emulator: &Emulator, table: &str) -> HashMap<String, String> {
    emulator.deployment_settings(table, REDIRECT_URI, APP_ORIGIN, RETURN_TO)
}

pub fn service_with(
    settings: &HashMap<String, String>,
    store: Arc<dyn Store>,
    clock: Arc<OffsetClock>,
) -> Service {
    let config = Config::from_lookup(|k| settings.get(k).cloned()).expect("config");
    miro_connect::bootstrap::wire(config, store, clock).expect("service")
}

/// One deployment under test: the emulator, a fresh table on DynamoDB Local,
/// and the service the handlers run on.
pub struct TestApp {
    pub emulator: Emulator,
    pub dynamo: DynamoClient,
    pub table: String,
    pub store: Arc<DynamoStore>,
    pub clock: Arc<OffsetClock>,
    pub service: Service,
    pub settings: HashMap<String, String>,
    pub sealing_keys: Secret,
    /// Every body our handlers answered with, to look for leaked secrets.
    pub responses: Mutex<Vec<String>>,
    /// The flow secret of each user's latest flow, as the app's tab keeps it.
    pub flow_secrets: Mutex<HashMap<String, String>>,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_emulator(emulator_config()).await
    }

    pub async fn with_emulator(config: EmulatorConfig) -> Self {
        Self::with(config, &[]).await
    }

    /// A deployment whose settings differ from the defaults by `extra`.
    pub async fn with(config: EmulatorConfig, extra: &[(&str, &str)]) -> Self {
        init_logs();
        let emulator = Emulator::start(config).await.expect("emulator");
        let dynamo = dynamo_client(Backend::DynamoDbLocal).await;
        let table = fresh_table(&dynamo).await;
        let sealing_keys = Sealer::generate_key_ring_entry("test");
        let store = Arc::new(DynamoStore::new(
            dynamo.clone(),
            table.clone(),
            sealer(&sealing_keys),
        ));
        let clock = Arc::new(OffsetClock::default());
        let mut settings = settings(&emulator, &table);
        for (k, v) in extra {
            settings.insert(k.to_string(), v.to_string());
        }
        let service = service_with(&settings, store.clone(), clock.clone());
        Self {
            emulator,
            dynamo,
            table,
            store,
            clock,
            service,
            settings,
            sealing_keys,
            responses: Mutex::new(vec![]),
            flow_secrets: Mutex::new(HashMap::new()),
        }
    }

    /// The environment a Lambda of this deployment gets (for child processes).
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.settings.clone().into_iter().collect();
        env.push((
            "TOKEN_SEALING_KEYS".into(),
            self.sealing_keys.expose().to_string(),
        ));
        env.push((
            "AWS_ENDPOINT_URL_DYNAMODB".into(),
            endpoint(Backend::DynamoDbLocal),
        ));
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("RUST_LOG", "warn"),
        ] {
            env.push((k.into(), v.into()));
        }
        env
    }

    /// Now, by this deployment's clock.
    pub fn clock_now(&self) -> i64 {
        self.clock.now()
    }

    /// The user's connection in the emulator's first team (where a consent
    /// lands unless the test picks another).
    pub async fn connection(&self, user: &str) -> Option<miro_connect::domain::Connection> {
        self.connection_in(user, miro_emulator::TEAM_ID).await
    }

    pub async fn connection_in(
        &self,
        user: &str,
        team: &str,
    ) -> Option<miro_connect::domain::Connection> {
        use miro_connect::store::ConnectionStore;
        let user = miro_connect::identity::AppUser::parse(user).expect("user");
        self.store
            .get_connection(
                &miro_connect::domain::ConnectionKey::new(&user, team),
                self.clock.now(),
            )
            .await
            .expect("read connection")
    }

    /// Makes the stored access token due: past its expiry by our clock and
    /// dead at Miro too (the emulator's clock moves an hour, for every token).
    pub async fn expire_access_token(&self, user: &str) {
        self.make_refresh_due(user).await;
        self.emulator.advance_clock(3600);
    }

    /// Makes the stored access token past its expiry by our clock only.
    pub async fn make_refresh_due(&self, user: &str) {
        self.make_refresh_due_in(user, miro_emulator::TEAM_ID).await
    }

    pub async fn make_refresh_due_in(&self, user: &str, team: &str) {
        use miro_connect::store::ConnectionStore;
        let mut c = self.connection_in(user, team).await.expect("connected");
        c.access_expires_at = Some(self.clock.now() - 1);
        self.store
            .put_connection(&c)
            .await
            .expect("write connection");
    }

    /// Items a flow leaves behind: pending authorizations, completions,
    /// connections, idempotency records. The per-user count of live flows
    /// (`FLOWS#`) is bookkeeping that expires with them, and the user's
    /// default team a choice beside their connections: neither is counted.
    pub async fn items(&self) -> usize {
        scan(&self.dynamo, &self.table)
            .await
            .iter()
            .filter(|item| {
                let attr = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
                !attr("pk").is_some_and(|pk| pk.starts_with("FLOWS#"))
                    && attr("sk").map(String::as_str) != Some("DEFAULT")
            })
            .count()
    }

    /// A call as API Gateway makes it; `user` is the verified JWT's `sub`.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        user: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.call_with(method, path_and_query, user, body, "application/json")
            .await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path_and_query: &str,
        user: Option<&str>,
        body: Option<&str>,
        content_type: &str,
    ) -> Reply {
        self.send(
            request(method, path_and_query, user, body, content_type),
            user,
        )
        .await
    }

    /// `req` through the routes, its answer kept to look for leaks and its
    /// flow secret kept as the app's tab keeps it.
    pub async fn send(&self, req: Request, user: Option<&str>) -> Reply {
        let response = route(&self.service, req).await;
        let reply = Reply::from(response);
        if let (Some(user), Ok(body)) = (user, serde_json::from_str::<Value>(&reply.body)) {
            if let Some(secret) = body["flow_secret"].as_str() {
                self.flow_secrets
                    .lock()
                    .expect("lock")
                    .insert(user.to_string(), secret.to_string());
            }
        }
        self.responses
            .lock()
            .expect("lock")
            .push(format!("{:?} {}", reply.headers, reply.body));
        reply
    }

    pub async fn start(&self, user: &str, body: Option<&str>) -> Reply {
        self.call(Method::POST, "/miro/authorizations", Some(user), body)
            .await
    }

    pub async fn create_board(&self, user: &str, body: &str) -> Reply {
        self.call(Method::POST, "/boards", Some(user), Some(body))
            .await
    }

    /// `POST /boards` with an `Idempotency-Key`.
    pub async fn create_board_keyed(&self, user: &str, body: &str, key: &str) -> Reply {
        let mut req = request(
            Method::POST,
            "/boards",
            Some(user),
            Some(body),
            "application/json",
        );
        req.headers_mut()
            .insert("idempotency-key", key.parse().expect("header"));
        self.send(req, Some(user)).await
    }

    /// The browser at Miro: opens the authorize URL and clicks Allow or Deny.
    /// Returns the query Miro redirected back with.
    pub async fn consent(&self, authorize_url: &str, allow: bool) -> String {
        consent_with(
            authorize_url,
            &[("decision", if allow { "allow" } else { "deny" })],
        )
        .await
    }

    pub async fn callback(&self, query: &str) -> Reply {
        self.call(Method::GET, &format!("/miro/callback?{query}"), None, None)
            .await
    }

    /// The user's latest flow secret, if a flow was started for them.
    pub fn flow_secret(&self, user: &str) -> Option<String> {
        self.flow_secrets.lock().expect("lock").get(user).cloned()
    }

    /// Completes with the flow secret the user's own tab kept.
    pub async fn complete(&self, user: &str, completion: &str) -> Reply {
        let secret = self.flow_secret(user);
        self.complete_with(user, completion, secret.as_deref())
            .await
    }

    pub async fn complete_with(
        &self,
        user: &str,
        completion: &str,
        flow_secret: Option<&str>,
    ) -> Reply {
        let body =
            serde_json::json!({ "completion": completion, "flow_secret": flow_secret }).to_string();
        self.call(
            Method::POST,
            "/miro/authorizations/complete",
            Some(user),
            Some(&body),
        )
        .await
    }

    /// start → consent (Allow) → callback; returns the completion id.
    pub async fn authorize(&self, user: &str) -> String {
        let started = self.start(user, None).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
        let query = self
            .consent(started.json()["authorize_url"].as_str().expect("url"), true)
            .await;
        let back = self.callback(&query).await;
        completion_from(&back)
    }

    /// A full connect for `user`.
    pub async fn connect(&self, user: &str) {
        let completion = self.authorize(user).await;
        let done = self.complete(user, &completion).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    }

    /// Nothing secret in any log line or in any response of ours but where
    /// the flow needs it (tokens and codes: nowhere).
    pub fn assert_no_secret_leaked(&self, flow_secrets: &[String]) {
        let logs = captured_logs();
        assert!(
            logs.contains("authorization started"),
            "the logs are being captured"
        );
        let mut secrets = self.emulator.issued_secrets();
        secrets.push(self.emulator.config().client_secret.clone());
        for secret in secrets.iter().chain(flow_secrets) {
            assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        }
        let responses = self.responses.lock().expect("lock");
        for secret in &secrets {
            for r in responses.iter() {
                assert!(
                    !r.contains(secret.as_str()),
                    "a token, code or client secret reached a response"
                );
            }
        }
    }
}

/// The browser at Miro: opens the authorize URL and posts its form (`decision`,
/// and `miro_user` to consent as another Miro account). Returns the query
/// Miro redirected back with.
pub async fn consent_with(authorize_url: &str, form: &[(&str, &str)]) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = http
        .get(authorize_url)
        .send()
        .await
        .expect("authorize page");
    assert_eq!(
        page.status(),
        200,
        "the emulator refused the authorize request"
    );
    let decision = http
        .post(authorize_url)
        .form(form)
        .send()
        .await
        .expect("decision");
    assert!(decision.status().is_redirection());
    let location = decision.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let location = url::Url::parse(&location).expect("redirect");
    assert_eq!(
        format!(
            "{}{}",
            location.origin().ascii_serialization(),
            location.path()
        ),
        REDIRECT_URI
    );
    location.query().unwrap_or_default().to_string()
}

/// The routes of every HTTP function, as API Gateway maps them (with the
/// path's parameters). A method the path does not take still reaches its
/// function, which must refuse it.
pub async fn route(service: &Service, req: Request) -> Response<Body> {
    use miro_connect::routes::{Function, ROUTES};
    let path = req.uri().path().to_string();
    let matched = ROUTES
        .iter()
        .filter_map(|r| r.matches(&path).map(|params| (r, params)))
        .min_by_key(|(r, _)| r.method != req.method().as_str());
    let Some((route, params)) = matched else {
        panic!("no route {path}");
    };
    let params: HashMap<String, String> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let req = req.with_path_parameters(params);
    let result = match route.function {
        Function::AuthStart => auth_start::handle(service, req).await,
        Function::AuthCallback => auth_callback::handle(service, req).await,
        Function::CreateBoard => create_board::handle(service, req).await,
        Function::Connection => connection::handle(service, req).await,
        other @ (Function::BoardEvents | Function::KeepAlive) => {
            panic!("{other} serves no route")
        }
    };
    result.expect("handlers answer every request")
}

pub fn request(
    method: Method,
    path_and_query: &str,
    user: Option<&str>,
    body: Option<&str>,
    content_type: &str,
) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://connect.example.test{path_and_query}"));
    if body.is_some() {
        builder = builder.header("content-type", content_type);
    }
    let req = builder
        .body(
            body.map(|b| Body::Text(b.to_string()))
                .unwrap_or(Body::Empty),
        )
        .expect("request");
    match user {
        Some(sub) => req.with_request_context(authorizer_context(sub)),
        None => req,
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: lambda_http::http::HeaderMap,
    pub body: String,
}

impl From<Response<Body>> for Reply {
    fn from(r: Response<Body>) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let body = match r.into_body() {
            Body::Text(t) => t,
            Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        Self {
            status,
            headers,
            body,
        }
    }
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    pub fn location(&self) -> url::Url {
        let l = self
            .headers
            .get("location")
            .expect("a Location header")
            .to_str()
            .expect("ascii");
        url::Url::parse(l).expect("absolute Location")
    }

    /// A client error as the API promises it: 4xx, `{error, message}`.
    pub fn assert_client_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["error"], code, "{}", self.body);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    pub fn assert_error_page(&self) {
        assert_eq!(self.status, StatusCode::BAD_REQUEST);
        assert!(self.headers["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/html")));
        assert!(self.headers.get("location").is_none());
    }
}

pub fn query_value(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub fn completion_from(back: &Reply) -> String {
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let to = back.location();
    assert!(to.as_str().starts_with(RETURN_TO), "{to}");
    query_value(&to, "miro_authorization").expect("a completion id")
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at debug level, in the production format.
pub fn init_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

pub fn captured_logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().expect("lock")).into_owned())
        .unwrap_or_default()
}

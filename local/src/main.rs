//! `cargo run -p miro-connect-local`: every handler behind its API route on
//! one port, a demo app, and by default the in-memory store and the built-in
//! Miro emulator (under `/_miro`). Real Miro and real DynamoDB by settings
//! alone (README, "Configuration").
//!
//! It plays API Gateway: it verifies the demo app's JWT and hands each
//! handler the request with the authorizer's claims, exactly as AWS does.
//! The Lambda binaries themselves never trust an identity they did not get
//! from that context.
//!
//! Because its demo sign-in issues a valid JWT for any name, it listens on
//! loopback only (unless `MIRO_CONNECT_LOCAL_ALLOW_REMOTE=1`), and answers
//! only requests addressed to its own name (no DNS rebinding).

mod gateway;

use gateway::{AllowedHosts, Backend, Gateway};
use miro_connect::bootstrap;
use miro_connect::clock::SystemClock;
use miro_connect::config::Config;
use miro_connect::store::dynamo::DynamoStore;
use miro_connect::store::memory::MemoryStore;
use miro_connect::store::Store;
use miro_emulator::{Emulator, EmulatorConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    miro_connect::logging::init();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let addr = env("MIRO_CONNECT_LOCAL_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
    let allow_remote = env("MIRO_CONNECT_LOCAL_ALLOW_REMOTE").as_deref() == Some("1");
    let listener = match listen(&addr, allow_remote).await {
        Ok(listener) => listener,
        Err(message) => {
            eprintln!("miro-connect-local: {message}");
            std::process::exit(2);
        }
    };
    let local = listener.local_addr()?;
    let public = env("PUBLIC_URL").unwrap_or_else(|| format!("http://{local}"));
    let public = public.trim_end_matches('/').to_string();
    let hosts = match AllowedHosts::new(local, &public) {
        Ok(hosts) => hosts,
        Err(message) => {
            eprintln!("miro-connect-local: {message}");
            std::process::exit(2);
        }
    };

    // Embedded defaults, each overridden by the same setting in the environment.
    let mut settings: HashMap<String, String> = HashMap::new();
    settings.insert(
        "MIRO_REDIRECT_URI".into(),
        format!("{public}/miro/callback"),
    );
    settings.insert("ALLOWED_RETURN_ORIGINS".into(), public.clone());
    settings.insert("DEFAULT_RETURN_TO".into(), format!("{public}/"));
    let real_miro = env("MIRO_CLIENT_ID").is_some();
    let emulator = if real_miro {
        None
    } else {
        let base = format!("{public}/_miro");
        let config = EmulatorConfig {
            redirect_uris: vec![format!("{public}/miro/callback")],
            ..EmulatorConfig::default()
        };
        settings.insert("MIRO_CLIENT_ID".into(), config.client_id.clone());
        settings.insert("MIRO_CLIENT_SECRET".into(), config.client_secret.clone());
        settings.insert("MIRO_AUTH_BASE_URL".into(), base.clone());
        settings.insert("MIRO_API_BASE_URL".into(), base.clone());
        let (emulator, routes) = Emulator::router(config, base);
        // Template boards the demo can copy, one in each of two teams.
        let templates: Vec<serde_json::Value> = [
            (miro_emulator::TEAM_ID, "Retrospective template", "retro"),
            (
                miro_emulator::SECOND_TEAM_ID,
                "Sprint planning template",
                "planning",
            ),
        ]
        .into_iter()
        .map(|(team, name, content)| {
            serde_json::json!({
                "id": emulator.add_template(team, name, content),
                "name": name,
                "team_id": team,
            })
        })
        .collect();
        Some((emulator, routes, templates))
    };
    let lookup = |k: &str| env(k).or_else(|| settings.get(k).cloned());
    let config = Config::from_lookup(lookup)?;

    let miro = if real_miro {
        config.miro_api_base.to_string()
    } else {
        format!("built-in emulator at {public}/_miro")
    };
    let (backend, describe) = match env("MIRO_CONNECT_LAMBDA_URL") {
        // The functions run under `cargo lambda watch`; this process only
        // plays API Gateway (and hosts the emulator and the demo app).
        Some(invoke_base) => {
            let describe = format!("Miro: {miro}; functions: cargo lambda watch at {invoke_base}");
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()?;
            (Backend::Lambda { http, invoke_base }, describe)
        }
        None => {
            let (store, what) = store(&config, lookup).await?;
            let describe = format!("Miro: {miro}; store: {what}");
            let service = bootstrap::wire(config, store, Arc::new(SystemClock))?;
            (Backend::InProcess(Box::new(service)), describe)
        }
    };
    let mut router = Gateway::new(backend).router();
    if let Some((_, emulator_routes, templates)) = emulator {
        router = router.nest("/_miro", emulator_routes).route(
            "/demo/templates",
            axum::routing::get(move || async move { axum::Json(templates.clone()) }),
        );
    }
    let router = gateway::only_for(router, hosts.clone());

    println!("miro-connect local server ({describe})");
    println!(
        "Listening on {local}; answering to Host: {}",
        hosts.list().join(", ")
    );
    println!("Open {public}/ and press Ctrl-C to stop.");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            println!("Stopping.");
        })
        .await?;
    Ok(())
}

/// Binds `addr`, on loopback only unless `allow_remote`: the demo sign-in
/// hands out a valid JWT for any name to whoever can reach it.
async fn listen(addr: &str, allow_remote: bool) -> Result<tokio::net::TcpListener, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("MIRO_CONNECT_LOCAL_ADDR={addr} is not an address: {e}"))?
        .collect();
    let remote = |a: &SocketAddr| !a.ip().is_loopback();
    if addrs.is_empty() {
        return Err(format!(
            "MIRO_CONNECT_LOCAL_ADDR={addr} resolves to nothing"
        ));
    }
    if !allow_remote && addrs.iter().any(remote) {
        return Err(format!(
            "refusing to listen on {addr}: it is not a loopback address, and this demo server \
             issues a valid JWT for any user name to anyone who can reach it. Use 127.0.0.1 or \
             localhost, or set MIRO_CONNECT_LOCAL_ALLOW_REMOTE=1 if you really mean it."
        ));
    }
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    if remote(&local) {
        if !allow_remote {
            return Err(format!(
                "refusing to listen on {local}: not a loopback address"
            ));
        }
        eprintln!(
            "WARNING: miro-connect-local is listening on {local}, reachable from other machines \
             (MIRO_CONNECT_LOCAL_ALLOW_REMOTE=1). Its demo sign-in (POST /demo/sign-in) issues a \
             valid JWT for ANY user name to anyone who can reach it: anyone on this network can act \
             as any demo user, use their Miro connection and create boards with it. Run it like \
             this only on a network you trust, and set PUBLIC_URL to the address you open."
        );
    }
    Ok(listener)
}

/// The in-memory store by default; DynamoDB once `TABLE_NAME` is set, built
/// as the functions build theirs (the same AWS bounds, sealed tokens).
async fn store(
    config: &Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Arc<dyn Store>, String), Failure> {
    if config.table_name.is_empty() {
        return Ok((Arc::new(MemoryStore::new()), "in memory".into()));
    }
    if config.sealing_keys.is_none() {
        return Err("TOKEN_SEALING_KEYS is required with TABLE_NAME".into());
    }
    let aws = bootstrap::aws_config_from(&lookup).await?;
    let local_endpoint = ["AWS_ENDPOINT_URL_DYNAMODB", bootstrap::AWS_ENDPOINT_URL]
        .iter()
        .any(|k| lookup(k).is_some());
    if local_endpoint {
        // A local DynamoDB starts empty; a real table comes from the template.
        let client = aws_sdk_dynamodb::Client::new(&aws);
        DynamoStore::create_table(&client, &config.table_name).await?;
    }
    let store = bootstrap::dynamo_store(&aws, config, true)?;
    let what = format!("DynamoDB table {}", config.table_name);
    Ok((Arc::new(store), what))
}

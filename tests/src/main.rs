//! The Miro emulator on its own: `cargo run -p miro-emulator`.
//!
//! Settings (environment): `MIRO_EMULATOR_ADDR` (default 127.0.0.1:9911),
//! `MIRO_CLIENT_ID`, `MIRO_CLIENT_SECRET`, `MIRO_REDIRECT_URI` (comma-separated,
//! matched exactly), `MIRO_EMULATOR_TOKEN_LIFETIME` (seconds, or `never`).

use miro_emulator::{Emulator, EmulatorConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut config = EmulatorConfig::default();
    if let Some(id) = env("MIRO_CLIENT_ID") {
        config.client_id = id;
    }
    if let Some(secret) = env("MIRO_CLIENT_SECRET") {
        config.client_secret = secret;
    }
    config.redirect_uris = env("MIRO_REDIRECT_URI")
        .unwrap_or_else(|| "http://localhost:3000/miro/callback".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    match env("MIRO_EMULATOR_TOKEN_LIFETIME").as_deref() {
        Some("never") => config.access_token_lifetime = None,
        Some(s) => config.access_token_lifetime = s.parse().ok().or(config.access_token_lifetime),
        None => {}
    }
    let addr = env("MIRO_EMULATOR_ADDR").unwrap_or_else(|| "127.0.0.1:9911".into());
    let emulator = Emulator::serve(config, &addr).await?;
    println!("Miro emulator listening on {}", emulator.base_url());
    tokio::signal::ctrl_c().await
}

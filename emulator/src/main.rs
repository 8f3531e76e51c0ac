//! The Miro emulator on its own: `cargo run -p miro-emulator -- [OPTIONS]`.
//! Every option can also come from the environment; a flag wins.

use miro_emulator::{Emulator, EmulatorConfig};

const USAGE: &str = "\
miro-emulator: Miro's OAuth2 server and REST API (authorize, token, revoke,
token context, board create, copy and member invitations), emulated on one port.

Options (environment variable in brackets):
  --addr HOST:PORT            where to listen [MIRO_EMULATOR_ADDR] (127.0.0.1:9911)
  --client-id ID              the registered app's client id [MIRO_CLIENT_ID]
  --client-secret SECRET      its client secret [MIRO_CLIENT_SECRET]
  --redirect-uri URI          a registered redirect URI, matched exactly; repeat
                              for more [MIRO_REDIRECT_URI, comma-separated]
                              (http://localhost:3000/miro/callback)
  --token-lifetime SECONDS    access-token lifetime, or `never` for non-expiring
                              tokens without refresh tokens
                              [MIRO_EMULATOR_TOKEN_LIFETIME] (3599)
  --board-rate-limit N/SECS   at most N board creations (N x 500 credits) per
                              Miro user per window of SECS seconds, then 429
                              [MIRO_EMULATOR_BOARD_RATE_LIMIT]
  --credit-rate-limit N/SECS  at most N credits per Miro user per window (create
                              and invite 500, copy 2000); wins over the above
                              [MIRO_EMULATOR_CREDIT_RATE_LIMIT]
  --accept-query-parameters   take token-endpoint parameters from the URL too,
                              as real Miro does [MIRO_EMULATOR_ACCEPT_QUERY_PARAMETERS=1]
  -h, --help                  this text

It prints `Miro emulator listening on http://HOST:PORT` once it is up; point
your client's authorize and API base URLs there. Ctrl-C stops it.";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (config, addr) = match settings(&args, env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("miro-emulator: {e}\n\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("miro-emulator: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let emulator = Emulator::serve(config, &addr).await?;
        println!("Miro emulator listening on {}", emulator.base_url());
        tokio::signal::ctrl_c().await
    });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miro-emulator: {addr}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The configuration and the address, from the flags over the environment.
fn settings(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<(EmulatorConfig, String), String> {
    let mut config = EmulatorConfig::default();
    let mut addr = env("MIRO_EMULATOR_ADDR").unwrap_or_else(|| "127.0.0.1:9911".into());
    if let Some(id) = env("MIRO_CLIENT_ID") {
        config.client_id = id;
    }
    if let Some(secret) = env("MIRO_CLIENT_SECRET") {
        config.client_secret = secret;
    }
    let mut redirect_uris: Vec<String> = env("MIRO_REDIRECT_URI")
        .unwrap_or_else(|| "http://localhost:3000/miro/callback".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let mut lifetime = env("MIRO_EMULATOR_TOKEN_LIFETIME");
    let mut rate = env("MIRO_EMULATOR_BOARD_RATE_LIMIT");
    let mut credits = env("MIRO_EMULATOR_CREDIT_RATE_LIMIT");
    config.accept_query_parameters =
        env("MIRO_EMULATOR_ACCEPT_QUERY_PARAMETERS").is_some_and(|v| v == "1" || v == "true");

    let mut flag_uris = vec![];
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if name == "--accept-query-parameters" {
            config.accept_query_parameters = true;
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{name} needs a value"))
        };
        match name {
            "--addr" => addr = value()?,
            "--client-id" => config.client_id = value()?,
            "--client-secret" => config.client_secret = value()?,
            "--redirect-uri" => flag_uris.push(value()?),
            "--token-lifetime" => lifetime = Some(value()?),
            "--board-rate-limit" => rate = Some(value()?),
            "--credit-rate-limit" => credits = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !flag_uris.is_empty() {
        redirect_uris = flag_uris;
    }
    config.redirect_uris = redirect_uris;
    match lifetime.as_deref() {
        Some("never") => config.access_token_lifetime = None,
        Some(s) => {
            let seconds = s
                .parse()
                .map_err(|_| format!("token lifetime {s:?} is no number of seconds"))?;
            config.access_token_lifetime = Some(seconds);
        }
        None => {}
    }
    if let Some(r) = rate {
        config.board_rate_limit =
            Some(per_window(&r).ok_or(format!("board rate limit {r:?} is not N/SECONDS"))?);
    }
    if let Some(c) = credits {
        config.credit_rate_limit =
            Some(per_window(&c).ok_or(format!("credit rate limit {c:?} is not N/SECONDS"))?);
    }
    Ok((config, addr))
}

/// `N/SECONDS`.
fn per_window<N: std::str::FromStr>(s: &str) -> Option<(N, i64)> {
    let (n, seconds) = s.split_once('/')?;
    Some((n.parse().ok()?, seconds.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::settings;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = |k: &str| match k {
            "MIRO_REDIRECT_URI" => Some("http://a.test/cb, http://b.test/cb".to_string()),
            "MIRO_EMULATOR_TOKEN_LIFETIME" => Some("60".to_string()),
            "MIRO_CLIENT_ID" => Some("from-env".to_string()),
            _ => None,
        };
        let (c, addr) = settings(&[], env).expect("settings");
        assert_eq!(c.redirect_uris, ["http://a.test/cb", "http://b.test/cb"]);
        assert_eq!(c.access_token_lifetime, Some(60));
        assert_eq!(c.client_id, "from-env");
        assert_eq!(addr, "127.0.0.1:9911");

        let flags = args(&[
            "--redirect-uri",
            "http://c.test/cb",
            "--redirect-uri=http://d.test/cb",
            "--token-lifetime",
            "never",
            "--addr",
            "127.0.0.1:0",
            "--board-rate-limit",
            "5/60",
            "--credit-rate-limit=4000/60",
            "--accept-query-parameters",
        ]);
        let (c, addr) = settings(&flags, env).expect("settings");
        assert_eq!(c.redirect_uris, ["http://c.test/cb", "http://d.test/cb"]);
        assert_eq!(c.access_token_lifetime, None);
        assert_eq!(c.board_rate_limit, Some((5, 60)));
        assert_eq!(c.credit_rate_limit, Some((4000, 60)));
        assert_eq!(c.credit_budget(), Some((4000, 60)));
        assert!(c.accept_query_parameters);
        assert_eq!(c.client_id, "from-env");
        assert_eq!(addr, "127.0.0.1:0");
    }

    #[test]
    fn bad_arguments_are_refused() {
        let none = |_: &str| None;
        for bad in [
            &["--nope"][..],
            &["--addr"],
            &["--token-lifetime", "soon"],
            &["--board-rate-limit", "5"],
            &["--credit-rate-limit", "lots/60"],
        ] {
            assert!(settings(&args(bad), none).is_err(), "{bad:?}");
        }
    }
}

//! Structured JSON logs. Nothing secret is ever a field: secrets are
//! [`crate::secret::Secret`]s, whose `Debug` is redacted.
//!
//! `RUST_LOG` sets the level of this project's own code only. Everything
//! else (the Lambda runtime, hyper, the AWS SDK, rustls) logs warnings and
//! errors, whatever the setting: at debug or trace those log whole events
//! and requests, with the bearer JWT, codes, states and completion ids.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// The targets of this project's crates, whose logs never hold a secret.
pub const OWN_TARGETS: [&str; 7] = [
    "miro_connect",
    "auth_start",
    "auth_callback",
    "create_board",
    "connection",
    "board_events",
    "miro_connect_local",
];

/// The filter for a `RUST_LOG` value: a level (`error` … `trace`) for our
/// own targets, `info` when unset or not a bare level; the runtime at
/// `info` at most, `warn` for the rest.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let level = rust_log
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // The runtime's info span carries the request id into every line.
    let mut directives = String::from("warn,lambda_runtime=info");
    for target in OWN_TARGETS {
        directives.push_str(&format!(",{target}={level}"));
    }
    EnvFilter::new(directives)
}

/// When [`init`] began (the first thing a function's `main` does), on the
/// wall clock and the monotonic one, and what it took: the `cold start`
/// line reports them, so that the benchmark can place `main` in the init.
#[derive(Clone, Copy)]
pub(crate) struct Started {
    pub at: SystemTime,
    pub began: Instant,
    pub took: Duration,
}

static STARTED: OnceLock<Started> = OnceLock::new();

pub(crate) fn started() -> Option<Started> {
    STARTED.get().copied()
}

/// One JSON object a line, with the Lambda request id from the runtime's span.
pub fn init() {
    let (at, began) = (SystemTime::now(), Instant::now());
    let rust_log = std::env::var("RUST_LOG").ok();
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(rust_log.as_deref()))
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .try_init();
    let _ = STARTED.set(Started {
        at,
        began,
        took: began.elapsed(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_setting_opens_the_runtime_or_the_sdks_below_warn() {
        for setting in [
            Some("trace"),
            Some("debug"),
            Some("lambda_runtime=trace"),
            Some("trace,hyper=trace"),
            None,
        ] {
            let text = filter(setting).to_string();
            let directives: Vec<&str> = text.split(',').collect();
            assert!(directives.contains(&"warn"), "{setting:?}: {text}");
            assert!(directives.contains(&"lambda_runtime=info"), "{text}");
            for d in directives {
                let target = d.split('=').next().unwrap_or_default();
                assert!(
                    d == "warn" || d == "lambda_runtime=info" || OWN_TARGETS.contains(&target),
                    "{setting:?} opened {d}"
                );
            }
        }
        assert!(filter(Some("trace"))
            .to_string()
            .contains("miro_connect=trace"));
        assert!(filter(None).to_string().contains("miro_connect=info"));
    }
}

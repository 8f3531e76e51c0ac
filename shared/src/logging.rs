//! Structured JSON logs. Nothing secret is ever a field: secrets are
//! [`crate::secret::Secret`]s, whose `Debug` is redacted.
//!
//! `RUST_LOG` sets the level of this project's own code only. Everything
//! else (the Lambda runtime, hyper, the AWS SDK, rustls) logs warnings and
//! errors, whatever the setting: at debug or trace those log whole events
//! and requests, with the bearer JWT, codes, states and completion ids.

use crate::routes::Function;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The targets of this project's crates beside the functions': the shared
/// crate, the local server and the admin tool.
pub const OTHER_TARGETS: [&str; 3] = ["miro_connect", "miro_connect_local", "miro_connect_admin"];

/// The targets of this project's crates, whose logs never hold a secret:
/// every function's ([`Function::ALL`], so that none is left out) and
/// [`OTHER_TARGETS`].
pub fn own_targets() -> Vec<&'static str> {
    Function::ALL
        .iter()
        .map(|f| f.target())
        .chain(OTHER_TARGETS)
        .collect()
}

/// The filter for a `RUST_LOG` value: a level (`error` … `trace`) for our
/// own targets, `info` when unset or not a bare level; the runtime at
/// `info` at most, `warn` for the rest.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let level = rust_log
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // The runtime's info span carries the request id into every line.
    let mut directives = String::from("warn,lambda_runtime=info");
    for target in own_targets() {
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
    let _ =
        tracing::subscriber::set_global_default(subscriber(rust_log.as_deref(), std::io::stdout));
    let _ = STARTED.set(Started {
        at,
        began,
        took: began.elapsed(),
    });
}

/// What [`init`] installs, writing to `writer`: [`filter`] for `rust_log`,
/// one JSON object a line.
pub fn subscriber<W>(rust_log: Option<&str>, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(rust_log))
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The lines a [`subscriber`] wrote while `log` ran on this thread.
    fn lines_written(rust_log: Option<&str>, log: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = buffer.clone();
        let writer = move || Sink(sink.clone());
        tracing::subscriber::with_default(subscriber(rust_log, writer), log);
        let bytes = buffer.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
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

    fn functions_in(lines: &[serde_json::Value]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l["fields"]["function"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn every_functions_info_line_reaches_its_log() {
        let all: Vec<String> = Function::ALL.iter().map(|f| f.name().into()).collect();
        // Unset (the template sets none) and set to the default alike.
        for rust_log in [None, Some("info"), Some("debug")] {
            let lines = lines_written(rust_log, || {
                for f in Function::ALL {
                    f.log_info();
                }
            });
            assert_eq!(functions_in(&lines), all, "RUST_LOG={rust_log:?}");
            assert!(lines.iter().all(|l| l["level"] == "INFO"), "{lines:?}");
        }
        // The filter does keep lines out: a level above info, or a crate not ours.
        let lines = lines_written(Some("warn"), || {
            for f in Function::ALL {
                f.log_info();
            }
        });
        assert!(lines.is_empty(), "{lines:?}");
        let lines = lines_written(None, || {
            tracing::info!(target: "hyper", function = "hyper", "report");
            tracing::warn!(target: "hyper", function = "hyper-warning", "report");
        });
        assert_eq!(functions_in(&lines), ["hyper-warning"]);
    }

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
                    d == "warn" || d == "lambda_runtime=info" || own_targets().contains(&target),
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

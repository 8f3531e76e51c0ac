//! Structured JSON logs. Nothing secret is ever a field: secrets are
//! [`crate::secret::Secret`]s, whose `Debug` is redacted.

use tracing_subscriber::EnvFilter;

/// One JSON object a line, with the Lambda request id from the runtime's span.
pub fn init() {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .try_init();
}

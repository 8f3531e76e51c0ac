//! The keep-alive sweep, run on a schedule (EventBridge Scheduler): refreshes
//! connections whose refresh token ends soon, probes idle ones, removes and
//! announces the dead ones (`Service::sweep`). It stops well before its
//! invocation's time is up; what is left is due at the next run.

use lambda_runtime::{Error, LambdaEvent};
use miro_connect::bootstrap::Needs;
use miro_connect::metrics::{self, Metric};
use miro_connect::service::keepalive::SweepReport;
use miro_connect::Service;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Refreshes and revokes (the client secret, the sealing keys); announces
/// what it finds (the bus).
pub const NEEDS: Needs = Needs {
    secrets: true,
    events: true,
};

/// Time kept back from the invocation's deadline: the connection in hand
/// finishes within it (its read, the lease, a refresh, the token write and
/// a probe: about 30 s at the bounds of `AWS_OPERATION_TIMEOUT_MS` and
/// `MIRO_TIMEOUT_MS`). A sweep cut mid-refresh would lose the new tokens.
const MARGIN: Duration = Duration::from_secs(40);

/// The scheduler's event carries nothing the sweep needs.
pub async fn handle(
    service: &Service,
    event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, Error> {
    let report = service.sweep(stop_at(event.context.deadline)).await?;
    for (metric, n) in [
        (Metric::KeepAliveRefreshed, report.refreshed),
        (Metric::KeepAliveProbed, report.probed),
        (Metric::KeepAliveRevoked, report.revoked),
        (Metric::KeepAliveExpired, report.expired),
        (Metric::KeepAliveErrors, report.errors),
    ] {
        metrics::count(metric, n as u64, &[]);
    }
    lambda_runtime::tracing::info!(
        due = report.due,
        refreshed = report.refreshed,
        probed = report.probed,
        revoked = report.revoked,
        expired = report.expired,
        expiring = report.expiring,
        errors = report.errors,
        unfinished = report.unfinished,
        "sweep done"
    );
    Ok(report)
}

/// The invocation's deadline (epoch milliseconds) less the margin, as an `Instant`.
fn stop_at(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Instant::now()
        + Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(MARGIN)
}

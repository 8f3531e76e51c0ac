//! The keep-alive sweep, run on a schedule (EventBridge Scheduler): refreshes
//! connections whose refresh token ends soon, probes idle ones, removes and
//! announces the dead ones (`Service::sweep`); then re-seals connections
//! still sealed under older keys and counts what each key seals
//! (`Service::reseal`). It stops well before its invocation's time is up;
//! what is left is done at the next run.

use lambda_runtime::{Error, LambdaEvent};
use miro_connect::bootstrap::Needs;
use miro_connect::metrics::{self, Dimension, Metric};
use miro_connect::service::keepalive::SweepReport;
use miro_connect::service::reseal::ResealReport;
use miro_connect::Service;
use serde::Serialize;
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

/// What one run did: the sweep's counts, and the re-seal pass's under `keys`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub sweep: SweepReport,
    pub keys: ResealReport,
}

/// The scheduler's event carries nothing the sweep needs.
pub async fn handle(
    service: &Service,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Report, Error> {
    let stop = stop_at(event.context.deadline);
    let report = service.sweep(stop).await?;
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
    // Keeping connections alive comes first; re-sealing takes what is left.
    let keys = service.reseal(stop).await?;
    for (key_id, n) in &keys.remaining {
        metrics::count(
            Metric::SealedUnderKey,
            *n,
            &[(Dimension::Key, metrics::key_id(key_id))],
        );
    }
    metrics::count(Metric::SealedUnderMissingKey, keys.missing, &[]);
    lambda_runtime::tracing::info!(
        newest = %keys.newest,
        resealed = keys.resealed,
        moved_on = keys.moved_on,
        unopenable = keys.unopenable,
        errors = keys.errors,
        remaining = ?keys.remaining,
        missing = keys.missing,
        unfinished = keys.unfinished,
        "re-seal done"
    );
    Ok(Report {
        sweep: report,
        keys,
    })
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

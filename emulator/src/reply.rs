//! Miro's answer shapes shared by every area: the error body
//! `{status, code, message, type}`, extra headers, HTML pages, and the
//! timestamps Miro writes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Miro's error body: `{"status", "code", "message", "type": "error"}`.
pub(crate) fn miro_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        json!({ "status": status.as_u16(), "code": code, "message": message, "type": "error" });
    (status, Json(body)).into_response()
}

/// `status` from a test's number; `fallback` when it is no HTTP status.
pub(crate) fn status_or(status: u16, fallback: StatusCode) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(fallback)
}

pub(crate) fn with_headers(
    mut response: Response,
    headers: Vec<(&'static str, String)>,
) -> Response {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

pub(crate) fn html_response(status: StatusCode, page: &'static str) -> Response {
    (status, Html(page)).into_response()
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// ISO-8601 UTC to the second (`2026-12-01T14:07:49Z`), as Miro writes
/// `createdAt`; empty outside the years 1 to 9999.
pub(crate) fn iso8601(epoch: i64) -> String {
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant, `civil_from_days`).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1..=9999).contains(&year) {
        return String::new();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn iso8601_writes_what_aws_smithy_types_writes() {
        use aws_smithy_types::date_time::{DateTime, Format};
        let smithy = |t: i64| {
            DateTime::from_secs(t)
                .fmt(Format::DateTime)
                .unwrap_or_default()
        };
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        let mut t = -62_135_596_800; // 0001-01-01
        while t < 253_402_300_800 {
            // 10000-01-01
            assert_eq!(iso8601(t), smithy(t), "{t}");
            t += 7_777_777;
        }
        for t in [-1, 86_399, 86_400, 4_102_444_800, 253_402_300_799] {
            assert_eq!(iso8601(t), smithy(t), "{t}");
        }
    }
}

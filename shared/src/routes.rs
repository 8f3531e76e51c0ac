//! The HTTP API's routes and the Lambda functions: one list of each, for the
//! local server to serve and the benchmark to run, and for tests to hold the
//! template, `openapi.yaml`, the workspace, `cargo lambda watch`'s router and
//! the build scripts to (`tests/tests/it/layout.rs`).

/// A route as API Gateway declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// The Lambda function (binary) behind it.
    pub function: &'static str,
    /// Guarded by the JWT authorizer. Only Miro's redirect is not.
    pub authorized: bool,
}

const fn route(
    method: &'static str,
    path: &'static str,
    function: &'static str,
    authorized: bool,
) -> Route {
    Route {
        method,
        path,
        function,
        authorized,
    }
}

pub const ROUTES: [Route; 6] = [
    route("POST", "/miro/authorizations", "auth-start", true),
    route("GET", "/miro/callback", "auth-callback", false),
    route(
        "POST",
        "/miro/authorizations/complete",
        "auth-callback",
        true,
    ),
    route("POST", "/boards", "create-board", true),
    route("GET", "/miro/connection", "connection", true),
    route("DELETE", "/miro/connection", "connection", true),
];

/// Every Lambda function (its crate, `functions/<name>`, and its binary):
/// those behind [`ROUTES`], and `board-events`, the SQS consumer.
pub const FUNCTIONS: [&str; 5] = [
    "auth-start",
    "auth-callback",
    "create-board",
    "connection",
    "board-events",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_served_by_a_listed_function_and_a_path_by_one() {
        for r in ROUTES {
            assert!(FUNCTIONS.contains(&r.function), "{r:?}");
            assert!(
                ROUTES
                    .iter()
                    .all(|o| o.path != r.path || o.function == r.function),
                "{} is served by one function",
                r.path
            );
            assert_eq!(
                ROUTES
                    .iter()
                    .filter(|o| (o.method, o.path) == (r.method, r.path))
                    .count(),
                1,
                "{r:?} once"
            );
        }
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert!(!FUNCTIONS[..i].contains(f), "{f} twice");
        }
    }
}

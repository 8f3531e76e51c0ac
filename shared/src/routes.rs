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

impl Route {
    /// The path's parameters if `path` is this route's (`{name}` matches one
    /// non-empty segment, as in API Gateway's route keys).
    pub fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        let mut want = self.path.split('/');
        let mut have = path.split('/');
        loop {
            match (want.next(), have.next()) {
                (None, None) => return Some(params),
                (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') && !h.is_empty() => {
                    params.push((&w[1..w.len() - 1], h.to_string()))
                }
                (Some(w), Some(h)) if w == h => {}
                _ => return None,
            }
        }
    }
}

pub const ROUTES: [Route; 9] = [
    route("POST", "/miro/authorizations", "auth-start", true),
    route("GET", "/miro/callback", "auth-callback", false),
    route(
        "POST",
        "/miro/authorizations/complete",
        "auth-callback",
        true,
    ),
    route("POST", "/boards", "create-board", true),
    route("POST", "/boards/{board_id}/items", "create-board", true),
    route("GET", "/miro/connections", "connection", true),
    route("DELETE", "/miro/connections", "connection", true),
    route("DELETE", "/miro/connections/{team_id}", "connection", true),
    route(
        "PUT",
        "/miro/connections/{team_id}/default",
        "connection",
        true,
    ),
];

/// Every Lambda function (its crate, `functions/<name>`, and its binary):
/// those behind [`ROUTES`], `board-events`, the SQS consumer, and
/// `keep-alive`, the scheduled sweep.
pub const FUNCTIONS: [&str; 6] = [
    "auth-start",
    "auth-callback",
    "create-board",
    "connection",
    "board-events",
    "keep-alive",
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
        let team = ROUTES
            .iter()
            .find(|r| r.path == "/miro/connections/{team_id}")
            .expect("the team route");
        assert_eq!(
            team.matches("/miro/connections/3458764517517818867"),
            Some(vec![("team_id", "3458764517517818867".to_string())])
        );
        assert_eq!(team.matches("/miro/connections/"), None);
        assert_eq!(team.matches("/miro/connections/1/2"), None);
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert!(!FUNCTIONS[..i].contains(f), "{f} twice");
        }
    }
}

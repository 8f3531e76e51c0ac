//! The HTTP API's routes: one list for the local server to serve, and for
//! tests to hold the template and `openapi.yaml` to.

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

//! The HTTP API's routes and the Lambda functions: one list of each, for the
//! local server to serve, the log filter to let through and the benchmark to
//! run, and for tests to hold the template, `openapi.yaml`, the workspace,
//! `cargo lambda watch`'s router and the build scripts to
//! (`tests/tests/it/layout.rs`).

/// Declares [`Function`] and [`Function::ALL`] from one list, so that no
/// function can be in one and not the other.
macro_rules! functions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $target:literal;)*) => {
        /// A Lambda function: its crate and binary (`functions/<name>`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Function {
            $($(#[$doc])* $variant,)*
        }

        impl Function {
            /// Every function, each once.
            pub const ALL: &'static [Function] = &[$(Function::$variant,)*];

            /// Its crate, binary and directory under `functions/`, and its
            /// name in the template and under `cargo lambda watch`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Function::$variant => $name,)*
                }
            }

            /// Its library's crate name: the target of every log line its
            /// own code writes (`logging`'s filter lets these through).
            pub const fn target(self) -> &'static str {
                match self {
                    $(Function::$variant => $target,)*
                }
            }

            /// An info line from the function's own target, as its crate's
            /// `tracing::info!` writes one (a macro's target must be a
            /// literal, hence here): the log filter's test.
            #[cfg(test)]
            pub(crate) fn log_info(self) {
                match self {
                    $(Function::$variant => tracing::info!(target: $target, function = $name, "report"),)*
                }
            }
        }
    };
}

functions! {
    AuthStart = "auth-start", "auth_start";
    AuthCallback = "auth-callback", "auth_callback";
    CreateBoard = "create-board", "create_board";
    Connection = "connection", "connection";
    /// The SQS consumer of board requests (no route).
    BoardEvents = "board-events", "board_events";
    /// The scheduled sweep (no route).
    KeepAlive = "keep-alive", "keep_alive";
}

impl Function {
    /// The function of that name, if there is one.
    pub fn named(name: &str) -> Option<Function> {
        Function::ALL.iter().copied().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A route as API Gateway declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// The Lambda function behind it.
    pub function: Function,
    /// Guarded by the JWT authorizer. Only Miro's redirect is not.
    pub authorized: bool,
}

const fn route(
    method: &'static str,
    path: &'static str,
    function: Function,
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
    route("POST", "/miro/authorizations", Function::AuthStart, true),
    route("GET", "/miro/callback", Function::AuthCallback, false),
    route(
        "POST",
        "/miro/authorizations/complete",
        Function::AuthCallback,
        true,
    ),
    route("POST", "/boards", Function::CreateBoard, true),
    route(
        "POST",
        "/boards/{board_id}/items",
        Function::CreateBoard,
        true,
    ),
    route("GET", "/miro/connections", Function::Connection, true),
    route("DELETE", "/miro/connections", Function::Connection, true),
    route(
        "DELETE",
        "/miro/connections/{team_id}",
        Function::Connection,
        true,
    ),
    route(
        "PUT",
        "/miro/connections/{team_id}/default",
        Function::Connection,
        true,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_served_by_a_listed_function_and_a_path_by_one() {
        for r in ROUTES {
            assert!(Function::ALL.contains(&r.function), "{r:?}");
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
    }

    #[test]
    fn each_function_is_listed_once_and_logs_as_its_crate() {
        for (i, f) in Function::ALL.iter().enumerate() {
            assert!(!Function::ALL[..i].contains(f), "{f} twice");
            assert!(
                Function::ALL[..i].iter().all(|o| o.name() != f.name()),
                "{f}: a name twice"
            );
            // Cargo's default library name: the crate's, `-` made `_`.
            assert_eq!(f.target(), f.name().replace('-', "_"), "{f}");
            assert_eq!(Function::named(f.name()), Some(*f));
        }
        assert_eq!(Function::named("no-such-function"), None);
    }
}

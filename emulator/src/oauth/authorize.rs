//! `GET /oauth/authorize`: Miro's consent page, and the decision posted
//! from it. A bad request gets Miro's own error page and no redirect; an
//! Allow issues a single-use code bound to the exact `redirect_uri` and to
//! the PKCE challenge, when one came.

use super::query_map;
use crate::reply::html_escape;
use crate::state::{is_crowd_user, team_name, user_name, user_teams, CodeRecord, Shared};
use crate::{ATTACKER_MIRO_USER_ID, MIRO_USER_ID, MIRO_USER_NAME, TEAM_ID};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::sync::Arc;

/// Miro's own error page for a bad authorize request: it does not redirect.
fn authorize_refusal(message: &str) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Miro</title></head>\
         <body><h1>Something went wrong</h1><p id=\"error\">{}</p></body></html>",
        html_escape(message)
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

/// A valid authorize request.
struct Authorize {
    redirect_uri: String,
    /// The PKCE S256 challenge, when one came.
    challenge: Option<String>,
}

/// RFC 7636 §4.2: an S256 challenge is BASE64URL-NOPAD of a SHA-256 hash.
fn valid_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_authorize(
    shared: &Shared,
    q: &HashMap<String, String>,
) -> Result<Authorize, &'static str> {
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err("response_type must be code");
    }
    if q.get("client_id") != Some(&shared.config.client_id) {
        return Err("Unknown client_id");
    }
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return Err("redirect_uri is required");
    };
    if !shared
        .config
        .redirect_uris
        .iter()
        .any(|r| r == redirect_uri)
    {
        return Err("Redirect URI mismatch.");
    }
    let challenge = match (q.get("code_challenge"), q.get("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => return Err("code_challenge is required."),
        // An absent method means `plain` (RFC 7636), which Miro refuses.
        (Some(_), m) if m.map(String::as_str) != Some("S256") => {
            return Err("code_challenge_method must be S256.")
        }
        (Some(c), _) if !valid_s256_challenge(c) => return Err("Invalid code_challenge."),
        (Some(c), _) => Some(c.clone()),
    };
    Ok(Authorize {
        redirect_uri: redirect_uri.clone(),
        challenge,
    })
}

/// The team the page preselects for `user`: the requested `team_id` when it
/// is one of the user's teams, else the user's first team.
fn preselected(q: &HashMap<String, String>, user: &str) -> &'static str {
    let teams = user_teams(user);
    q.get("team_id")
        .and_then(|wanted| teams.iter().find(|t| **t == wanted.as_str()))
        .or(teams.first())
        .copied()
        .unwrap_or(TEAM_ID)
}

pub(crate) async fn authorize_page(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query_map(&raw);
    if let Err(message) = check_authorize(&shared, &q) {
        return authorize_refusal(message);
    }
    let selected = preselected(&q, MIRO_USER_ID);
    let options: String = user_teams(MIRO_USER_ID)
        .iter()
        .map(|id| {
            format!(
                "<option value=\"{id}\"{sel}>{name}</option>",
                sel = if *id == selected { " selected" } else { "" },
                name = team_name(id).unwrap_or_default(),
            )
        })
        .collect();
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Miro emulator: authorize app</title></head>\
<body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto\">\
<h1>Install app and authorize access</h1>\
<p>Signed in to Miro (emulated) as <strong>{user}</strong>.</p>\
<p>The app asks for: {scopes}.</p>\
<form method=\"post\">\
<p><label for=\"team\">Install the app in team</label> \
<select name=\"team_id\" id=\"team\">{options}</select></p>\
<button name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
<button name=\"decision\" value=\"deny\" id=\"deny\">Deny</button> \
<button name=\"miro_user\" value=\"attacker\" id=\"allow-as-attacker\">Allow as {attacker}</button>\
</form></body></html>",
        user = MIRO_USER_NAME,
        attacker = user_name(ATTACKER_MIRO_USER_ID),
        scopes = html_escape(&shared.config.scopes.join(", ")),
    );
    no_store(Html(page).into_response())
}

/// The authorize step's answers: not cached, and no `Referer` onward.
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub(crate) async fn authorize_decision(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let q = query_map(&raw);
    let request = match check_authorize(&shared, &q) {
        Ok(r) => r,
        Err(message) => return authorize_refusal(message),
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Ok(mut target) = url::Url::parse(&request.redirect_uri) else {
        return authorize_refusal("Redirect URI mismatch.");
    };
    let as_attacker = form.get("miro_user").map(String::as_str) == Some("attacker");
    // The attacker's button carries no `decision`: pressing it allows.
    let allow = match form.get("decision").map(String::as_str) {
        Some(decision) => decision == "allow",
        None => as_attacker,
    };
    // Load tests sign in as many Miro users (`miro_user=<numeric id>`), each
    // with a credit budget of their own.
    let miro_user_id = match form.get("miro_user") {
        _ if as_attacker => ATTACKER_MIRO_USER_ID,
        Some(id) if is_crowd_user(id) => id.as_str(),
        _ => MIRO_USER_ID,
    };
    // The picked team, as the page's select sends it; a request without
    // one gets what the page would have preselected for this user.
    let team_id = match form.get("team_id") {
        Some(picked) => match user_teams(miro_user_id)
            .iter()
            .find(|t| **t == picked.as_str())
        {
            Some(t) => *t,
            None if allow => return authorize_refusal("You are not a member of this team."),
            None => TEAM_ID,
        },
        None => preselected(&q, miro_user_id),
    };
    let mut world = shared.world();
    if request.challenge.is_some() {
        world.pkce_challenges += 1;
    }
    {
        let mut pairs = target.query_pairs_mut();
        if allow {
            let code = world.mint("code-");
            let issued_at_ms = world.now_ms();
            // Consenting (re)installs the app in the picked team.
            world.uninstalled.retain(|t| t != team_id);
            let install = world.install(team_id);
            world.codes.insert(
                code.clone(),
                CodeRecord {
                    client_id: shared.config.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    issued_at_ms,
                    used: false,
                    challenge: request.challenge.clone(),
                    miro_user_id: miro_user_id.to_string(),
                    team_id: team_id.to_string(),
                    install,
                },
            );
            pairs.append_pair("code", &code);
            if let Some(state) = q.get("state") {
                pairs.append_pair("state", state);
            }
            pairs.append_pair("client_id", &shared.config.client_id);
            pairs.append_pair("team_id", team_id);
        } else {
            pairs.append_pair("error", "access_denied");
            pairs.append_pair("error_description", "The user has denied access");
            if let Some(state) = q.get("state") {
                pairs.append_pair("state", state);
            }
        }
    }
    no_store(Redirect::to(target.as_str()).into_response())
}

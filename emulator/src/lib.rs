//! An emulator of Miro's REST API and OAuth2 server, for testing a Miro
//! client without Miro. It follows Miro's documented behaviour strictly, so
//! that a client cannot pass tests that real Miro would fail: the authorize
//! page (Allow/Deny, a team picker, PKCE S256), the token endpoint (client
//! authentication, single-use codes, expiring tokens with rotation, one team
//! per token), board creation, copy and member invitations with Miro's
//! validation, per-user credits and bodies, token context and revocation,
//! and Miro's error shape everywhere. `README.md` lists what it enforces.
//!
//! Serve it alone ([`Emulator::start`], [`Emulator::serve`]) or nest its
//! [`Emulator::router`] under a path of another server. Tests read what
//! happened through the handle ([`Emulator::boards`],
//! [`Emulator::token_calls`], …) and switch Miro's misbehaviour on and off
//! through it ([`Emulator::inject_token_faults`],
//! [`Emulator::inject_board_faults`], [`Emulator::advance_clock`], …).
//!
//! The code is split by Miro area: [`oauth`] (authorize, token, token
//! context, revoke), [`boards`] (create, copy), `members`, `metered`
//! (what every board call goes through) with `rate` (credits), [`faults`]
//! (the injectable faults and their switches), with the state in `state`
//! and the handle in `handle`.

mod boards;
mod faults;
mod handle;
mod items;
mod members;
mod metered;
mod oauth;
mod rate;
mod reply;
mod state;
#[cfg(test)]
mod tests;

pub use faults::{BoardFault, TokenFault};
pub use handle::Emulator;
pub use items::{ConnectorRecord, ItemCall, ItemCallKind, ItemRecord};
pub use state::{
    is_crowd_user, team_name, user_teams, BoardRecord, EmulatorConfig, MemberCall,
    ATTACKER_MIRO_USER_ID, ATTACKER_MIRO_USER_NAME, COPY_BOARD_CREDITS, CREATE_BOARD_CREDITS,
    DELETE_BOARD_CREDITS, FAILING_INVITATION_DOMAIN, INVITE_MEMBERS_CREDITS, ITEM_CREDITS,
    MIRO_USER_ID, MIRO_USER_NAME, OVERSIZE_PADDING, PROJECT_ID, REFRESH_TOKEN_LIFETIME,
    SECOND_TEAM_ID, SECOND_TEAM_NAME, TEAM_ID, TEAM_NAME, THIRD_TEAM_ID, THIRD_TEAM_NAME,
};

/// The README's example, compiled and run by `cargo test -p miro-emulator --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

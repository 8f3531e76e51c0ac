//! A Miro emulator that follows `shared/miro-api.md` strictly, so that the
//! client cannot pass tests that real Miro would fail: the authorize page
//! (Allow/Deny, PKCE S256), the token endpoint (codes, expiring tokens with
//! rotation), `POST /v2/boards` with Miro's validation and bodies, token
//! context and revocation, and Miro's error shape everywhere.
//!
//! Serve it alone ([`Emulator::start`]) or nest its [`Emulator::router`]
//! under a path of another server. Tests read what happened through the
//! handle ([`Emulator::boards`], [`Emulator::token_calls`], …) and switch
//! Miro's misbehaviour on and off through it ([`Emulator::inject_token_faults`],
//! [`Emulator::inject_board_faults`], [`Emulator::advance_clock`], …).

mod emulator;

pub use emulator::{
    BoardFault, BoardRecord, Emulator, EmulatorConfig, TokenFault, ATTACKER_MIRO_USER_ID,
    ATTACKER_MIRO_USER_NAME, MIRO_USER_ID, MIRO_USER_NAME, OVERSIZE_PADDING, PROJECT_ID,
    REFRESH_TOKEN_LIFETIME, TEAM_ID, TEAM_NAME,
};

pub mod fault_proxy;

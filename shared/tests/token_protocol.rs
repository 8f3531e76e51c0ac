//! The token protocol, model-checked (docs/token-protocol.md).
//!
//! Actors: three Lambda invocations (two create-board callers and one event
//! consumer) each running `TokenRefresh` — the very state machine
//! `service/tokens.rs` drives — then using the token at Miro as
//! `service/boards.rs` does (a 401: one forced refresh; a second 401: the
//! connection removed); the user (reconnect, disconnect, as
//! `service/authorization.rs` and `service/connections.rs` do them); DynamoDB
//! (one connection item, every conditional write decided by the predicates
//! of `miro_connect::token_protocol`); Miro's token endpoint (every refresh
//! rotates and kills the old pair, a second refresh with an old token is
//! refused, revocation, transient answers, answers lost on the way back).
//! Faults: any invocation (or the user's) may crash at any step; Miro may
//! answer transiently or lose an answer after rotating; DynamoDB may lose a
//! conditional write's answer after it landed (the SDK sends it again).
//! Time is a small counter: leases run out and tokens fall due as it moves.
//!
//! Run it with `cargo test -p miro-connect --test token_protocol -- --nocapture`.

use miro_connect::token_protocol::{
    delete_at_allowed, forget_allowed, lease_allowed, release_allowed, tokens_write_allowed,
    Answer, ItemState, LeaseClauses, Outcome, Seen, Settings, Step, TokenRefresh,
};
use stateright::{Checker, CheckerVisitor, Expectation, HasDiscoveries, Model, Path, Property};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Model time: one unit is at least a lease (30 s) and more than a whole
/// request (20 s), so time moves only while no invocation is running: a
/// live refresher always finishes (or is cut off: a crash) within its lease.
const LEASE: i64 = 1;
/// Tokens are due one unit after they are issued and expire one later, so
/// both "due but still valid" and "expired" are reached.
const ACCESS_LIFETIME: i64 = 2;
const MARGIN: i64 = 1;
/// Reads before giving up (the code: 50, all well within one lease).
const MAX_ROUNDS: u32 = 2;

type Holder = u8;

/// A token pair at Miro: the `generation`-th pair of grant `grant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Pair {
    grant: u8,
    generation: u8,
}

impl Pair {
    fn bit(self) -> u32 {
        debug_assert!(self.grant < 4 && self.generation < 8, "{self:?}");
        1 << (self.grant * 8 + self.generation)
    }
    fn next(self) -> Pair {
        Pair {
            generation: self.generation + 1,
            ..self
        }
    }
}

/// The one connection item: its protocol state, and the tokens it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Stored {
    item: ItemState<Holder>,
    pair: Pair,
    access_expires_at: i64,
}

/// A grant at Miro: its live generation, or revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Grant {
    generation: u8,
    revoked: bool,
}

/// A connection as an invocation read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Snap {
    pair: Pair,
    version: u64,
    access_expires_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// `usable_connection`: the machine and what the shell around it holds.
    Refreshing {
        machine: TokenRefresh,
        read: Option<Snap>,
        renewed: Option<Pair>,
        holder: Option<Holder>,
        /// The last conditional write landed but its answer was lost: the
        /// same call is sent again.
        resend: bool,
        /// This is the forced refresh after Miro's 401.
        forced: bool,
        answer: Option<Answer>,
    },
    /// Creating the board with this token.
    CallingMiro {
        pair: Pair,
        version: u64,
        forced: bool,
    },
    /// Miro refused the refreshed token too: the connection is removed.
    DeletingRefused { version: u64, grant: u8 },
}

/// What an invocation ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ended {
    /// Miro accepted the token (of that grant).
    Usable(u8),
    /// The user is asked to connect.
    ReConsent,
    /// A retryable error (503/429).
    Retryable,
    /// Killed mid-way (the caller sees a 5xx: retryable).
    Crashed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// `POST /boards`: the app may call again whatever the answer.
    Board,
    /// The board-request consumer: a message comes back only after a
    /// retryable error (or a crash).
    Events,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Caller {
    kind: Kind,
    left: u8,
    running: Option<Phase>,
    last: Option<Ended>,
}

impl Caller {
    fn may_start(&self) -> bool {
        self.running.is_none()
            && self.left > 0
            && match self.kind {
                Kind::Board => true,
                Kind::Events => matches!(
                    self.last,
                    None | Some(Ended::Retryable) | Some(Ended::Crashed)
                ),
            }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum User {
    Idle,
    /// Reconnect: Miro issued `grant` for the code; the connection is put next.
    Consented {
        grant: u8,
    },
    /// Reconnect: the replaced connection's grant is revoked (best effort).
    RevokeReplaced {
        pair: Pair,
        access_expires_at: i64,
    },
    /// Disconnect: read the connection (try `tries` of 3).
    DisconnectRead {
        tries: u8,
    },
    /// Disconnect: forget it at `version`.
    Forget {
        version: u64,
        tries: u8,
    },
    /// Disconnect: read the forgotten connection.
    ReadForgotten,
    /// Disconnect: revoke its grant at Miro.
    RevokeForgotten {
        pair: Pair,
        version: u64,
    },
    /// Disconnect: delete it at `version`.
    DeleteForgotten {
        version: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    now: i64,
    item: Option<Stored>,
    grants: Vec<Grant>,
    callers: [Caller; 3],
    user: User,
    reconnects_left: u8,
    disconnects_left: u8,
    faults_left: u8,
    next_holder: Holder,
    /// The grant of the user's last consent.
    latest_grant: u8,
    /// A disconnect's forget landed, and no consent came after it.
    disconnected: bool,
    /// Pairs a refresh (under the lease) has sent to Miro.
    refreshed: u32,
    /// Pairs Miro issued whose answer never reached a live writer: the
    /// documented crash window.
    lost: u32,
    /// Grants whose connection an invocation removed as dead.
    removed: u32,
    /// A token write sent again (its first answer lost) was taken as done.
    resent_write_landed: bool,
    violations: u16,
}

// Violations seen on a transition (kept in the state, checked by `always`).
const V_REMOVED_HONOURED: u16 = 1 << 0;
const V_SECOND_REFRESH: u16 = 1 << 1;
const V_REMOVED_OUTSIDE_WINDOW: u16 = 1 << 2;
const V_REMOVED_TWICE: u16 = 1 << 3;
const V_REMOVED_AFTER_TRANSIENT: u16 = 1 << 4;
const V_REMOVED_OTHER_GRANT: u16 = 1 << 5;
const V_CROSS_GRANT_WRITE: u16 = 1 << 6;
const V_REFUSED_WITHOUT_CAUSE: u16 = 1 << 7;

type LeaseFn = fn(Option<&ItemState<Holder>>, u64, &Holder, i64) -> bool;
type WriteFn = fn(Option<&ItemState<Holder>>, u64, u64, &Holder) -> bool;

/// The system under check, with the parts a mutation may swap.
#[derive(Clone)]
struct TokenModel {
    /// The version of the `n`-th connection (0: the one the run starts with).
    first_version: fn(u8) -> u64,
    lease: LeaseFn,
    tokens_write: WriteFn,
    invocations: [u8; 3],
    reconnects: u8,
    disconnects: u8,
    faults: u8,
    max_time: i64,
    /// Let time pass while invocations run: breaks the timing assumption
    /// (a live refresher finishes within its lease), to show it is needed.
    slow_invocations: bool,
    /// Explore nothing past a state where an always property fails.
    stop_at_violation: bool,
}

/// `domain::first_version()` is random over 52 bits: a version never seen
/// before for this key (a collision has odds of about 2^-52 per reconnect).
/// Modelled as fresh by construction.
fn fresh_version(consent: u8) -> u64 {
    1_000 * (u64::from(consent) + 1)
}

/// The bug that was fixed: every new connection started at version 1.
fn version_restarts_at_one(_consent: u8) -> u64 {
    1
}

fn env_or<const N: usize>(name: &str, default: [u8; N]) -> [u8; N] {
    std::env::var(name)
        .ok()
        .map(|v| {
            let parsed: Vec<u8> = v.split(',').map(|x| x.parse().expect("a number")).collect();
            parsed.try_into().expect("the right count")
        })
        .unwrap_or(default)
}

impl TokenModel {
    fn real() -> Self {
        Self {
            first_version: fresh_version,
            lease: lease_allowed::<Holder>,
            tokens_write: tokens_write_allowed::<Holder>,
            invocations: env_or("TP_INVOCATIONS", [1, 1, 2]),
            reconnects: env_or("TP_RECONNECTS", [1])[0],
            disconnects: env_or("TP_DISCONNECTS", [1])[0],
            faults: env_or("TP_FAULTS", [1])[0],
            max_time: i64::from(env_or("TP_TIME", [1])[0]),
            slow_invocations: false,
            stop_at_violation: false,
        }
    }

    fn settings() -> Settings {
        Settings {
            margin_seconds: MARGIN,
            lease_seconds: LEASE,
            max_rounds: MAX_ROUNDS,
        }
    }
}

impl TokenModel {
    /// The first always property that fails in `state`, if any.
    fn broken(&self, state: &State) -> Option<&'static str> {
        self.properties()
            .into_iter()
            .find(|p| p.expectation == Expectation::Always && !(p.condition)(self, state))
            .map(|p| p.name)
    }
}

fn honours(grants: &[Grant], pair: Pair) -> bool {
    let g = grants[pair.grant as usize];
    !g.revoked && g.generation == pair.generation
}

/// The pair Miro would honour now for `grant` (if not revoked).
fn current(grants: &[Grant], grant: u8) -> Pair {
    Pair {
        grant,
        generation: grants[grant as usize].generation,
    }
}

/// Revoking a grant's tokens, as `revoke_grant` does (revoke the access
/// token, or refresh an expired one first and revoke the new one): the grant
/// dies if the pair is still the live one; otherwise Miro refuses and
/// nothing changes (which the code takes as done).
fn revoke(grants: &mut [Grant], pair: Pair) {
    if honours(grants, pair) {
        grants[pair.grant as usize].revoked = true;
    }
}

impl State {
    fn visible(&self) -> Option<&Stored> {
        self.item.as_ref().filter(|s| !s.item.forgotten)
    }

    fn item_state(&self) -> Option<&ItemState<Holder>> {
        self.item.as_ref().map(|s| &s.item)
    }

    fn busy(&self) -> bool {
        self.user != User::Idle || self.callers.iter().any(|c| c.running.is_some())
    }

    /// An invocation removes the connection as dead: account for why.
    fn remove_as_dead(&mut self, read_grant: Option<u8>, after_transient: bool) {
        let Some(stored) = self.item.take() else {
            return;
        };
        let pair = stored.pair;
        if honours(&self.grants, pair) {
            self.violations |= V_REMOVED_HONOURED;
        } else if self.grants[pair.grant as usize].revoked
            || self.lost & current(&self.grants, pair.grant).bit() == 0
        {
            self.violations |= V_REMOVED_OUTSIDE_WINDOW;
        }
        if self.removed & (1 << pair.grant) != 0 {
            self.violations |= V_REMOVED_TWICE;
        }
        self.removed |= 1 << pair.grant;
        if read_grant.is_some_and(|g| g != pair.grant) {
            self.violations |= V_REMOVED_OTHER_GRANT;
        }
        if after_transient {
            self.violations |= V_REMOVED_AFTER_TRANSIENT;
        }
    }

    /// A live invocation holds this pair (between Miro's answer and the
    /// write, or the revocation of what a superseded refresh got).
    fn in_flight(&self, pair: Pair) -> bool {
        self.callers.iter().any(
            |c| matches!(c.running, Some(Phase::Refreshing { renewed: Some(p), .. }) if p == pair),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// Time moves on (only while nobody is running).
    Tick,
    /// Invocation `i` starts.
    Start(usize),
    /// Invocation `i` does its next step, and everything answers normally.
    Step(usize),
    /// Invocation `i` is killed before its next step.
    Crash(usize),
    /// The token endpoint answers `i`'s refresh with a 5xx (nothing rotated).
    MiroTransient(usize),
    /// The token endpoint rotates for `i` but the answer never arrives
    /// (a timeout after Miro acted): `i` sees a transient error.
    MiroAnswerLost(usize),
    /// `i`'s conditional write lands but DynamoDB's answer is lost: the SDK
    /// sends the same call again.
    StoreAnswerLost(usize),
    Reconnect,
    Disconnect,
    UserStep,
    UserCrash,
    /// Miro is unreachable for the user's revocation.
    UserMiroDown,
}

fn start_refresh(forced_version: Option<u64>) -> Phase {
    Phase::Refreshing {
        machine: TokenRefresh::new(TokenModel::settings(), forced_version),
        read: None,
        renewed: None,
        holder: None,
        resend: false,
        forced: forced_version.is_some(),
        answer: None,
    }
}

impl Model for TokenModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let kinds = [Kind::Board, Kind::Board, Kind::Events];
        let callers = std::array::from_fn(|i| Caller {
            kind: kinds[i],
            left: self.invocations[i],
            running: None,
            last: None,
        });
        vec![State {
            now: 0,
            // Connected at some earlier time: due now, still valid until 1.
            item: Some(Stored {
                item: ItemState::connected((self.first_version)(0)),
                pair: Pair {
                    grant: 0,
                    generation: 0,
                },
                access_expires_at: 1,
            }),
            grants: vec![Grant {
                generation: 0,
                revoked: false,
            }],
            callers,
            user: User::Idle,
            reconnects_left: self.reconnects,
            disconnects_left: self.disconnects,
            faults_left: self.faults,
            next_holder: 0,
            latest_grant: 0,
            disconnected: false,
            refreshed: 0,
            lost: 0,
            removed: 0,
            resent_write_landed: false,
            violations: 0,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if self.stop_at_violation && self.broken(state).is_some() {
            // A counterexample ends where a property first fails.
            return;
        }
        if (self.slow_invocations || !state.busy()) && state.now < self.max_time {
            actions.push(Action::Tick);
        }
        let fault = state.faults_left > 0;
        for (i, caller) in state.callers.iter().enumerate() {
            match caller.running {
                None => {
                    if caller.may_start() {
                        actions.push(Action::Start(i));
                    }
                }
                Some(phase) => {
                    actions.push(Action::Step(i));
                    if !fault {
                        continue;
                    }
                    actions.push(Action::Crash(i));
                    if let Phase::Refreshing {
                        machine,
                        resend,
                        read,
                        holder,
                        ..
                    } = phase
                    {
                        match machine.step() {
                            Step::Refresh { .. } => {
                                actions.push(Action::MiroTransient(i));
                                // Only a live token can be rotated.
                                if read.is_some_and(|r| honours(&state.grants, r.pair)) {
                                    actions.push(Action::MiroAnswerLost(i));
                                }
                            }
                            // Only a write that lands can lose its answer.
                            Step::TryLease { version, now, .. }
                                if !resend
                                    && (self.lease)(
                                        state.item_state(),
                                        version,
                                        &state.next_holder,
                                        now,
                                    ) =>
                            {
                                actions.push(Action::StoreAnswerLost(i));
                            }
                            Step::WriteTokens {
                                expected,
                                new_version,
                            } if !resend
                                && holder.is_some_and(|h| {
                                    (self.tokens_write)(
                                        state.item_state(),
                                        expected,
                                        new_version,
                                        &h,
                                    )
                                }) =>
                            {
                                actions.push(Action::StoreAnswerLost(i));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        match state.user {
            User::Idle => {
                if state.reconnects_left > 0 {
                    actions.push(Action::Reconnect);
                }
                if state.disconnects_left > 0 {
                    actions.push(Action::Disconnect);
                }
            }
            user => {
                actions.push(Action::UserStep);
                if fault {
                    actions.push(Action::UserCrash);
                    if matches!(
                        user,
                        User::RevokeReplaced { .. } | User::RevokeForgotten { .. }
                    ) {
                        actions.push(Action::UserMiroDown);
                    }
                }
            }
        }
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut s = state.clone();
        match action {
            Action::Tick => s.now += 1,
            Action::Start(i) => {
                let c = &mut s.callers[i];
                c.left -= 1;
                c.running = Some(start_refresh(None));
            }
            Action::Step(i) => self.step(&mut s, i, None),
            Action::Crash(i) => {
                s.faults_left -= 1;
                if let Some(Phase::Refreshing {
                    renewed: Some(pair),
                    ..
                }) = s.callers[i].running
                {
                    // The only copy of a live pair dies with the process.
                    if s.item.as_ref().is_none_or(|st| st.pair != pair) {
                        s.lost |= pair.bit();
                    }
                }
                let c = &mut s.callers[i];
                c.running = None;
                c.last = Some(Ended::Crashed);
            }
            Action::MiroTransient(i) | Action::MiroAnswerLost(i) | Action::StoreAnswerLost(i) => {
                s.faults_left -= 1;
                self.step(&mut s, i, Some(action));
            }
            Action::Reconnect => {
                s.reconnects_left -= 1;
                // The code exchange: Miro issues a new grant.
                s.grants.push(Grant {
                    generation: 0,
                    revoked: false,
                });
                s.user = User::Consented {
                    grant: (s.grants.len() - 1) as u8,
                };
            }
            Action::Disconnect => {
                s.disconnects_left -= 1;
                s.user = User::DisconnectRead { tries: 0 };
            }
            Action::UserStep => self.user_step(&mut s, false),
            Action::UserCrash => {
                s.faults_left -= 1;
                s.user = User::Idle;
            }
            Action::UserMiroDown => {
                s.faults_left -= 1;
                self.user_step(&mut s, true);
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("honoured_refresh_token_never_lost", |_, s: &State| {
                s.violations & V_REMOVED_HONOURED == 0
                    && s.visible().is_none_or(|st| {
                        let live = current(&s.grants, st.pair.grant);
                        honours(&s.grants, st.pair)
                            || (!s.grants[st.pair.grant as usize].revoked
                                && (s.lost & live.bit() != 0 || s.in_flight(live)))
                    })
            }),
            Property::always("crash_window_ends_in_one_reconsent", |_, s: &State| {
                s.violations & (V_REMOVED_OUTSIDE_WINDOW | V_REMOVED_TWICE) == 0
            }),
            Property::always("one_refresh_per_refresh_token", |_, s: &State| {
                s.violations & V_SECOND_REFRESH == 0
            }),
            Property::always("transient_answer_never_removes", |_, s: &State| {
                s.violations & V_REMOVED_AFTER_TRANSIENT == 0
            }),
            Property::always("reconnect_never_undone", |_, s: &State| {
                s.violations & V_REMOVED_OTHER_GRANT == 0
                    && s.item
                        .as_ref()
                        .is_none_or(|st| st.pair.grant == s.latest_grant)
            }),
            Property::always("disconnect_never_undone", |_, s: &State| {
                !s.disconnected || s.item.as_ref().is_none_or(|st| st.item.forgotten)
            }),
            Property::always("tokens_stay_with_their_grant", |_, s: &State| {
                s.violations & V_CROSS_GRANT_WRITE == 0
            }),
            Property::always("waits_only_behind_another_refresh", |_, s: &State| {
                s.violations & V_REFUSED_WITHOUT_CAUSE == 0
            }),
            Property::eventually("every_caller_answered", |m, s: &State| {
                // Monotone: once no caller runs or may start, none ever will.
                // (A mutant's run stops where an always property fails.)
                s.callers
                    .iter()
                    .all(|c| !c.may_start() && c.running.is_none())
                    || (m.stop_at_violation && m.broken(s).is_some())
            }),
            Property::sometimes("refresh_succeeds", |_, s: &State| {
                s.item.as_ref().is_some_and(|st| st.pair.generation > 0)
                    && s.callers
                        .iter()
                        .any(|c| matches!(c.last, Some(Ended::Usable(_))))
            }),
            Property::sometimes("reconnect_during_refresh", |_, s: &State| {
                s.callers.iter().any(|c| {
                    matches!(c.running, Some(Phase::Refreshing { renewed: Some(p), .. })
                        if s.item.as_ref().is_some_and(|st| st.pair.grant != p.grant))
                })
            }),
            Property::sometimes("disconnect_during_refresh", |_, s: &State| {
                s.disconnected
                    && s.callers.iter().any(|c| {
                        matches!(
                            c.running,
                            Some(Phase::Refreshing {
                                renewed: Some(_),
                                ..
                            })
                        )
                    })
            }),
            Property::sometimes("stale_token_meets_a_401", |_, s: &State| {
                s.callers.iter().any(|c| {
                    matches!(c.running, Some(Phase::CallingMiro { pair, .. })
                        if !honours(&s.grants, pair))
                })
            }),
            Property::sometimes("forced_refresh_then_usable", |_, s: &State| {
                s.callers.iter().any(|c| {
                    matches!(c.running, Some(Phase::CallingMiro { pair, forced: true, .. })
                        if honours(&s.grants, pair))
                })
            }),
            Property::sometimes("crash_window_then_one_reconsent", |_, s: &State| {
                s.lost != 0
                    && s.removed != 0
                    && s.latest_grant > 0
                    && s.callers.iter().any(|c| c.last == Some(Ended::ReConsent))
                    && s.callers
                        .iter()
                        .any(|c| c.last == Some(Ended::Usable(s.latest_grant)))
            }),
            Property::sometimes("resent_write_counts_as_landed", |_, s: &State| {
                s.resent_write_landed
                    && s.callers
                        .iter()
                        .any(|c| matches!(c.last, Some(Ended::Usable(_))))
            }),
        ]
    }
}

impl TokenModel {
    /// Invocation `i`'s next step; `fault` says how it goes wrong, if at all.
    fn step(&self, s: &mut State, i: usize, fault: Option<Action>) {
        let Some(phase) = s.callers[i].running else {
            return;
        };
        let next = match phase {
            Phase::Refreshing { .. } => self.refresh_step(s, phase, fault),
            Phase::CallingMiro {
                pair,
                version,
                forced,
            } => {
                if honours(&s.grants, pair) {
                    Err(Ended::Usable(pair.grant))
                } else if !forced {
                    Ok(start_refresh(Some(version)))
                } else {
                    Ok(Phase::DeletingRefused {
                        version,
                        grant: pair.grant,
                    })
                }
            }
            Phase::DeletingRefused { version, grant } => {
                if delete_at_allowed(s.item_state(), version) {
                    s.remove_as_dead(Some(grant), false);
                }
                Err(Ended::ReConsent)
            }
        };
        let c = &mut s.callers[i];
        match next {
            Ok(phase) => c.running = Some(phase),
            Err(ended) => {
                c.running = None;
                c.last = Some(ended);
            }
        }
    }

    /// One step of `usable_connection`: the machine's step done against the
    /// modelled store and Miro, its answer fed back to the machine.
    fn refresh_step(
        &self,
        s: &mut State,
        phase: Phase,
        fault: Option<Action>,
    ) -> Result<Phase, Ended> {
        let Phase::Refreshing {
            mut machine,
            mut read,
            mut renewed,
            mut holder,
            mut resend,
            forced,
            mut answer,
        } = phase
        else {
            return Ok(phase);
        };
        let lost_answer = fault.is_some_and(|f| matches!(f, Action::StoreAnswerLost(_)));
        match machine.step() {
            Step::Read => {
                read = s.visible().map(|st| Snap {
                    pair: st.pair,
                    version: st.item.version,
                    access_expires_at: st.access_expires_at,
                });
                let seen = read.map(|r| Seen {
                    version: r.version,
                    access_expires_at: Some(r.access_expires_at),
                    has_refresh_token: true,
                    retry_at: None,
                });
                machine.read(seen, s.now);
            }
            Step::DeleteExhausted { version } => {
                if delete_at_allowed(s.item_state(), version) {
                    s.remove_as_dead(read.map(|r| r.pair.grant), false);
                }
                machine.exhausted_deleted();
            }
            Step::TryLease {
                version,
                until,
                now,
            } => {
                let me = match holder {
                    Some(h) if resend => h,
                    _ => {
                        let h = s.next_holder;
                        s.next_holder += 1;
                        h
                    }
                };
                holder = Some(me);
                let taken = (self.lease)(s.item_state(), version, &me, now);
                if taken {
                    let st = s.item.as_mut().expect("a lease needs an item");
                    st.item = st.item.clone().leased(me, until);
                } else if s.item_state().is_some_and(|item| {
                    // Refused although nothing stood in the way: the item
                    // is at the version read and no other holder's lease
                    // is running (the spec, written apart from the predicate).
                    item.version == version
                        && (item.lease_until.is_none_or(|t| t <= now)
                            || item.lease_holder == Some(me))
                }) {
                    s.violations |= V_REFUSED_WITHOUT_CAUSE;
                }
                if taken && lost_answer {
                    resend = true;
                } else {
                    resend = false;
                    machine.leased(taken);
                }
            }
            Step::Refresh { .. } => {
                let pair = read.expect("a refresh follows a read").pair;
                if s.refreshed & pair.bit() != 0 && s.lost & pair.next().bit() == 0 {
                    // Sent before, and that answer reached a live writer.
                    s.violations |= V_SECOND_REFRESH;
                }
                let outcome = match fault {
                    Some(Action::MiroTransient(_)) => Answer::Transient,
                    Some(Action::MiroAnswerLost(_)) => {
                        s.refreshed |= pair.bit();
                        s.grants[pair.grant as usize].generation += 1;
                        s.lost |= pair.next().bit();
                        Answer::Transient
                    }
                    _ if honours(&s.grants, pair) => {
                        s.refreshed |= pair.bit();
                        s.grants[pair.grant as usize].generation += 1;
                        renewed = Some(pair.next());
                        Answer::Renewed
                    }
                    _ => {
                        s.refreshed |= pair.bit();
                        Answer::Dead
                    }
                };
                answer = Some(outcome);
                machine.refreshed(outcome);
            }
            Step::WriteTokens {
                expected,
                new_version,
            } => {
                let me = holder.expect("a write follows a lease");
                let pair = renewed.expect("a write follows new tokens");
                let landed = (self.tokens_write)(s.item_state(), expected, new_version, &me);
                if landed && resend {
                    s.resent_write_landed = true;
                }
                if landed {
                    let st = s.item.as_mut().expect("a write needs an item");
                    if st.pair.grant != pair.grant {
                        s.violations |= V_CROSS_GRANT_WRITE;
                    }
                    *st = Stored {
                        item: st.item.clone().renewed(new_version, me),
                        pair,
                        access_expires_at: s.now + ACCESS_LIFETIME,
                    };
                }
                if landed && lost_answer {
                    resend = true;
                } else {
                    resend = false;
                    machine.tokens_written(landed);
                    if landed {
                        read = Some(Snap {
                            pair,
                            version: new_version,
                            access_expires_at: s.now + ACCESS_LIFETIME,
                        });
                        renewed = None;
                    }
                }
            }
            Step::RevokeRenewed => {
                if let Some(pair) = renewed.take() {
                    revoke(&mut s.grants, pair);
                }
                machine.renewed_revoked();
            }
            Step::DeleteDead { version } => {
                let deleted = delete_at_allowed(s.item_state(), version);
                if deleted {
                    s.remove_as_dead(
                        read.map(|r| r.pair.grant),
                        answer == Some(Answer::Transient),
                    );
                }
                machine.dead_deleted(deleted);
            }
            Step::ReleaseLease => {
                let me = holder.expect("a release follows a lease");
                if release_allowed(s.item_state(), &me) {
                    let st = s.item.as_mut().expect("checked");
                    st.item = st.item.clone().released();
                }
                machine.lease_released();
            }
            Step::Wait => {
                machine.waited();
            }
            Step::Done(_) => {}
        }
        // Sleeping touches nothing shared: done at once (the time it takes
        // is far below a lease, so the model clock does not move).
        if machine.step() == Step::Wait {
            machine.waited();
        }
        Ok(match machine.step() {
            Step::Done(outcome) => {
                return match outcome {
                    Outcome::UseRead | Outcome::UseRenewed => {
                        let r = read.expect("a token to use was read or written");
                        Ok(Phase::CallingMiro {
                            pair: r.pair,
                            version: r.version,
                            forced,
                        })
                    }
                    Outcome::NotConnected => Err(Ended::ReConsent),
                    Outcome::MiroTransient | Outcome::GaveUp | Outcome::CoolingDown => {
                        Err(Ended::Retryable)
                    }
                }
            }
            _ => Phase::Refreshing {
                machine,
                read,
                renewed,
                holder,
                resend,
                forced,
                answer,
            },
        })
    }

    /// The user's next step; `miro_down`: the revocation does not get through.
    fn user_step(&self, s: &mut State, miro_down: bool) {
        s.user = match s.user {
            User::Idle => User::Idle,
            User::Consented { grant } => {
                // `put_connection`: unconditional, a new first version.
                let replaced = s.item.replace(Stored {
                    item: ItemState::connected((self.first_version)(grant)),
                    pair: Pair {
                        grant,
                        generation: 0,
                    },
                    access_expires_at: s.now + ACCESS_LIFETIME,
                });
                s.latest_grant = grant;
                s.disconnected = false;
                match replaced {
                    Some(old) => User::RevokeReplaced {
                        pair: old.pair,
                        access_expires_at: old.access_expires_at,
                    },
                    None => User::Idle,
                }
            }
            User::RevokeReplaced { pair, .. } => {
                if !miro_down {
                    revoke(&mut s.grants, pair);
                }
                User::Idle
            }
            User::DisconnectRead { tries } => match s.visible() {
                Some(st) => User::Forget {
                    version: st.item.version,
                    tries,
                },
                None => User::ReadForgotten,
            },
            User::Forget { version, tries } => {
                if forget_allowed(s.item_state(), version) {
                    let st = s.item.as_mut().expect("checked");
                    st.item = st.item.clone().forgotten();
                    s.disconnected = true;
                    User::ReadForgotten
                } else if tries + 1 < 3 {
                    User::DisconnectRead { tries: tries + 1 }
                } else {
                    // Still connected: a retryable error, never a 204.
                    User::Idle
                }
            }
            User::ReadForgotten => match &s.item {
                Some(st) if st.item.forgotten => User::RevokeForgotten {
                    pair: st.pair,
                    version: st.item.version,
                },
                _ => User::Idle,
            },
            User::RevokeForgotten { pair, version } => {
                if miro_down {
                    // Kept, forgotten, for a later disconnect or reconnect.
                    User::Idle
                } else {
                    revoke(&mut s.grants, pair);
                    User::DeleteForgotten { version }
                }
            }
            User::DeleteForgotten { version } => {
                if delete_at_allowed(s.item_state(), version) {
                    s.item = None;
                }
                User::Idle
            }
        };
    }
}

/// The two create-board callers are interchangeable: a state and the same
/// state with the two swapped are one (holder ids are not tied to callers).
fn representative(state: &State) -> State {
    use std::hash::{Hash, Hasher};
    let key = |c: &Caller| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.hash(&mut h);
        h.finish()
    };
    let mut r = state.clone();
    if key(&r.callers[1]) < key(&r.callers[0]) {
        r.callers.swap(0, 1);
    }
    r
}

/// The path to the first state where each always property failed.
#[derive(Clone, Default)]
struct FirstFailures(Arc<Mutex<HashMap<&'static str, Path<State, Action>>>>);

impl CheckerVisitor<TokenModel> for FirstFailures {
    fn visit(&self, model: &TokenModel, path: Path<State, Action>) {
        let state = path.last_state();
        let mut first = self.0.lock().expect("not poisoned");
        for p in model.properties() {
            if p.expectation == Expectation::Always
                && !first.contains_key(p.name)
                && !(p.condition)(model, state)
            {
                first.insert(p.name, path.clone());
            }
        }
    }
}

/// What a run of the checker found.
struct Report {
    states: usize,
    unique: usize,
    depth: usize,
    took: Duration,
    properties: Vec<Property<TokenModel>>,
    discoveries: HashMap<&'static str, Path<State, Action>>,
}

impl Report {
    /// The always/eventually properties that found a counterexample.
    fn failures(&self) -> Vec<&'static str> {
        let mut failed: Vec<_> = self
            .properties
            .iter()
            .filter(|p| p.expectation != Expectation::Sometimes)
            .filter(|p| self.discoveries.contains_key(p.name))
            .map(|p| p.name)
            .collect();
        failed.sort();
        failed
    }
}

/// Runs the checker over `model`; a mutant stops at its first failure
/// (unless `TP_ALL` is set, to list every property it breaks, with
/// counterexamples that need not be the shortest). The real
/// protocol is explored whole, depth first, with the two create-board
/// callers taken as interchangeable.
fn check(mut model: TokenModel, mutant: bool) -> Report {
    let started = Instant::now();
    let every_failure = std::env::var("TP_ALL").is_ok();
    model.stop_at_violation = mutant && !every_failure;
    let properties = model.properties();
    // One thread for a mutant: breadth first in order, so the counterexample
    // printed is a shortest one (sticky violation flags make any later state
    // a counterexample too).
    let shortest = mutant && !every_failure;
    let mut builder = model.checker().threads(if shortest { 1 } else { 2 });
    if shortest {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    fn report(
        checker: impl Checker<TokenModel>,
        started: Instant,
        properties: Vec<Property<TokenModel>>,
    ) -> Report {
        Report {
            states: checker.state_count(),
            unique: checker.unique_state_count(),
            depth: checker.max_depth(),
            took: started.elapsed(),
            properties,
            discoveries: checker.discoveries(),
        }
    }
    if shortest {
        // Breadth first, one thread, and each property's first failing
        // state kept: a shortest counterexample. (The checker's own record
        // keeps the last failing state it met; the visitor rebuilds the
        // path of every state, affordable only for a short run.)
        let first: FirstFailures = Default::default();
        let mut found = report(
            builder.visitor(first.clone()).spawn_bfs().join(),
            started,
            properties,
        );
        found
            .discoveries
            .extend(first.0.lock().expect("not poisoned").drain());
        found
    } else if mutant {
        report(builder.spawn_bfs().join(), started, properties)
    } else {
        report(
            builder.symmetry_fn(representative).spawn_dfs().join(),
            started,
            properties,
        )
    }
}

/// What the connection item holds, in a few words.
fn item_summary(state: &State) -> String {
    match &state.item {
        None => format!("t={}: no item", state.now),
        Some(st) => format!(
            "t={}: item v{} holds grant {} pair {}{}{}{}",
            state.now,
            st.item.version,
            st.pair.grant,
            st.pair.generation,
            st.item
                .lease_holder
                .map(|h| format!(
                    ", leased by holder {h} until t={}",
                    st.item.lease_until.unwrap_or(0)
                ))
                .unwrap_or_default(),
            st.item
                .written_by
                .map(|h| format!(", written by holder {h}"))
                .unwrap_or_default(),
            if st.item.forgotten { ", forgotten" } else { "" }
        ),
    }
}

/// An action, with what the actor was about to do.
fn describe(state: &State, action: Action) -> String {
    let caller = |i: usize| -> String {
        let name = match (state.callers[i].kind, i) {
            (Kind::Events, _) => "events".to_string(),
            (Kind::Board, i) => format!("board{}", i + 1),
        };
        let doing = match state.callers[i].running {
            None => "start".to_string(),
            Some(Phase::Refreshing { machine, .. }) => format!("{:?}", machine.step()),
            Some(Phase::CallingMiro { pair, .. }) => {
                format!(
                    "create a board with grant {} pair {}",
                    pair.grant, pair.generation
                )
            }
            Some(Phase::DeletingRefused { version, .. }) => {
                format!("delete at v{version} after a second 401")
            }
        };
        format!("{name}: {doing}")
    };
    match action {
        Action::Tick => "time passes (leases run out, tokens fall due)".into(),
        Action::Start(i) | Action::Step(i) => caller(i),
        Action::Crash(i) => format!("{} -- CRASHES instead", caller(i)),
        Action::MiroTransient(i) => format!("{} -- Miro answers 5xx", caller(i)),
        Action::MiroAnswerLost(i) => {
            format!("{} -- Miro rotates, the answer is lost", caller(i))
        }
        Action::StoreAnswerLost(i) => {
            format!("{} -- lands, DynamoDB's answer is lost", caller(i))
        }
        Action::Reconnect => "user: reconnect (Miro issues a new grant)".into(),
        Action::Disconnect => "user: disconnect".into(),
        Action::UserStep => format!("user: {:?}", state.user),
        Action::UserCrash => format!("user: {:?} -- CRASHES instead", state.user),
        Action::UserMiroDown => format!("user: {:?} -- Miro unreachable", state.user),
    }
}

/// Prints past the test harness's capture, in one write (tests run side by
/// side), so that the test command shows what the checker explored and found.
fn show(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// A counterexample: each state of the item, and the step taken from it.
fn print_path(out: &mut String, report: &Report, name: &'static str) {
    use std::fmt::Write;
    let Some(path) = report.discoveries.get(name).cloned() else {
        return;
    };
    let _ = writeln!(out, "  counterexample for {name}:");
    let model = TokenModel::real();
    let failing = |state: &State| {
        model
            .properties()
            .into_iter()
            .any(|p| p.name == name && !(p.condition)(&model, state))
    };
    let mut steps = path.into_vec();
    // Up to the first state where it fails (the flags it keeps are sticky).
    if let Some(first) = steps.iter().position(|(state, _)| failing(state)) {
        steps.truncate(first + 1);
        steps[first].1 = None;
    }
    for (state, action) in steps {
        let _ = writeln!(out, "    {}", item_summary(&state));
        if let Some(action) = action {
            let _ = writeln!(out, "      -> {}", describe(&state, action));
        }
    }
}

#[test]
fn the_protocol_keeps_its_properties() {
    use std::fmt::Write;
    let report = check(TokenModel::real(), false);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "token protocol: {} states explored ({} unique, depth {}) in {:.1?}",
        report.states, report.unique, report.depth, report.took
    );
    let mut wrong = vec![];
    for p in &report.properties {
        let found = report.discoveries.contains_key(p.name);
        let verdict = match (&p.expectation, found) {
            (Expectation::Sometimes, true) => "reached",
            (Expectation::Sometimes, false) => "NEVER REACHED",
            (_, false) => "holds",
            (_, true) => "FAILS",
        };
        if found != (p.expectation == Expectation::Sometimes) {
            wrong.push(p.name);
        }
        let _ = writeln!(
            out,
            "  {:<10} {:<36} {verdict}",
            format!("{:?}", p.expectation),
            p.name
        );
    }
    for name in report.failures() {
        print_path(&mut out, &report, name);
    }
    show(&out);
    assert!(wrong.is_empty(), "properties not as expected: {wrong:?}");
}

/// Runs a mutant and asserts that some property fails; prints the first
/// counterexample (or all of them).
fn assert_caught(what: &str, model: TokenModel, show_all: bool) {
    use std::fmt::Write;
    let report = check(model, true);
    let failed = report.failures();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mutant, {what}: {} states explored in {:.1?}; fails {failed:?}",
        report.unique, report.took
    );
    for name in failed.iter().take(if show_all { failed.len() } else { 1 }) {
        print_path(&mut out, &report, name);
    }
    show(&out);
    assert!(!failed.is_empty(), "mutant not caught: {what}");
}

#[test]
fn a_reconnect_whose_version_restarts_at_one_is_caught() {
    let model = TokenModel {
        first_version: version_restarts_at_one,
        ..TokenModel::real()
    };
    assert_caught("a new connection's version restarts at 1", model, true);
}

/// Each clause of the lease condition flipped in turn.
#[test]
fn every_flipped_lease_clause_is_caught() {
    let mutants: [(&str, LeaseFn); 4] = [
        ("lease clause at_version flipped", |item, v, h, now| {
            LeaseClauses::of(item, v, h, now).is_some_and(|mut c| {
                c.at_version = !c.at_version;
                c.allow()
            })
        }),
        ("lease clause no_lease flipped", |item, v, h, now| {
            LeaseClauses::of(item, v, h, now).is_some_and(|mut c| {
                c.no_lease = !c.no_lease;
                c.allow()
            })
        }),
        ("lease clause lease_ran_out flipped", |item, v, h, now| {
            LeaseClauses::of(item, v, h, now).is_some_and(|mut c| {
                c.lease_ran_out = !c.lease_ran_out;
                c.allow()
            })
        }),
        ("lease clause held_by_caller flipped", |item, v, h, now| {
            LeaseClauses::of(item, v, h, now).is_some_and(|mut c| {
                c.held_by_caller = !c.held_by_caller;
                c.allow()
            })
        }),
    ];
    for (what, lease) in mutants {
        let model = TokenModel {
            lease,
            ..TokenModel::real()
        };
        assert_caught(what, model, false);
    }
}

/// The token write without its second half (a write that already landed,
/// sent again), as the memory store had it before it used the predicate.
#[test]
fn a_token_write_without_its_landed_branch_is_caught() {
    let model = TokenModel {
        tokens_write: |item, expected, _, _| item.is_some_and(|i| i.version == expected),
        ..TokenModel::real()
    };
    assert_caught("the token write without its landed branch", model, false);
}

/// Without the timing assumption (time may pass while an invocation runs,
/// so a live refresher can outlive its lease), the lease no longer makes
/// refreshes exclusive: this is why `LEASE_SECONDS` must exceed the longest
/// a refresher can take from its read to its write.
#[test]
fn a_refresher_outliving_its_lease_is_caught() {
    let model = TokenModel {
        slow_invocations: true,
        ..TokenModel::real()
    };
    assert_caught("time passes while a refresher runs", model, false);
}

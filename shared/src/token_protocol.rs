//! The token protocol, pure: every decision a refresh makes and every
//! condition its writes are made under, with no I/O, no clock and no async.
//!
//! [`crate::service::tokens`] drives [`TokenRefresh`] (it does the reads,
//! writes and calls each [`Step`] asks for and reports what came back); the
//! store adapters decide their conditional writes with the predicates below
//! ([`lease_allowed`], [`tokens_write_allowed`], [`forget_allowed`],
//! [`delete_at_allowed`], [`release_allowed`]) over an [`ItemState`], and
//! change the item as the effects on [`ItemState`] say. The model check in
//! `shared/tests/token_protocol.rs` runs the same machine and the same
//! predicates against a model of DynamoDB and Miro's token endpoint;
//! `docs/token-protocol.md` walks through both.

/// How long a refresher holds the lease: longer than a whole request may
/// run (`REQUEST_TIMEOUT_MS`, 20 s by default) and so than the token
/// endpoint's timeout, so a live refresher finishes (or is cut off) before
/// its lease can be taken over.
pub const LEASE_SECONDS: i64 = 30;

/// Reads of the connection before a caller gives up waiting for another
/// refresher (each round after a refused lease sleeps about 100 ms).
pub const WAIT_ROUNDS: u32 = 50;

/// The few numbers a refresh decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Refresh this long before the access token expires.
    pub margin_seconds: i64,
    pub lease_seconds: i64,
    /// Reads before giving up (see [`WAIT_ROUNDS`]).
    pub max_rounds: u32,
}

/// What a refresh needs to know of the connection it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seen {
    pub version: u64,
    /// `None`: a token that does not expire.
    pub access_expires_at: Option<i64>,
    pub has_refresh_token: bool,
    /// No refresh before this: the last one failed transiently (a cooldown
    /// every caller sees, so that a sick token endpoint is not hammered).
    pub retry_at: Option<i64>,
}

/// Due for a refresh: the access token expires within the margin.
pub fn refresh_due(access_expires_at: Option<i64>, now: i64, margin_seconds: i64) -> bool {
    access_expires_at.is_some_and(|t| now >= t - margin_seconds)
}

/// The access token has not expired yet (whether or not a refresh is due).
pub fn still_valid(access_expires_at: Option<i64>, now: i64) -> bool {
    access_expires_at.is_some_and(|t| now < t)
}

/// Miro's answer to a refresh, as far as the protocol cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    /// New tokens (and the old pair is dead at Miro from now on).
    Renewed,
    /// A 400 or 401 with a JSON error body: the grant is dead.
    Dead,
    /// Anything else (429, 5xx, a redirect, a non-JSON body, a timeout): no
    /// verdict on the grant.
    Transient,
}

/// What the caller of a refresh gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The connection read last is good to use.
    UseRead,
    /// The tokens just written are good to use.
    UseRenewed,
    /// Not connected (or no longer): the user is asked to connect.
    NotConnected,
    /// The token endpoint gave no verdict: retryable, tokens kept.
    MiroTransient,
    /// Another refresher did not finish in time: retryable.
    GaveUp,
    /// The last refresh failed transiently moments ago and the token is no
    /// good without one: retryable once the cooldown ends.
    CoolingDown,
}

/// The next thing to do; each is answered by the [`TokenRefresh`] method
/// named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Read the connection, consistently, and the clock: [`TokenRefresh::read`].
    Read,
    /// Nothing to refresh with: delete the connection if still at `version`
    /// ([`delete_at_allowed`]), then [`TokenRefresh::exhausted_deleted`].
    DeleteExhausted {
        version: u64,
    },
    /// Take the lease on `version` until `until`, judged at `now`
    /// ([`lease_allowed`]): [`TokenRefresh::leased`].
    TryLease {
        version: u64,
        until: i64,
        now: i64,
    },
    /// Send the refresh token read at `version` to Miro:
    /// [`TokenRefresh::refreshed`].
    Refresh {
        version: u64,
    },
    /// Write the new tokens as `new_version` over `expected`, dropping the
    /// lease ([`tokens_write_allowed`]): [`TokenRefresh::tokens_written`].
    WriteTokens {
        expected: u64,
        new_version: u64,
    },
    /// The item moved on (a reconnect or a disconnect): revoke the tokens
    /// just obtained, nobody keeps them; then [`TokenRefresh::renewed_revoked`].
    RevokeRenewed,
    /// The grant is dead: delete the connection if still at `version`
    /// ([`delete_at_allowed`]): [`TokenRefresh::dead_deleted`].
    DeleteDead {
        version: u64,
    },
    /// Give the lease back ([`release_allowed`]): [`TokenRefresh::lease_released`].
    ReleaseLease,
    /// Sleep a little: [`TokenRefresh::waited`].
    Wait,
    Done(Outcome),
}

/// One caller's refresh of one connection, as a state machine: at most one
/// refresh per connection at a time across every Lambda (the lease), new
/// tokens written before they are used, a dead grant removed only at the
/// version it was read at, a transient answer never taken for a verdict, and
/// a bounded number of reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenRefresh {
    settings: Settings,
    /// Miro refused the access token of this version: refresh it whatever
    /// its expiry says (and never hand it out again).
    stale_version: Option<u64>,
    rounds: u32,
    now: i64,
    seen: Option<Seen>,
    step: Step,
}

impl TokenRefresh {
    /// A refresh that starts with a [`Step::Read`].
    pub fn new(settings: Settings, stale_version: Option<u64>) -> Self {
        Self {
            settings,
            stale_version,
            rounds: 0,
            now: 0,
            seen: None,
            step: Step::Read,
        }
    }

    /// What is to be done now.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The connection as last read (if any).
    pub fn seen(&self) -> Option<Seen> {
        self.seen
    }

    fn to(&mut self, step: Step) -> Step {
        self.step = step;
        step
    }

    fn check_step(&self, ok: bool, answer: &str) {
        debug_assert!(ok, "{answer} answered while the step was {:?}", self.step);
    }

    /// Another round, unless all were used: then give up (retryable).
    fn next_round(&mut self) -> Step {
        if self.rounds >= self.settings.max_rounds {
            self.to(Step::Done(Outcome::GaveUp))
        } else {
            self.to(Step::Read)
        }
    }

    /// The connection as read at `now` (`None`: missing, lapsed, forgotten
    /// or unreadable).
    pub fn read(&mut self, seen: Option<Seen>, now: i64) -> Step {
        self.check_step(self.step == Step::Read, "read");
        self.rounds += 1;
        self.now = now;
        self.seen = seen;
        let Some(seen) = seen else {
            return self.to(Step::Done(Outcome::NotConnected));
        };
        let due = match self.stale_version {
            Some(stale) => seen.version == stale,
            None => refresh_due(seen.access_expires_at, now, self.settings.margin_seconds),
        };
        if !due {
            return self.to(Step::Done(Outcome::UseRead));
        }
        if !seen.has_refresh_token {
            return self.to(Step::DeleteExhausted {
                version: seen.version,
            });
        }
        if seen.retry_at.is_some_and(|t| now < t) {
            // Not again yet; a token that is still valid serves meanwhile.
            if self.stale_version.is_none() && still_valid(seen.access_expires_at, now) {
                return self.to(Step::Done(Outcome::UseRead));
            }
            return self.to(Step::Done(Outcome::CoolingDown));
        }
        self.to(Step::TryLease {
            version: seen.version,
            until: now + self.settings.lease_seconds,
            now,
        })
    }

    /// The connection without a refresh token was deleted (or had moved on).
    pub fn exhausted_deleted(&mut self) -> Step {
        self.check_step(
            matches!(self.step, Step::DeleteExhausted { .. }),
            "exhausted_deleted",
        );
        self.to(Step::Done(Outcome::NotConnected))
    }

    /// The lease was taken (`true`) or someone else's is running, or the
    /// item moved on (`false`).
    pub fn leased(&mut self, taken: bool) -> Step {
        self.check_step(matches!(self.step, Step::TryLease { .. }), "leased");
        let Some(seen) = self.seen else {
            return self.to(Step::Done(Outcome::NotConnected));
        };
        if taken {
            return self.to(Step::Refresh {
                version: seen.version,
            });
        }
        // Someone else is refreshing: the old token is good until it expires,
        // unless Miro already refused it.
        if self.stale_version.is_none() && still_valid(seen.access_expires_at, self.now) {
            return self.to(Step::Done(Outcome::UseRead));
        }
        self.to(Step::Wait)
    }

    /// Miro's answer to the refresh.
    pub fn refreshed(&mut self, answer: Answer) -> Step {
        self.check_step(matches!(self.step, Step::Refresh { .. }), "refreshed");
        let Some(seen) = self.seen else {
            return self.to(Step::Done(Outcome::NotConnected));
        };
        match answer {
            // Written before anything else is done with the new tokens.
            Answer::Renewed => self.to(Step::WriteTokens {
                expected: seen.version,
                new_version: seen.version + 1,
            }),
            Answer::Dead => self.to(Step::DeleteDead {
                version: seen.version,
            }),
            // Not a verdict on the grant: keep the tokens, free the lease.
            Answer::Transient => self.to(Step::ReleaseLease),
        }
    }

    /// The new tokens were written (`true`), or the item moved on (`false`).
    pub fn tokens_written(&mut self, landed: bool) -> Step {
        self.check_step(
            matches!(self.step, Step::WriteTokens { .. }),
            "tokens_written",
        );
        if landed {
            self.to(Step::Done(Outcome::UseRenewed))
        } else {
            self.to(Step::RevokeRenewed)
        }
    }

    /// The superseded tokens were revoked (or that failed: best effort).
    pub fn renewed_revoked(&mut self) -> Step {
        self.check_step(self.step == Step::RevokeRenewed, "renewed_revoked");
        self.next_round()
    }

    /// The dead connection was deleted (`true`), or it had moved on
    /// (`false`: a reconnect or a disconnect won; read what is there now).
    pub fn dead_deleted(&mut self, deleted: bool) -> Step {
        self.check_step(matches!(self.step, Step::DeleteDead { .. }), "dead_deleted");
        if deleted {
            self.to(Step::Done(Outcome::NotConnected))
        } else {
            self.next_round()
        }
    }

    /// The lease was given back after a transient answer.
    pub fn lease_released(&mut self) -> Step {
        self.check_step(self.step == Step::ReleaseLease, "lease_released");
        self.to(Step::Done(Outcome::MiroTransient))
    }

    /// The wait is over.
    pub fn waited(&mut self) -> Step {
        self.check_step(self.step == Step::Wait, "waited");
        self.next_round()
    }
}

/// The connection item as the conditional writes see it. `H` names a lease
/// holder (a random id per lease attempt).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemState<H> {
    /// Random for a new connection, +1 per token write and per forget.
    pub version: u64,
    pub lease_until: Option<i64>,
    pub lease_holder: Option<H>,
    /// The lease holder whose refresh wrote the tokens there now.
    pub written_by: Option<H>,
    /// Disconnected; its grant's revocation at Miro is pending.
    pub forgotten: bool,
}

impl<H> ItemState<H> {
    /// A new connection (a consent), replacing whatever was there: no
    /// condition.
    pub fn connected(version: u64) -> Self {
        Self {
            version,
            lease_until: None,
            lease_holder: None,
            written_by: None,
            forgotten: false,
        }
    }

    /// [`lease_allowed`] held: the lease is `holder`'s until `until`.
    pub fn leased(self, holder: H, until: i64) -> Self {
        Self {
            lease_until: Some(until),
            lease_holder: Some(holder),
            ..self
        }
    }

    /// [`release_allowed`] held: no lease.
    pub fn released(self) -> Self {
        Self {
            lease_until: None,
            lease_holder: None,
            ..self
        }
    }

    /// [`tokens_write_allowed`] held: the whole item is written anew with
    /// the new tokens at `new_version`, without a lease.
    pub fn renewed(self, new_version: u64, holder: H) -> Self {
        Self {
            version: new_version,
            lease_until: None,
            lease_holder: None,
            written_by: Some(holder),
            forgotten: false,
        }
    }

    /// [`forget_allowed`] held: forgotten, its version moved on (so no
    /// refresh in flight can write it back), no lease.
    pub fn forgotten(self) -> Self {
        Self {
            version: self.version + 1,
            lease_until: None,
            lease_holder: None,
            forgotten: true,
            ..self
        }
    }
}

/// The clauses of the lease condition, each on its own, so that a test can
/// flip one of them. The condition: `at_version AND (no_lease OR
/// lease_ran_out OR held_by_caller)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseClauses {
    /// The item is still at the version the caller read.
    pub at_version: bool,
    /// Nobody holds a lease.
    pub no_lease: bool,
    /// The lease there ran out (its end is not after `now`).
    pub lease_ran_out: bool,
    /// The lease there is the caller's own (its first answer was lost and
    /// the call was sent again).
    pub held_by_caller: bool,
}

impl LeaseClauses {
    /// The clauses over an existing item (`None`: there is no item, and no
    /// lease can be taken on it).
    pub fn of<H: PartialEq>(
        item: Option<&ItemState<H>>,
        version: u64,
        holder: &H,
        now: i64,
    ) -> Option<Self> {
        item.map(|item| Self {
            at_version: item.version == version,
            no_lease: item.lease_until.is_none(),
            lease_ran_out: item.lease_until.is_some_and(|t| t <= now),
            held_by_caller: item.lease_holder.as_ref() == Some(holder),
        })
    }

    pub fn allow(&self) -> bool {
        self.at_version && (self.no_lease || self.lease_ran_out || self.held_by_caller)
    }
}

/// May `holder` take the refresh lease on the item it read at `version`?
pub fn lease_allowed<H: PartialEq>(
    item: Option<&ItemState<H>>,
    version: u64,
    holder: &H,
    now: i64,
) -> bool {
    LeaseClauses::of(item, version, holder, now).is_some_and(|c| c.allow())
}

/// May `holder` write the tokens its refresh got, as `new_version`, over
/// the item it read at `expected`? Yes if the item is still there; also if
/// this very write already landed (its answer was lost and the call was
/// sent again), which counts as done, not as moved on.
pub fn tokens_write_allowed<H: PartialEq>(
    item: Option<&ItemState<H>>,
    expected: u64,
    new_version: u64,
    holder: &H,
) -> bool {
    item.is_some_and(|item| {
        item.version == expected
            || (item.version == new_version && item.written_by.as_ref() == Some(holder))
    })
}

/// May a disconnect forget the connection it read at `version`?
pub fn forget_allowed<H>(item: Option<&ItemState<H>>, version: u64) -> bool {
    item.is_some_and(|item| item.version == version && !item.forgotten)
}

/// May the connection be deleted as read at `version` (a dead grant, an
/// exhausted one, a revoked forgotten one)? Never a newer one.
pub fn delete_at_allowed<H>(item: Option<&ItemState<H>>, version: u64) -> bool {
    item.is_some_and(|item| item.version == version)
}

/// May `holder` give the lease back? Only its own.
pub fn release_allowed<H: PartialEq>(item: Option<&ItemState<H>>, holder: &H) -> bool {
    item.is_some_and(|item| item.lease_holder.as_ref() == Some(holder))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings {
        margin_seconds: 300,
        lease_seconds: LEASE_SECONDS,
        max_rounds: 2,
    };

    fn seen(version: u64, expires: i64) -> Seen {
        Seen {
            version,
            access_expires_at: Some(expires),
            has_refresh_token: true,
            retry_at: None,
        }
    }

    #[test]
    fn a_connection_cooling_down_is_not_refreshed_before_its_time() {
        let cooling = Seen {
            retry_at: Some(1_030),
            ..seen(7, 1_000)
        };
        let mut r = TokenRefresh::new(SETTINGS, None);
        assert_eq!(
            r.read(Some(cooling), 1_010),
            Step::Done(Outcome::CoolingDown)
        );
        // A token still valid serves meanwhile; Miro's own refusal of it does not.
        let valid = Seen {
            access_expires_at: Some(1_100),
            ..cooling
        };
        let mut r = TokenRefresh::new(SETTINGS, None);
        assert_eq!(r.read(Some(valid), 1_010), Step::Done(Outcome::UseRead));
        let mut r = TokenRefresh::new(SETTINGS, Some(7));
        assert_eq!(r.read(Some(valid), 1_010), Step::Done(Outcome::CoolingDown));
        let mut r = TokenRefresh::new(SETTINGS, None);
        assert!(matches!(
            r.read(Some(cooling), 1_030),
            Step::TryLease { version: 7, .. }
        ));
    }

    #[test]
    fn a_fresh_token_is_used_and_a_due_one_is_leased() {
        let mut r = TokenRefresh::new(SETTINGS, None);
        assert_eq!(
            r.read(Some(seen(7, 10_000)), 1_000),
            Step::Done(Outcome::UseRead)
        );
        let mut r = TokenRefresh::new(SETTINGS, None);
        assert_eq!(
            r.read(Some(seen(7, 1_200)), 1_000),
            Step::TryLease {
                version: 7,
                until: 1_030,
                now: 1_000
            }
        );
        assert_eq!(r.leased(true), Step::Refresh { version: 7 });
        assert_eq!(
            r.refreshed(Answer::Renewed),
            Step::WriteTokens {
                expected: 7,
                new_version: 8
            }
        );
        assert_eq!(r.tokens_written(true), Step::Done(Outcome::UseRenewed));
    }

    #[test]
    fn a_refused_lease_uses_the_old_token_or_waits_bounded() {
        let mut r = TokenRefresh::new(SETTINGS, None);
        r.read(Some(seen(7, 1_200)), 1_000);
        assert_eq!(r.leased(false), Step::Done(Outcome::UseRead));
        // Miro refused version 7: never handed out again.
        let mut r = TokenRefresh::new(SETTINGS, Some(7));
        r.read(Some(seen(7, 9_000)), 1_000);
        assert_eq!(r.leased(false), Step::Wait);
        assert_eq!(r.waited(), Step::Read);
        assert_eq!(
            r.read(Some(seen(8, 9_000)), 1_000),
            Step::Done(Outcome::UseRead)
        );
        let mut r = TokenRefresh::new(SETTINGS, Some(7));
        r.read(Some(seen(7, 9_000)), 1_000);
        r.leased(false);
        r.waited();
        r.read(Some(seen(7, 9_000)), 1_000);
        r.leased(false);
        assert_eq!(r.waited(), Step::Done(Outcome::GaveUp));
    }

    #[test]
    fn answers_other_than_renewed() {
        let mut r = TokenRefresh::new(SETTINGS, Some(7));
        r.read(Some(seen(7, 9_000)), 1_000);
        r.leased(true);
        assert_eq!(r.refreshed(Answer::Transient), Step::ReleaseLease);
        assert_eq!(r.lease_released(), Step::Done(Outcome::MiroTransient));
        let mut r = TokenRefresh::new(SETTINGS, Some(7));
        r.read(Some(seen(7, 9_000)), 1_000);
        r.leased(true);
        assert_eq!(r.refreshed(Answer::Dead), Step::DeleteDead { version: 7 });
        assert_eq!(r.dead_deleted(false), Step::Read);
        assert_eq!(r.read(None, 1_000), Step::Done(Outcome::NotConnected));
        let mut r = TokenRefresh::new(SETTINGS, Some(7));
        r.read(Some(seen(7, 9_000)), 1_000);
        r.leased(true);
        r.refreshed(Answer::Renewed);
        assert_eq!(r.tokens_written(false), Step::RevokeRenewed);
        assert_eq!(r.renewed_revoked(), Step::Read);
        let mut r = TokenRefresh::new(SETTINGS, Some(7));
        let exhausted = Seen {
            has_refresh_token: false,
            ..seen(7, 9_000)
        };
        assert_eq!(
            r.read(Some(exhausted), 1_000),
            Step::DeleteExhausted { version: 7 }
        );
        assert_eq!(r.exhausted_deleted(), Step::Done(Outcome::NotConnected));
    }

    #[test]
    fn conditions() {
        let item = ItemState::<&str>::connected(7);
        assert!(lease_allowed(Some(&item), 7, &"a", 100));
        assert!(!lease_allowed(Some(&item), 8, &"a", 100));
        assert!(!lease_allowed::<&str>(None, 7, &"a", 100));
        let held = item.clone().leased("a", 130);
        assert!(lease_allowed(Some(&held), 7, &"a", 100), "sent again");
        assert!(!lease_allowed(Some(&held), 7, &"b", 100));
        assert!(lease_allowed(Some(&held), 7, &"b", 130), "ran out");
        assert!(release_allowed(Some(&held), &"a"));
        assert!(!release_allowed(Some(&held), &"b"));
        assert!(!release_allowed(Some(&held.clone().released()), &"a"));
        let written = held.clone().renewed(8, "a");
        assert!(tokens_write_allowed(Some(&held), 7, 8, &"a"));
        assert!(tokens_write_allowed(Some(&written), 7, 8, &"a"), "landed");
        assert!(!tokens_write_allowed(Some(&written), 7, 8, &"b"));
        assert!(!tokens_write_allowed(Some(&written), 6, 7, &"a"));
        assert!(forget_allowed(Some(&written), 8));
        let forgotten = written.forgotten();
        assert_eq!(forgotten.version, 9);
        assert!(!forget_allowed(Some(&forgotten), 9), "forgotten once");
        assert!(!tokens_write_allowed(Some(&forgotten), 7, 8, &"a"));
        assert!(delete_at_allowed(Some(&forgotten), 9));
        assert!(!delete_at_allowed(Some(&forgotten), 8));
        assert!(!delete_at_allowed::<&str>(None, 8));
    }
}

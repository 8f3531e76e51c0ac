//! Waiting for Miro: how long a caller may wait, the per-user gate a 429
//! closes, and the backoff between attempts.

use crate::identity::AppUser;

/// How long a caller can wait for Miro: an HTTP request does not wait at all
/// (it answers 429 with `Retry-After`); an event consumer waits while its
/// invocation has time left.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<std::time::Instant>);

impl Deadline {
    /// Answer at once rather than wait for Miro (an HTTP request: its caller
    /// gets 429 with `Retry-After`).
    pub fn no_waiting() -> Self {
        Self(None)
    }

    pub fn at(instant: std::time::Instant) -> Self {
        Self(Some(instant))
    }

    pub fn instant(&self) -> Option<std::time::Instant> {
        self.0
    }

    /// The same deadline, `margin` sooner: the time left for the waits of a
    /// piece of work that must still record where it stopped.
    pub fn sooner_by(&self, margin: std::time::Duration) -> Self {
        Self(self.0.map(|d| d.checked_sub(margin).unwrap_or(d)))
    }

    pub fn allows(&self, wait: std::time::Duration) -> bool {
        self.0.is_some_and(|d| std::time::Instant::now() + wait < d)
    }
}

/// Miro's budget per user and app (its documented default): credits a minute.
pub const CREDITS_PER_MINUTE: u64 = 100_000;
const CREDIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Per app user: the earliest moment Miro will take another request, learnt
/// from a 429 (concurrent work for that user waits instead of hammering);
/// and the credits this process spent in the last minute, so that a large
/// piece of work paces itself below Miro's budget instead of running into it.
#[derive(Default)]
pub(crate) struct RateGate {
    closed: std::sync::Mutex<std::collections::HashMap<AppUser, std::time::Instant>>,
    spent: std::sync::Mutex<
        std::collections::HashMap<AppUser, std::collections::VecDeque<(std::time::Instant, u64)>>,
    >,
}

impl RateGate {
    /// Shuts the gate for `seconds` plus jitter; returns how long it stays shut.
    pub(crate) fn close(&self, user: &AppUser, seconds: u64) -> std::time::Duration {
        use rand::Rng;
        let wait = std::time::Duration::from_secs(seconds)
            + std::time::Duration::from_millis(rand::thread_rng().gen_range(50..400));
        let now = std::time::Instant::now();
        let until = now + wait;
        if let Ok(mut gates) = self.closed.lock() {
            // Gates that opened again are forgotten: the map holds only the
            // users Miro is holding back now.
            gates.retain(|_, open_at| *open_at > now);
            let gate = gates.entry(user.clone()).or_insert(until);
            *gate = (*gate).max(until);
        }
        wait
    }

    /// Waits while the gate is shut, if the deadline allows; else returns at once.
    pub(crate) async fn wait(&self, user: &AppUser, deadline: Deadline) {
        let until = self.closed.lock().ok().and_then(|g| g.get(user).copied());
        if let Some(until) = until {
            let now = std::time::Instant::now();
            if until > now && deadline.allows(until - now) {
                tokio::time::sleep(until - now).await;
            }
        }
    }

    /// Counts a call of `credits` against the user's last minute, waiting
    /// for room while the deadline allows; else how long until there is room.
    pub(crate) async fn spend(
        &self,
        user: &AppUser,
        credits: u64,
        deadline: Deadline,
    ) -> Result<(), std::time::Duration> {
        loop {
            let wait = self.room_in(user, credits);
            if wait.is_zero() {
                return Ok(());
            }
            if !deadline.allows(wait) {
                return Err(wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Zero (and the credits counted) if they fit in the last minute's
    /// budget now; else the time until enough of it has aged out.
    fn room_in(&self, user: &AppUser, credits: u64) -> std::time::Duration {
        let now = std::time::Instant::now();
        let Ok(mut spent) = self.spent.lock() else {
            return std::time::Duration::ZERO;
        };
        spent.retain(|_, calls| {
            calls.retain(|(at, _)| now.duration_since(*at) < CREDIT_WINDOW);
            !calls.is_empty()
        });
        let calls = spent.entry(user.clone()).or_default();
        let mut used: u64 = calls.iter().map(|(_, c)| c).sum();
        if used + credits <= CREDITS_PER_MINUTE || calls.is_empty() {
            calls.push_back((now, credits));
            return std::time::Duration::ZERO;
        }
        for (at, c) in calls.iter() {
            used -= c;
            if used + credits <= CREDITS_PER_MINUTE {
                return (*at + CREDIT_WINDOW).saturating_duration_since(now);
            }
        }
        std::time::Duration::ZERO
    }
}

pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let base = 100u64 << attempt.min(5);
    std::time::Duration::from_millis(base + rand::thread_rng().gen_range(0..base))
}

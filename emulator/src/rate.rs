//! Miro's rate limit: credits per Miro user per window, each metered call
//! charged as Miro charges it, with Miro's `X-RateLimit-*` headers.

use crate::state::{RateWindow, Shared, World};

/// Whether a call of `cost` credits by `user` fits in the user's current
/// window (it is then charged), and the rate-limit headers to answer with.
/// A window starts at the user's first metered request after the previous
/// one ended (not at a multiple of its length on the wall clock), so a test
/// never starts at the tail of a window.
pub(crate) fn charge(
    shared: &Shared,
    world: &mut World,
    user: &str,
    cost: u64,
) -> (bool, Vec<(&'static str, String)>) {
    let Some((budget, window)) = shared.config.credit_budget() else {
        spent(world, user, cost);
        return (true, vec![]);
    };
    let window_ms = window.saturating_mul(1000);
    let now_ms = world.now_ms();
    let rate = world.rate.entry(user.to_string()).or_default();
    let ended = rate
        .start_ms
        .is_none_or(|start| now_ms >= start.saturating_add(window_ms));
    if ended {
        *rate = RateWindow {
            start_ms: Some(now_ms),
            used: 0,
            limited: false,
        };
    }
    let start_ms = rate.start_ms.unwrap_or(now_ms);
    let after_limit = rate.limited;
    // A call is let through only if all of its cost is left: a copy does
    // not squeeze into the last 500 credits.
    let room = rate.used.saturating_add(cost) <= budget;
    if room {
        rate.used = rate.used.saturating_add(cost);
    } else {
        rate.limited = true;
    }
    let remaining = budget.saturating_sub(rate.used);
    if after_limit {
        world.after_limit += 1;
    }
    if room {
        spent(world, user, cost);
    } else {
        world.rate_limited += 1;
    }
    // Epoch seconds, rounded up: waiting until then always reaches the next window.
    let reset = start_ms
        .saturating_add(window_ms)
        .saturating_add(999)
        .div_euclid(1000);
    let headers = vec![
        ("x-ratelimit-limit", budget.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
    ];
    (room, headers)
}

fn spent(world: &mut World, user: &str, cost: u64) {
    let total = world.credits_spent.entry(user.to_string()).or_default();
    *total = total.saturating_add(cost);
}

//! A board with 200 items and 50 connectors, its Miro answers each delayed
//! to Miro's typical latency: the calls made against the least Miro allows,
//! the wall time, and the credits spent.

use super::{bench_emulator, connect, fmt3, mmm, our_table, service, settings, Env, Failure};
use miro_connect::domain::BoardRequest;
use miro_connect::identity::AppUser;
use miro_connect::service::content::CALLS_AT_ONCE;
use miro_connect::service::Deadline;
use miro_emulator::{BoardFault, ItemCallKind, MIRO_USER_ID};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Instant;

/// Miro's typical answer time for a create call.
const LATENCY_MS: u64 = 300;
const FRAMES: usize = 5;
const NOTES: usize = 195;
const CONNECTORS: usize = 50;
const ROUNDS: usize = 3;

fn board() -> Value {
    let mut items: Vec<Value> = (0..FRAMES)
        .map(|f| json!({ "type": "frame", "ref": format!("f{f}"), "title": format!("Phase {f}") }))
        .collect();
    items.extend((0..NOTES).map(|i| {
        json!({ "type": "sticky_note", "ref": format!("n{i}"), "text": format!("Task {i}"), "frame": format!("f{}", i % FRAMES) })
    }));
    let connectors: Vec<Value> = (0..CONNECTORS)
        .map(|i| json!({ "from": format!("n{i}"), "to": format!("n{}", i + 1) }))
        .collect();
    json!({ "name": "200 items", "items": items, "connectors": connectors })
}

pub async fn section(
    env: &Env,
    out: &mut String,
    goals: &mut Vec<(String, bool, String)>,
) -> Result<(), Failure> {
    let request: BoardRequest = serde_json::from_value(board())?;
    let bulk_calls = NOTES.div_ceil(20);
    let minimum = 1 + FRAMES + bulk_calls + CONNECTORS;
    let sequential_s = minimum as f64 * LATENCY_MS as f64 / 1000.0;
    let (mut walls, mut calls, mut credits) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let emulator = bench_emulator(Some(3599)).await?;
        let table = our_table(&env.ddb, "bench-content").await?;
        let svc = service(&settings(&emulator, &table), &env.ddb, &env.keys).await?;
        connect(&svc, "content-user").await?;
        let delay = BoardFault::SlowAfter(LATENCY_MS);
        emulator.inject_board_faults(&[delay]);
        emulator.inject_item_faults(ItemCallKind::Frame, &[delay; FRAMES]);
        emulator.inject_item_faults(ItemCallKind::Bulk { items: 0 }, &vec![delay; bulk_calls]);
        emulator.inject_item_faults(ItemCallKind::Connector, &[delay; CONNECTORS]);
        let spent_before = emulator.credits_spent(MIRO_USER_ID);
        let user = AppUser::parse("content-user")?;
        let started = Instant::now();
        let key = format!("content-{round}");
        let created = svc
            .bounded(svc.create_board(&user, Some(&key), request.clone(), Deadline::no_waiting()))
            .await?;
        walls.push(started.elapsed().as_secs_f64());
        let board_id = created.board.id;
        let on_board = (
            emulator.items(&board_id).len(),
            emulator.connectors(&board_id).len(),
        );
        if on_board != (FRAMES + NOTES, CONNECTORS) {
            return Err(format!("the board holds {on_board:?}").into());
        }
        calls.push((emulator.item_calls().len() + emulator.boards().len()) as f64);
        credits.push((emulator.credits_spent(MIRO_USER_ID) - spent_before) as f64);
    }
    let (_, calls_median, calls_max) = mmm(calls.clone());
    writeln!(
        out,
        "\n## A board with 200 items\n\n`POST /boards` with {FRAMES} frames, {NOTES} sticky notes in them and \
         {CONNECTORS} connectors, each Miro answer delayed {LATENCY_MS} ms (Miro's typical latency), {ROUNDS} runs. \
         The least Miro allows: the board, each frame alone, the notes in bulk calls of 20, each connector \
         alone ({minimum} calls). The saga runs {CALLS_AT_ONCE} independent calls at a time; one after another, the \
         same calls would take {sequential_s:.1} s.\n"
    )?;
    writeln!(out, "| figure | min / median / max |\n|---|---|")?;
    writeln!(out, "| wall time | {} |", fmt3(mmm(walls.clone()), " s"))?;
    writeln!(
        out,
        "| Miro calls (minimum {minimum}) | {} |",
        fmt3(mmm(calls), "")
    )?;
    writeln!(out, "| credits spent | {} |", fmt3(mmm(credits), ""))?;
    let (_, wall_median, _) = mmm(walls);
    goals.push((
        "A 200-item board in the fewest Miro calls, well inside the request budget".into(),
        calls_max <= minimum as f64 && wall_median < sequential_s / 2.0,
        format!("{calls_median:.0} calls (minimum {minimum}); {wall_median:.1} s against {sequential_s:.1} s one by one"),
    ));
    Ok(())
}

//! A burst of `Create Miro Board` events: thousands of messages on an SQS
//! queue (moto), drained by the consumer's real binary under this
//! benchmark's Runtime API, with a small event source mapping of its own
//! (as many pollers as the template's `MaximumConcurrency`, its batch size,
//! partial batch responses, the queue's visibility timeout and dead-letter
//! queue as the template sets them), against the emulator with Miro's
//! per-user credit limits, each app user a Miro user of their own.

use super::{
    aws, connect_as, consumer_function, fmt3, mmm, our_table, runtime, rust_bin, rust_env, service,
    settings, Env, Failure, Plan, REDIRECT_URI,
};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use miro_emulator::{Emulator, EmulatorConfig};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Miro's limit: 100,000 credits per user per minute; a board is a Level 3
/// call (500 credits), so about 200 boards a minute per user.
pub const MIRO_CREDITS_PER_MINUTE: u64 = 100_000;
pub const MIRO_WINDOW_SECONDS: i64 = 60;
pub const BOARDS_PER_WINDOW: usize = (MIRO_CREDITS_PER_MINUTE / 500) as usize;

/// The event source mapping and the queue, as the template sets them.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    pub max_concurrency: usize,
    pub batch_size: usize,
    pub visibility_timeout_s: i64,
    pub max_receive_count: usize,
    pub function_timeout_s: u64,
}

/// How a burst's events fall on its users.
#[derive(Clone, Copy)]
pub enum Shape {
    /// Every user the same number of boards.
    Even,
    /// 1% of the users ask 250 boards each (more than a minute of Miro's
    /// limit), the rest share what is left.
    Hot,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Even => "even",
            Shape::Hot => "hot users",
        }
    }

    /// Boards per user.
    fn counts(self, events: usize, users: usize) -> Vec<usize> {
        let mut counts = vec![0; users];
        let hot = match self {
            Shape::Even => 0,
            Shape::Hot => (users / 100).max(1),
        };
        let mut left = events;
        for c in counts.iter_mut().take(hot) {
            *c = 250.min(left);
            left -= *c;
        }
        let rest = users - hot;
        for (i, c) in counts.iter_mut().skip(hot).enumerate() {
            *c = left / rest + usize::from(i < left % rest);
        }
        counts
    }
}

/// The least time Miro's limits allow for these counts: a user's boards
/// past each window's 200 wait for the next window.
fn floor_seconds(counts: &[usize]) -> f64 {
    let windows = counts
        .iter()
        .map(|n| n.div_ceil(BOARDS_PER_WINDOW).max(1))
        .max()
        .unwrap_or(1);
    ((windows - 1) as i64 * MIRO_WINDOW_SECONDS) as f64
}

#[derive(Default)]
struct Run {
    drain_s: f64,
    finished: bool,
    boards: usize,
    distinct: usize,
    dead: usize,
    rate_limited: usize,
    invocations: usize,
    handed_back: usize,
    /// Invocations that answered with an error: their whole batch comes
    /// back, as Lambda does.
    function_errors: usize,
    /// Messages settled more than once (each delivery settled).
    settled_again: usize,
    /// `Miro Board Creation Failed` outcomes, by reason.
    failed: std::collections::BTreeMap<String, usize>,
    /// Events whose board is not on the emulator.
    missing: usize,
    /// Messages SendMessageBatch acknowledged that no receive ever
    /// returned: lost by the queue, not by the consumer.
    lost_by_queue: usize,
    /// The consumers' first warnings and errors.
    notable: Vec<String>,
    consumer_cpu_ms: f64,
    /// Time the pollers spent, summed over them: receiving, in the
    /// consumer, deleting (ms).
    spent: [f64; 3],
}

/// A deterministic shuffle (xorshift), so that users interleave on the queue.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

pub async fn section(
    env: &Env,
    plan: Plan,
    mapping: Mapping,
    out: &mut String,
) -> Result<(), Failure> {
    let emulator = Emulator::start(EmulatorConfig {
        redirect_uris: vec![REDIRECT_URI.into()],
        access_token_lifetime: Some(3599),
        credit_rate_limit: Some((MIRO_CREDITS_PER_MINUTE, MIRO_WINDOW_SECONDS)),
        ..EmulatorConfig::default()
    })
    .await?;
    let table = our_table(&env.ddb, "bench-burst").await?;
    let s = settings(&emulator, &table);
    let svc = Arc::new(service(&s, &env.ddb, &env.keys).await?);
    let users = plan.burst_users;
    let connecting = Instant::now();
    // Each app user consents as a Miro user of their own.
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let (svc, next) = (svc.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= users {
                    return Ok::<(), String>(());
                }
                let miro_user = (4_000_000_000u64 + i as u64).to_string();
                connect_as(&svc, &format!("burst-{i}"), Some(&miro_user))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    eprintln!(
        "burst: {users} users connected in {:.0} s",
        connecting.elapsed().as_secs_f64()
    );

    let config = aws(&env.moto).await?;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (bus, failures) = outcome_bus(&config, &sqs).await?;
    let mut vars = rust_env(env, &s);
    vars.push(("EVENT_BUS_NAME".into(), bus));
    let spawn = rust_bin(env, consumer_function())
        .with_timeout(Duration::from_secs(mapping.function_timeout_s));

    writeln!(out, "\n## A burst of events\n\n{} `Create Miro Board` events for {users} app users, each consenting \
        as a Miro user of their own, put on an SQS queue (moto) at once (how, below the table) and drained by the consumer's release binary \
        under the benchmark's Runtime API. The benchmark plays the event source mapping as the template sets it: \
        {} pollers (`MaximumConcurrency`), batches of up to {}, partial batch responses, a visibility timeout of {} s \
        and a dead-letter queue after {} receives; each invocation's deadline is the function's timeout ({} s). The \
        emulator counts Miro's credits per Miro user: {MIRO_CREDITS_PER_MINUTE} a minute, 500 a board, so {BOARDS_PER_WINDOW} \
        boards a minute per user. The floor is the least time those limits allow: a user's boards past a window's \
        {BOARDS_PER_WINDOW} wait for the next window. {} runs of each shape.\n",
        plan.burst_events, mapping.max_concurrency, mapping.batch_size, mapping.visibility_timeout_s,
        mapping.max_receive_count, mapping.function_timeout_s, plan.burst_runs)?;
    writeln!(out, "| shape | floor (s) | drain (s) | drain / floor | boards made | distinct | dead-lettered | failed outcomes | 429s from Miro | invocations | handed back | delivered again after settling | consumer CPU per board (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    let mut last_end = Instant::now();
    let mut notes = vec![];
    for (k, shape) in [Shape::Even, Shape::Hot].into_iter().enumerate() {
        let counts = shape.counts(plan.burst_events, users);
        let floor = floor_seconds(&counts);
        let mut runs = vec![];
        for r in 0..plan.burst_runs {
            // Hot users start on fresh windows: every window of the last run
            // is over (the emulator's clock is left alone, so that its
            // X-RateLimit-Reset means what it says to the consumer).
            if matches!(shape, Shape::Hot) {
                let since = last_end.elapsed();
                let window = Duration::from_secs(MIRO_WINDOW_SECONDS as u64 + 1);
                if since < window {
                    tokio::time::sleep(window - since).await;
                }
            }
            let tag = format!("B{k}{r}-");
            let run = one_run(
                &sqs,
                &emulator,
                &spawn,
                &vars,
                mapping,
                &counts,
                &tag,
                (k * 100 + r) as u64 + 7,
            )
            .await?;
            let run = Run {
                failed: failed_outcomes(&sqs, &failures).await?,
                ..run
            };

            eprintln!(
                "burst {} run {}: drain {:.1} s (floor {floor:.0} s), {} boards, {} missing, {} 429s, {} invocations, \
                 {} handed back, {} function errors, {} settled again, {} dead, {} lost by the queue, failed outcomes {:?}",
                shape.name(),
                r + 1,
                run.drain_s,
                run.boards,
                run.missing,
                run.rate_limited,
                run.invocations,
                run.handed_back,
                run.function_errors,
                run.settled_again,
                run.dead,
                run.lost_by_queue,
                run.failed,
            );
            for line in &run.notable {
                eprintln!("  consumer: {line}");
            }
            runs.push(run);
            last_end = Instant::now();
        }
        let f = |g: fn(&Run) -> f64| mmm(runs.iter().map(g).collect());
        let whole = |g: fn(&Run) -> f64| {
            let (a, b, c) = f(g);
            if a == c {
                format!("{b:.0}")
            } else {
                format!("{a:.0} / {b:.0} / {c:.0}")
            }
        };
        let drain = f(|r| r.drain_s);
        let unfinished = runs.iter().filter(|r| !r.finished).count();
        writeln!(
            out,
            "| {}{} | {floor:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            shape.name(),
            if unfinished > 0 {
                format!(" ({unfinished} runs did not drain)")
            } else {
                String::new()
            },
            fmt3(drain, ""),
            if floor > 0.0 {
                fmt3((drain.0 / floor, drain.1 / floor, drain.2 / floor), "x")
            } else {
                "(floor 0)".into()
            },
            whole(|r| r.boards as f64),
            whole(|r| r.distinct as f64),
            whole(|r| r.dead as f64),
            whole(|r| r.failed.values().sum::<usize>() as f64),
            whole(|r| r.rate_limited as f64),
            whole(|r| r.invocations as f64),
            whole(|r| r.handed_back as f64),
            whole(|r| r.settled_again as f64),
            fmt3(f(|r| r.consumer_cpu_ms / r.boards.max(1) as f64), ""),
        )?;
        let spent = |k: usize| mmm(runs.iter().map(|r| r.spent[k] / 1000.0).collect()).1;
        let limited: usize = runs.iter().map(|r| r.rate_limited).sum();
        let hottest = counts.iter().max().copied().unwrap_or(0);
        if limited == 0 && floor > 0.0 {
            notes.push(format!(
                "{}: no 429s, because the drain ({:.0} s) spread each user's boards (at most {hottest}) \
                 below {BOARDS_PER_WINDOW} a minute; Miro's limit binds only where one user's boards come faster",
                shape.name(),
                drain.1
            ));
        }
        let mut reasons = std::collections::BTreeMap::<&str, usize>::new();
        for (reason, n) in runs.iter().flat_map(|r| &r.failed) {
            *reasons.entry(reason).or_default() += n;
        }
        if !reasons.is_empty() {
            let listed: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            notes.push(format!(
                "{}: failed outcomes over the runs: {}",
                shape.name(),
                listed.join(", ")
            ));
        }
        let lost: usize = runs.iter().map(|r| r.lost_by_queue).sum();
        let missing: usize = runs.iter().map(|r| r.missing).sum();
        if lost > 0 || missing > 0 {
            notes.push(format!(
                "{}: {missing} events without a board, {lost} messages the queue acknowledged and never delivered",
                shape.name()
            ));
        }
        let errors: usize = runs.iter().map(|r| r.function_errors).sum();
        if errors > 0 {
            notes.push(format!("{}: {errors} invocations answered with a function error (their batches came back whole)", shape.name()));
        }
        notes.push(format!(
            "{}: {:.0} s receiving, {:.0} s in the consumer, {:.0} s deleting",
            shape.name(),
            spent(0),
            spent(1),
            spent(2)
        ));
    }
    writeln!(
        out,
        "\nNotes, and the pollers' time summed over them (medians): {}. A message handed back comes back after the visibility \
         timeout and is made once all the same (boards made and distinct above). SQS delivers at least once, and moto \
         sometimes hands one message to two pollers: one consumer makes the board, and the other, finding the \
         idempotency key in progress, waits for it and replays the board, as does a copy delivered after the first \
         settled (\"delivered again after settling\": each such message published its outcome twice, with the same \
         board). The drain ends when every message id has settled (the queue's answer to the delete says so) or is \
         dead-lettered, each counted once, or when the queue has stood empty for 3 s after the last send. moto's \
         DeleteMessage rebuilds its message list from a copy under no lock, so two deletes at once (its server \
         answers each request on a thread of its own) leave the list one of them copied: a message the other \
         deleted comes back, and a batch sent between the two is acknowledged and lost (7 events of one earlier \
         run; `bench/moto-sqs-race.py` shows both on moto's own objects, and over HTTP when moto switches threads \
         more often or its queue is long); SQS does neither, so the benchmark's deletes take turns, with each \
         other and with its sends, and every message id a send acknowledged is checked against the ids received. moto's receive scans its whole queue (~0.6 ms a \
         message here), which SQS does not, so the benchmark holds the burst's backlog and keeps moto's visible \
         messages topped up to {FED}; the pollers short-poll (moto's long poll holds up its other callers) and wait \
         250 ms when nothing is visible. So the drain is this machine's: moto, DynamoDB Local, the emulator and {} \
         consumer processes on {} cores, with Miro answering at once. At Miro's pace (a board ~{:.0} ms, plus \
         ~{:.0} ms of AWS calls a message), {} pollers of four would drain {} even events in ~{:.0} s.",
        notes.join("; "),
        mapping.max_concurrency,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        super::cost::WAIT_MIRO_BOARD_MS,
        4.0 * super::cost::WAIT_DYNAMODB_MS + super::cost::WAIT_EVENTBRIDGE_MS,
        mapping.max_concurrency,
        plan.burst_events,
        plan.burst_events as f64
            * (super::cost::WAIT_MIRO_BOARD_MS + 4.0 * super::cost::WAIT_DYNAMODB_MS + super::cost::WAIT_EVENTBRIDGE_MS)
            / 1000.0
            / (mapping.max_concurrency as f64 * super::cost::CONSUMER_CONCURRENCY),
    )?;
    Ok(())
}

/// One burst: a fresh queue and dead-letter queue, every event on it, the
/// consumer's pollers until every message is deleted or dead-lettered.
#[allow(clippy::too_many_arguments)]
async fn one_run(
    sqs: &aws_sdk_sqs::Client,
    emulator: &Emulator,
    spawn: &runtime::Spawn,
    vars: &[(String, String)],
    mapping: Mapping,
    counts: &[usize],
    tag: &str,
    seed: u64,
) -> Result<Run, Failure> {
    let mut run = Run::default();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("burst-dlq-{id}"))
        .send()
        .await?;
    let dlq_url = dlq.queue_url().ok_or("no DLQ url")?.to_string();
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive =
        json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": mapping.max_receive_count })
            .to_string();
    let queue = sqs
        .create_queue()
        .queue_name(format!("burst-{id}"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            mapping.visibility_timeout_s.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await?;
    let queue_url = queue.queue_url().ok_or("no queue url")?.to_string();

    // The events, users interleaved.
    let mut owners: Vec<usize> = counts
        .iter()
        .enumerate()
        .flat_map(|(u, n)| std::iter::repeat_n(u, *n))
        .collect();
    shuffle(&mut owners, seed);
    let total = owners.len();
    let bodies: Vec<String> = owners
        .iter()
        .enumerate()
        .map(|(n, u)| {
            let detail = json!({ "user_id": format!("burst-{u}"), "board": { "name": format!("{tag}{n}") },
                "idempotency_key": uuid::Uuid::new_v4().to_string() });
            json!({ "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "Create Miro Board",
                "source": "bench", "account": "000000000000", "region": "us-east-1", "resources": [], "detail": detail })
            .to_string()
        })
        .collect();
    // moto's receive scans its whole queue (~0.6 ms a message here), which
    // SQS does not: the benchmark holds the backlog and keeps moto's visible
    // messages topped up to FED, from the moment the burst starts.
    let mut backlog: Vec<Vec<String>> = bodies.chunks(10).map(<[String]>::to_vec).collect();
    backlog.reverse();
    let backlog = Arc::new(std::sync::Mutex::new(backlog));
    // moto's DeleteMessage rebuilds the queue's message list from a copy
    // under no lock (moto/sqs/models.py, `Queue.delete_message`): when two
    // deletes overlap, the later store puts back the message the other
    // deleted and drops any batch sent between the two (acknowledged, never
    // received). Real SQS does neither, so the benchmark's deletes take
    // turns, with each other and with its sends (`bench/moto-sqs-race.py`
    // shows the race alone).
    let moto_turns = Arc::new(tokio::sync::Mutex::new(()));
    // Every message id acknowledged by a send, and every id received.
    let sent_ids = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let received_ids = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let feeding = {
        let (sqs, queue_url, backlog) = (sqs.clone(), queue_url.clone(), backlog.clone());
        let (moto_turns, sent_ids) = (moto_turns.clone(), sent_ids.clone());
        tokio::spawn(async move {
            let result: Result<(), String> = async {
                loop {
                    let visible = visible_messages(&sqs, &queue_url).await;
                    let mut room = FED.saturating_sub(visible) / 10;
                    while room > 0 {
                        let Some(chunk) = backlog.lock().map_err(|e| e.to_string())?.pop() else {
                            return Ok(());
                        };
                        let ids = {
                            let _turn = moto_turns.lock().await;
                            send_chunk(&sqs, &queue_url, &chunk).await?
                        };
                        sent_ids.lock().map_err(|e| e.to_string())?.extend(ids);
                        room -= 1;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            .await;
            result
        })
    };

    let limited_before = emulator.rate_limit_stats().0;
    // Message ids settled (deleted), so that a message settled twice is
    // counted once towards the end of the drain.
    let settled = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let settled_again = Arc::new(AtomicUsize::new(0));
    let function_errors = Arc::new(AtomicUsize::new(0));
    let invocations = Arc::new(AtomicUsize::new(0));
    let handed_back = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let spent = Arc::new(std::sync::Mutex::new([0.0f64; 3]));
    let last_delete = Arc::new(std::sync::Mutex::new(Instant::now()));
    let started = Instant::now();
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..mapping.max_concurrency {
        let mut instance = runtime::Instance::start(spawn, vars).await?;
        instance.wait_ready(Duration::from_secs(30)).await?;
        let (sqs, queue_url) = (sqs.clone(), queue_url.clone());
        let (settled, settled_again, function_errors) = (
            settled.clone(),
            settled_again.clone(),
            function_errors.clone(),
        );
        let (invocations, handed_back, done, last_delete, spent) = (
            invocations.clone(),
            handed_back.clone(),
            done.clone(),
            last_delete.clone(),
            spent.clone(),
        );
        let add = move |k: usize, since: Instant| {
            if let Ok(mut s) = spent.lock() {
                s[k] += since.elapsed().as_secs_f64() * 1000.0;
            }
        };
        let batch = mapping.batch_size as i32;
        let (moto_turns, received_ids) = (moto_turns.clone(), received_ids.clone());
        pollers.spawn(async move {
            let outcome: Result<(), Failure> = async {
                while !done.load(Ordering::SeqCst) {
                    // Short polls: moto's long poll holds up its other
                    // callers (the consumers' own puts among them).
                    let at = Instant::now();
                    let got = sqs
                        .receive_message()
                        .queue_url(&queue_url)
                        .max_number_of_messages(batch)
                        .message_system_attribute_names(MessageSystemAttributeName::All)
                        .send()
                        .await?;
                    add(0, at);
                    let messages = got.messages();
                    if messages.is_empty() {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                    if let Ok(mut received) = received_ids.lock() {
                        received.extend(messages.iter().filter_map(|m| m.message_id()).map(str::to_string));
                    }
                    let records: Vec<serde_json::Value> = messages
                        .iter()
                        .map(|m| {
                            let attributes: serde_json::Map<String, serde_json::Value> = m
                                .attributes()
                                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), v.clone().into())).collect())
                                .unwrap_or_default();
                            json!({ "messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                                "body": m.body(), "attributes": attributes, "messageAttributes": {},
                                "md5OfBody": m.md5_of_body(), "eventSource": "aws:sqs",
                                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:burst", "awsRegion": "us-east-1" })
                        })
                        .collect();
                    let at = Instant::now();
                    let (_, answer) = instance.invoke_for(json!({ "Records": records })).await?;
                    add(1, at);
                    invocations.fetch_add(1, Ordering::SeqCst);
                    // A function error (no batch response) hands the whole
                    // batch back, as Lambda does.
                    let Some(failed) = answer["batchItemFailures"].as_array() else {
                        function_errors.fetch_add(1, Ordering::SeqCst);
                        handed_back.fetch_add(messages.len(), Ordering::SeqCst);
                        continue;
                    };
                    let failed: Vec<&str> =
                        failed.iter().filter_map(|x| x["itemIdentifier"].as_str()).collect();
                    handed_back.fetch_add(failed.len(), Ordering::SeqCst);
                    let settling: Vec<&aws_sdk_sqs::types::Message> =
                        messages.iter().filter(|m| !m.message_id().is_some_and(|id| failed.contains(&id))).collect();
                    let entries = settling
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .set_receipt_handle(m.receipt_handle().map(str::to_string))
                                .build()
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if !entries.is_empty() {
                        let at = Instant::now();
                        let deleted = {
                            let _turn = moto_turns.lock().await;
                            sqs.delete_message_batch().queue_url(&queue_url).set_entries(Some(entries)).send().await?
                        };
                        add(2, at);
                        // Only what the queue says it deleted has settled.
                        let gone = deleted
                            .successful()
                            .iter()
                            .filter_map(|d| d.id().parse::<usize>().ok())
                            .filter_map(|i| settling.get(i).and_then(|m| m.message_id()));
                        if let Ok(mut settled) = settled.lock() {
                            for id in gone {
                                if !settled.insert(id.to_string()) {
                                    settled_again.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        if let Ok(mut at) = last_delete.lock() {
                            *at = Instant::now();
                        }
                    }
                }
                Ok(())
            }
            .await;
            let (cpu, notable) = (instance.cpu_ms(), instance.notable());
            instance.stop().await;
            outcome.map(|()| (cpu, notable)).map_err(|e| e.to_string())
        });
    }
    // Done when every message is deleted or dead-lettered; or when the
    // queue has stood empty (nothing visible, nothing in flight) for a few
    // checks after the last send, so a message the queue lost cannot hold
    // the drain to its limit; bounded.
    let limit = Duration::from_secs(30 * 60);
    let mut empty_checks = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let dead = dead_letters(sqs, &dlq_url).await;
        let settled = settled.lock().map(|s| s.len()).unwrap_or_default();
        if settled + dead >= total {
            run.finished = true;
            break;
        }
        let (visible, in_flight) = queue_counts(sqs, &queue_url).await;
        empty_checks = if feeding.is_finished() && visible + in_flight == 0 {
            empty_checks + 1
        } else {
            0
        };
        if empty_checks >= 6 || started.elapsed() > limit || pollers.is_empty() {
            break;
        }
    }
    done.store(true, Ordering::SeqCst);
    if feeding.is_finished() {
        feeding.await??;
    } else {
        feeding.abort();
    }
    let end = last_delete
        .lock()
        .map(|t| *t)
        .unwrap_or_else(|_| Instant::now());
    run.drain_s = end.saturating_duration_since(started).as_secs_f64();
    while let Some(poller) = pollers.join_next().await {
        let (cpu, notable) = poller??;
        run.consumer_cpu_ms += cpu;
        run.notable.extend(notable);
    }
    run.function_errors = function_errors.load(Ordering::SeqCst);
    run.settled_again = settled_again.load(Ordering::SeqCst);
    run.lost_by_queue = match (sent_ids.lock(), received_ids.lock()) {
        (Ok(sent), Ok(received)) => sent.difference(&received).count(),
        _ => 0,
    };
    run.dead = dead_letters(sqs, &dlq_url).await;
    run.invocations = invocations.load(Ordering::SeqCst);
    run.spent = spent.lock().map(|s| *s).unwrap_or_default();
    run.handed_back = handed_back.load(Ordering::SeqCst);
    run.rate_limited = emulator.rate_limit_stats().0 - limited_before;
    let names: Vec<String> = emulator
        .boards()
        .into_iter()
        .map(|b| b.name)
        .filter(|n| n.starts_with(tag))
        .collect();
    run.boards = names.len();
    let made: std::collections::HashSet<&String> = names.iter().collect();
    run.distinct = made.len();
    let missing: Vec<String> = (0..total)
        .map(|n| format!("{tag}{n}"))
        .filter(|name| !made.contains(name))
        .collect();
    run.missing = missing.len();
    if !run.finished {
        // Say what the drain stopped without, not only how many.
        let shown: Vec<&str> = missing.iter().take(20).map(String::as_str).collect();
        eprintln!(
            "burst {tag}: the drain ended unsettled: {} of {total} settled or dead-lettered; \
             no board for {} events (first: {}); {} acknowledged messages never received",
            settled.lock().map(|s| s.len()).unwrap_or_default(),
            missing.len(),
            shown.join(", "),
            run.lost_by_queue,
        );
    }
    Ok(run)
}

/// Visible messages moto holds at most while the backlog lasts.
const FED: usize = 100;

/// Sends one batch; the ids of the messages the queue took.
async fn send_chunk(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    chunk: &[String],
) -> Result<Vec<String>, String> {
    let entries = chunk
        .iter()
        .enumerate()
        .map(|(i, b)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(b)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sent = sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
    if sent.failed().is_empty() {
        Ok(sent
            .successful()
            .iter()
            .map(|m| m.message_id().to_string())
            .collect())
    } else {
        Err("a message was not sent".into())
    }
}

async fn visible_messages(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    queue_count(sqs, queue_url).await
}

/// A queue's visible and in-flight messages.
async fn queue_counts(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (usize, usize) {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await;
    let count = |name: QueueAttributeName| {
        answer
            .as_ref()
            .ok()
            .and_then(|a| a.attributes().and_then(|m| m.get(&name).cloned()))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

async fn dead_letters(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> usize {
    queue_count(sqs, dlq_url).await
}

/// A queue's visible messages (`ApproximateNumberOfMessages`).
async fn queue_count(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await;
    attributes
        .ok()
        .and_then(|a| {
            a.attributes().and_then(|m| {
                m.get(&QueueAttributeName::ApproximateNumberOfMessages)
                    .cloned()
            })
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A bus of the burst's own for the consumer's outcomes, and a queue that
/// receives its `Miro Board Creation Failed` events (moto delivers a rule's
/// matches to an SQS target as EventBridge does).
async fn outcome_bus(
    config: &aws_config::SdkConfig,
    sqs: &aws_sdk_sqs::Client,
) -> Result<(String, String), Failure> {
    let events = aws_sdk_eventbridge::Client::new(config);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let bus = format!("burst-{id}");
    events.create_event_bus().name(&bus).send().await?;
    let queue = sqs
        .create_queue()
        .queue_name(format!("burst-failed-{id}"))
        .send()
        .await?;
    let url = queue.queue_url().ok_or("no queue url")?.to_string();
    let arn = queue_arn(sqs, &url).await?;
    events
        .put_rule()
        .name("failed")
        .event_bus_name(&bus)
        .event_pattern(json!({ "detail-type": [miro_connect::events::FAILED] }).to_string())
        .send()
        .await?;
    events
        .put_targets()
        .rule("failed")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("failed")
                .arn(arn)
                .build()?,
        )
        .send()
        .await?;
    Ok((bus, url))
}

/// Every failed outcome on the queue, by reason; the queue is left empty.
async fn failed_outcomes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<std::collections::BTreeMap<String, usize>, Failure> {
    let mut reasons = std::collections::BTreeMap::new();
    // Bounded: a burst's failures are far fewer than 10 x 2,000.
    for _ in 0..2_000 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await?;
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            let event: serde_json::Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
            let reason = event["detail"]["reason"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            *reasons.entry(reason).or_insert(0) += 1;
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
    Ok(reasons)
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, Failure> {
    Ok(sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or("no queue arn")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_floors() {
        let even = Shape::Even.counts(10_000, 1_000);
        assert!(even.iter().all(|n| *n == 10));
        assert_eq!(floor_seconds(&even), 0.0, "ten boards fit in one window");
        let hot = Shape::Hot.counts(10_000, 1_000);
        assert_eq!(hot.iter().sum::<usize>(), 10_000);
        assert_eq!(hot.iter().filter(|n| **n == 250).count(), 10);
        assert_eq!(floor_seconds(&hot), 60.0, "250 boards need a second window");
        let mut v: Vec<usize> = (0..100).collect();
        shuffle(&mut v, 7);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }
}

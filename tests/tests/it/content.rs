//! Boards that carry the app's own content: frames, notes, cards, texts and
//! connectors, laid out and made exactly once, through the HTTP handlers
//! and through events, against the emulator on DynamoDB Local.

use crate::events::{consumer, invoke, Bus};
use crate::support::{query_value, request, Reply, TestApp};
use lambda_http::http::{Method, StatusCode};
use miro_emulator::{BoardFault, ItemCallKind, ItemRecord, SECOND_TEAM_ID, TEAM_ID};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

/// A retro: 3 frames, 60 notes in them, 5 loose cards, 10 connectors.
fn retro_content() -> Value {
    let frames = ["Went well", "To improve", "Actions"];
    let colors = ["light_yellow", "light_green", "light_pink"];
    let mut items: Vec<Value> = frames
        .iter()
        .enumerate()
        .map(|(i, title)| json!({ "type": "frame", "ref": format!("f{i}"), "title": title }))
        .collect();
    for i in 0..60 {
        items.push(json!({
            "type": "sticky_note",
            "ref": format!("n{i}"),
            "text": format!("Note {i}"),
            "color": colors[i % 3],
            "frame": format!("f{}", i % 3),
        }));
    }
    for i in 0..5 {
        items.push(json!({
            "type": "card",
            "ref": format!("c{i}"),
            "title": format!("Ticket {i}"),
            "description": "From the tracker",
        }));
    }
    let connectors: Vec<Value> = (0..10)
        .map(|i| json!({ "from": format!("n{}", 2 * i), "to": format!("n{}", 2 * i + 1), "caption": "then" }))
        .collect();
    json!({ "name": "Sprint 42 retro", "items": items, "connectors": connectors })
}

const RETRO_ITEMS: usize = 68;
const RETRO_CONNECTORS: usize = 10;

async fn post_keyed(
    app: &TestApp,
    user: &str,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> Reply {
    let text = body.to_string();
    let mut req = request(
        Method::POST,
        path,
        Some(user),
        Some(&text),
        "application/json",
    );
    if let Some(key) = key {
        req.headers_mut()
            .insert("idempotency-key", key.parse().expect("header"));
    }
    app.send(req, Some(user)).await
}

fn calls_of(app: &TestApp, kind: fn(&ItemCallKind) -> bool) -> usize {
    app.emulator
        .item_calls()
        .iter()
        .filter(|c| kind(&c.kind))
        .count()
}

fn overlap(a: &ItemRecord, b: &ItemRecord) -> bool {
    let (al, at, ar, ab) = a.bounds;
    let (bl, bt, br, bb) = b.bounds;
    al < br && bl < ar && at < bb && bt < ab
}

/// Every item of the request on the board once, children inside their
/// frames, and nothing overlapping but a frame and what it holds.
fn assert_board_holds_the_retro(app: &TestApp, board_id: &str, answer: &Value) {
    let items = app.emulator.items(board_id);
    assert_eq!(items.len(), RETRO_ITEMS, "each item once");
    let refs = answer["items"]["refs"].as_object().expect("refs");
    assert_eq!(refs.len(), RETRO_ITEMS);
    let ids: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    assert!(refs
        .values()
        .all(|id| ids.contains(id.as_str().unwrap_or(""))));
    let by_ref = |r: &str| {
        let id = refs[r].as_str().expect("id");
        items
            .iter()
            .find(|i| i.id == id)
            .expect("item on the board")
    };
    for i in 0..60 {
        let note = by_ref(&format!("n{i}"));
        let frame = by_ref(&format!("f{}", i % 3));
        assert_eq!(note.parent.as_deref(), Some(frame.id.as_str()));
        let (l, t, r, b) = note.bounds;
        let (fl, ft, fr, fb) = frame.bounds;
        assert!(
            l >= fl && t >= ft && r <= fr && b <= fb,
            "n{i} inside its frame"
        );
        assert_eq!(note.data["content"], format!("Note {i}"));
    }
    for (i, a) in items.iter().enumerate() {
        for b in &items[i + 1..] {
            let nested = a.parent.as_deref() == Some(b.id.as_str())
                || b.parent.as_deref() == Some(a.id.as_str());
            assert!(nested || !overlap(a, b), "{} and {} overlap", a.id, b.id);
        }
    }
    let connectors = app.emulator.connectors(board_id);
    assert_eq!(connectors.len(), RETRO_CONNECTORS, "each connector once");
    for i in 0..10 {
        let (from, to) = (
            by_ref(&format!("n{}", 2 * i)),
            by_ref(&format!("n{}", 2 * i + 1)),
        );
        assert_eq!(
            connectors
                .iter()
                .filter(|c| c.start == from.id && c.end == to.id)
                .count(),
            1
        );
    }
    assert_eq!(
        answer["items"]["created"],
        RETRO_ITEMS + RETRO_CONNECTORS,
        "{answer}"
    );
    assert!(answer["items"].get("unknown").is_none(), "{answer}");
}

fn is_frame(k: &ItemCallKind) -> bool {
    *k == ItemCallKind::Frame
}
fn is_bulk(k: &ItemCallKind) -> bool {
    matches!(k, ItemCallKind::Bulk { .. })
}
fn is_connector(k: &ItemCallKind) -> bool {
    *k == ItemCallKind::Connector
}
fn is_listing(k: &ItemCallKind) -> bool {
    matches!(k, ItemCallKind::ListItems | ItemCallKind::ListConnectors)
}

#[tokio::test]
async fn a_board_with_frames_notes_cards_and_connectors_is_made_in_the_expected_calls() {
    let app = TestApp::new().await;
    app.connect("ada").await;
    let reply = post_keyed(&app, "ada", "/boards", &retro_content(), None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let answer = reply.json();
    let board_id = answer["board"]["id"].as_str().expect("id").to_string();
    assert_board_holds_the_retro(&app, &board_id, &answer);

    // The fewest calls Miro allows: frames one by one, 65 items in bulk
    // calls of at most 20, each connector alone; nothing read back.
    assert_eq!(calls_of(&app, is_frame), 3);
    let bulk: Vec<usize> = app
        .emulator
        .item_calls()
        .iter()
        .filter_map(|c| match c.kind {
            ItemCallKind::Bulk { items } => Some(items),
            _ => None,
        })
        .collect();
    assert_eq!(bulk.len(), 4, "{bulk:?}");
    assert!(bulk.iter().all(|n| *n <= 20));
    assert_eq!(bulk.iter().sum::<usize>(), 65);
    assert_eq!(calls_of(&app, is_connector), 10);
    assert_eq!(calls_of(&app, is_listing), 0);
    assert!(app
        .emulator
        .item_calls()
        .iter()
        .all(|c| c.board_id == board_id));
    // Miro's view link is the emulator's drawing of the board.
    let link = answer["board"]["view_link"].as_str().expect("view link");
    assert!(link.starts_with(app.emulator.base_url()), "{link}");
}

#[tokio::test]
async fn an_invalid_item_is_a_422_naming_it_and_makes_no_board() {
    let app = TestApp::new().await;
    app.connect("bea").await;
    let note = |extra: Value| {
        let mut n = json!({ "type": "sticky_note", "ref": "n", "text": "hi" });
        n.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        n
    };
    let cases = [
        (
            json!({ "items": [{ "type": "text", "text": "a" }, note(json!({ "color": "mauve" }))] }),
            "items[1].color",
        ),
        (
            json!({ "items": [note(json!({ "frame": "nowhere" }))] }),
            "items[0].frame",
        ),
        (
            json!({
                "items": [{ "type": "frame", "ref": "f", "title": "F" }, note(json!({}))],
                "connectors": [{ "from": "n", "to": "f" }],
            }),
            "connectors[0].to",
        ),
        (
            json!({ "items": [note(json!({})), note(json!({}))] }),
            "items[1].ref",
        ),
    ];
    for (body, field) in cases {
        let reply = post_keyed(&app, "bea", "/boards", &body, Some("k-invalid")).await;
        reply.assert_client_error(422, "invalid_item");
        assert_eq!(reply.json()["field"], field, "{}", reply.body);
    }
    assert!(app.emulator.boards().is_empty(), "no board");
    assert!(app.emulator.item_calls().is_empty(), "no content call");
    // The key was never spent: a good request may use it.
    let good = json!({ "items": [note(json!({}))] });
    let reply = post_keyed(&app, "bea", "/boards", &good, Some("k-invalid")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn an_item_miro_refuses_deletes_the_new_board_and_is_a_422() {
    let app = TestApp::new().await;
    app.connect("ben").await;
    // Miro refuses the first bulk call (our checks let it through).
    app.emulator.inject_item_faults(
        ItemCallKind::Bulk { items: 0 },
        &[BoardFault::FailBefore(400)],
    );
    let reply = post_keyed(&app, "ben", "/boards", &retro_content(), Some("refused")).await;
    reply.assert_client_error(422, "invalid_item");
    assert_eq!(app.emulator.boards().len(), 1);
    let board_id = app.emulator.boards()[0].id.clone();
    assert!(app.emulator.board_deleted(&board_id), "all or nothing");
    assert_eq!(
        calls_of(&app, |k| *k == ItemCallKind::DeleteBoard),
        1,
        "one deletion, not one per item"
    );
    // Nothing is left under the key: the same request makes the board.
    let retry = post_keyed(&app, "ben", "/boards", &retro_content(), Some("refused")).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert_ne!(retry.json()["board"]["id"], board_id.as_str());
}

#[tokio::test]
async fn text_is_escaped_never_markup() {
    let app = TestApp::new().await;
    app.connect("cy").await;
    let hostile = "<script>alert(1)</script> & \"quotes\"\nline two";
    let body = json!({
        "items": [
            { "type": "sticky_note", "ref": "n", "text": hostile },
            { "type": "card", "ref": "c", "title": "<b>bold?</b>", "description": "<img src=x onerror=alert(1)>" },
            { "type": "frame", "ref": "f", "title": "<i>frame</i>" },
        ],
    });
    let reply = post_keyed(&app, "cy", "/boards", &body, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let board_id = reply.json()["board"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let items = app.emulator.items(&board_id);
    let of = |kind: &str| items.iter().find(|i| i.kind == kind).expect("item");
    assert_eq!(
        of("sticky_note").data["content"],
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;<br>line two"
    );
    assert_eq!(of("card").data["title"], "&lt;b&gt;bold?&lt;/b&gt;");
    assert_eq!(
        of("card").data["description"],
        "&lt;img src=x onerror=alert(1)&gt;"
    );
    assert_eq!(of("frame").data["title"], "&lt;i&gt;frame&lt;/i&gt;");
    // The drawn board shows the text as text.
    let page = reqwest::get(format!("{}/app/board/{board_id}", app.emulator.base_url()))
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert!(!page.contains("<script"), "no markup from the app's data");
    assert!(page.contains("&lt;script&gt;alert(1)"), "shown as text");
}

#[tokio::test]
async fn a_lost_answer_on_the_third_bulk_call_then_a_retry_makes_every_item_once() {
    let app = TestApp::new().await;
    app.connect("dee").await;
    // The third bulk call lands at Miro and its answer is lost; reading the
    // board back fails too, so this request cannot settle it.
    app.emulator.inject_item_faults(
        ItemCallKind::Bulk { items: 0 },
        &[BoardFault::Pass, BoardFault::Pass, BoardFault::DropAfter],
    );
    app.emulator
        .inject_item_faults(ItemCallKind::ListItems, &[BoardFault::FailBefore(503)]);
    let first = post_keyed(&app, "dee", "/boards", &retro_content(), Some("retro-lost")).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.body
    );
    assert_eq!(app.emulator.boards().len(), 1);
    let board_id = app.emulator.boards()[0].id.clone();
    assert_eq!(calls_of(&app, is_bulk), 4);

    // The retry reads the board before sending anything: the lost call's
    // items are there and adopted, the rest is made once.
    let retry = post_keyed(&app, "dee", "/boards", &retro_content(), Some("retro-lost")).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let answer = retry.json();
    assert_eq!(answer["board"]["id"], board_id.as_str(), "the same board");
    assert_eq!(app.emulator.boards().len(), 1, "one board");
    assert_board_holds_the_retro(&app, &board_id, &answer);
    assert!(calls_of(&app, is_listing) > 0, "the board was read back");
    assert_eq!(calls_of(&app, is_bulk), 4, "no bulk call sent again");

    // And a third time: the first answer, without calling Miro.
    let calls = app.emulator.item_calls().len();
    let replay = post_keyed(&app, "dee", "/boards", &retro_content(), Some("retro-lost")).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.headers["idempotency-replayed"], "true");
    assert_eq!(replay.json()["items"], answer["items"]);
    assert_eq!(app.emulator.item_calls().len(), calls);
}

#[tokio::test]
async fn a_lost_answer_is_settled_by_reading_the_board_within_the_request() {
    let app = TestApp::new().await;
    app.connect("eli").await;
    app.emulator.inject_item_faults(
        ItemCallKind::Bulk { items: 0 },
        &[BoardFault::Pass, BoardFault::FailAfter(502)],
    );
    app.emulator.inject_item_faults(
        ItemCallKind::Connector,
        &[BoardFault::Pass, BoardFault::DropAfter],
    );
    app.emulator
        .inject_item_faults(ItemCallKind::Frame, &[BoardFault::FailAfter(500)]);
    let reply = post_keyed(&app, "eli", "/boards", &retro_content(), None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let answer = reply.json();
    let board_id = answer["board"]["id"].as_str().expect("id").to_string();
    assert_board_holds_the_retro(&app, &board_id, &answer);
    assert_eq!(
        calls_of(&app, is_frame),
        3,
        "the lost frame was not sent again"
    );
    assert_eq!(calls_of(&app, is_bulk), 4);
    assert_eq!(calls_of(&app, is_connector), 10);
}

#[tokio::test]
async fn an_item_already_on_the_board_is_never_taken_for_the_apps() {
    let app = TestApp::new().await;
    app.connect("fay").await;
    let board = post_keyed(&app, "fay", "/boards", &json!({ "name": "Shared" }), None).await;
    let board_id = board.json()["board"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/boards/{board_id}/items");
    let body =
        json!({ "items": [{ "type": "sticky_note", "ref": "n", "text": "Same", "x": 0, "y": 0 }] });
    // The app's own earlier request made this very note.
    let earlier = post_keyed(&app, "fay", &path, &body, Some("same-1")).await;
    assert_eq!(earlier.status, StatusCode::OK, "{}", earlier.body);
    let earlier_id = earlier.json()["items"]["refs"]["n"].clone();

    // A second request for the same note: its call lands, the answer is
    // lost, and the board cannot be read back this time.
    app.emulator.inject_item_faults(
        ItemCallKind::Bulk { items: 0 },
        &[BoardFault::FailAfter(503)],
    );
    app.emulator.inject_item_faults(
        ItemCallKind::ListItems,
        &[BoardFault::Pass, BoardFault::FailBefore(503)],
    );
    let lost = post_keyed(&app, "fay", &path, &body, Some("same-2")).await;
    assert_eq!(
        lost.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        lost.body
    );
    // Meanwhile someone else puts the same note at the same place.
    let foreign = app
        .emulator
        .add_foreign_item(&board_id, "sticky_note", "Same");

    let retry = post_keyed(&app, "fay", &path, &body, Some("same-2")).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    let answer = retry.json();
    let adopted = answer["items"]["refs"]["n"].clone();
    assert_eq!(answer["items"]["created"], 1, "{answer}");
    assert_ne!(adopted, earlier_id, "not the earlier request's note");
    assert_ne!(adopted, json!(foreign), "not someone else's note");
    assert_eq!(calls_of(&app, is_bulk), 2, "never sent blindly");
    assert_eq!(app.emulator.items(&board_id).len(), 3);
}

#[tokio::test]
async fn items_go_on_an_existing_board_once_per_key() {
    let app = TestApp::new().await;
    app.connect("gus").await;
    let board = post_keyed(&app, "gus", "/boards", &json!({ "name": "Plan" }), None).await;
    let board_id = board.json()["board"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let body = json!({
        "items": [
            { "type": "text", "ref": "title", "text": "Plan" },
            { "type": "shape", "ref": "box", "text": "Step 1", "shape": "round_rectangle", "color": "#ffcc00" },
        ],
        "connectors": [{ "from": "title", "to": "box", "shape": "elbowed" }],
    });
    let path = format!("/boards/{board_id}/items");
    let reply = post_keyed(&app, "gus", &path, &body, Some("plan-1")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["board"], json!({ "id": board_id }));
    assert_eq!(answer["items"]["created"], 3);
    assert_eq!(app.emulator.items(&board_id).len(), 2);
    assert_eq!(app.emulator.connectors(&board_id).len(), 1);
    let again = post_keyed(&app, "gus", &path, &body, Some("plan-1")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.headers["idempotency-replayed"], "true");
    assert_eq!(again.json(), answer);
    assert_eq!(app.emulator.items(&board_id).len(), 2, "nothing twice");
}

#[tokio::test]
async fn a_board_of_another_team_is_a_404_that_makes_nothing() {
    let app = TestApp::new().await;
    app.connect("hal").await;
    let elsewhere = app
        .emulator
        .add_template(SECOND_TEAM_ID, "Their board", "theirs");
    let hidden = app
        .emulator
        .add_hidden_board(TEAM_ID, "Not shared", "private");
    let body = json!({ "items": [{ "type": "sticky_note", "text": "hi" }] });
    for board in [elsewhere.as_str(), hidden.as_str(), "uXjVNoSuchBoard="] {
        let reply = post_keyed(
            &app,
            "hal",
            &format!("/boards/{board}/items"),
            &body,
            Some(board),
        )
        .await;
        reply.assert_client_error(404, "board_not_found");
    }
    assert!(app.emulator.items(&elsewhere).is_empty());
    assert!(app.emulator.items(&hidden).is_empty());
    assert_eq!(calls_of(&app, is_bulk) + calls_of(&app, is_frame), 0);
}

#[tokio::test]
async fn an_event_delivered_three_times_makes_every_item_once() {
    let app = TestApp::new().await;
    app.connect("ivy").await;
    let bus = Bus::new().await;
    let consumer = consumer(&app, &bus, &app.settings).await;
    let mut board = retro_content();
    board["name"] = json!("Event retro");
    bus.request_board(json!({ "user_id": "ivy", "board": board, "idempotency_key": "retro-ev" }))
        .await;
    let message = bus.requests(1).await.remove(0);
    // The first delivery loses the third bulk call's answer, and reads of the
    // board fail for as long as it lasts: it hands the message back.
    app.emulator.inject_item_faults(
        ItemCallKind::Bulk { items: 0 },
        &[BoardFault::Pass, BoardFault::Pass, BoardFault::DropAfter],
    );
    app.emulator
        .inject_item_faults(ItemCallKind::ListItems, &[BoardFault::FailBefore(503); 60]);
    assert_eq!(invoke(&consumer, vec![message.clone()], 4).await.len(), 1);
    app.emulator.clear_item_faults();
    for _ in 0..2 {
        assert!(invoke(&consumer, vec![message.clone()], 30)
            .await
            .is_empty());
    }
    assert_eq!(app.emulator.boards().len(), 1, "one board");
    let board_id = app.emulator.boards()[0].id.clone();
    assert_eq!(
        app.emulator.items(&board_id).len(),
        RETRO_ITEMS,
        "each item once"
    );
    assert_eq!(app.emulator.connectors(&board_id).len(), RETRO_CONNECTORS);
    let (created, failed) = bus.outcomes(2).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(created.iter().all(|c| c.board_id == board_id));
    let items = created[0].items.as_ref().expect("the content's outcome");
    assert_eq!(items.created, RETRO_ITEMS + RETRO_CONNECTORS);
    assert_eq!(items.refs.len(), RETRO_ITEMS);
}

#[tokio::test]
async fn a_process_killed_between_two_bulk_calls_is_finished_by_a_retry() {
    let app = TestApp::new().await;
    app.connect("jo").await;
    // Two bulk calls land and their answers never come in time.
    app.emulator.inject_item_faults(
        ItemCallKind::Bulk { items: 0 },
        &[
            BoardFault::Pass,
            BoardFault::SlowAfter(60_000),
            BoardFault::Pass,
            BoardFault::SlowAfter(60_000),
        ],
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_board-burst"))
        .envs(app.lambda_env())
        .env("BURST_USER", "jo")
        .env("BURST_COUNT", "1")
        .env("BURST_BODY", retro_content().to_string())
        .env("BURST_KEY", "retro-kill")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn board-burst");
    let on_board = || {
        app.emulator
            .boards()
            .first()
            .map_or(0, |b| app.emulator.items(&b.id).len())
    };
    for _ in 0..400 {
        if on_board() == RETRO_ITEMS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(on_board(), RETRO_ITEMS, "the child sent every bulk call");
    child.kill().await.expect("kill the process");
    assert_eq!(
        calls_of(&app, is_connector),
        0,
        "killed before the connectors"
    );

    app.clock.advance(15 * 60 + 1);
    let done = post_keyed(&app, "jo", "/boards", &retro_content(), Some("retro-kill")).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    let answer = done.json();
    assert_eq!(app.emulator.boards().len(), 1, "one board");
    let board_id = answer["board"]["id"].as_str().expect("id").to_string();
    assert_board_holds_the_retro(&app, &board_id, &answer);
    assert_eq!(calls_of(&app, is_bulk), 4, "no bulk call sent twice");
}

#[tokio::test]
async fn the_key_survives_the_consent_and_a_repeat_replays_the_board() {
    let app = TestApp::new().await;
    let template = app
        .emulator
        .add_template(TEAM_ID, "Retro template", "retro-v1");
    let body = json!({
        "template_board_id": template,
        "members": [{ "email": "pat@example.com", "role": "editor" }],
        "items": [{ "type": "sticky_note", "ref": "n", "text": "Welcome" }],
    });
    let first = post_keyed(&app, "kai", "/boards", &body, Some("first-board")).await;
    first.assert_client_error(401, "miro_authorization_required");
    let authorize_url = first.json()["authorize_url"]
        .as_str()
        .expect("url")
        .to_string();
    let query = app.consent(&authorize_url, true).await;
    let back = app.callback(&query).await;
    let completion = query_value(&back.location(), "miro_authorization").expect("completion");
    let done = app.complete("kai", &completion).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let made = done.json();
    let board_id = made["board"]["id"].as_str().expect("board").to_string();
    assert_eq!(made["items"]["created"], 1, "{made}");

    let repeat = post_keyed(&app, "kai", "/boards", &body, Some("first-board")).await;
    assert_eq!(repeat.status, StatusCode::CREATED, "{}", repeat.body);
    assert_eq!(repeat.headers["idempotency-replayed"], "true");
    assert_eq!(repeat.json()["board"]["id"], board_id.as_str());
    let copies = app
        .emulator
        .boards()
        .into_iter()
        .filter(|b| b.copied_from.is_some())
        .count();
    assert_eq!(copies, 1, "one board copied");
    assert_eq!(
        app.emulator.member_calls().len(),
        1,
        "the invitee emailed once"
    );
    assert_eq!(app.emulator.items(&board_id).len(), 1);
}

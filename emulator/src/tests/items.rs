//! Board content over HTTP: bulk items, frames, connectors, listings,
//! deletion and the drawn board.

use super::{access_in, call, client, emulator, post, tokens};
use crate::*;
use reqwest::Method;
use serde_json::{json, Value};

/// A board made by the Miro user in the first team: (token, board id).
async fn board(emu: &Emulator) -> (String, String) {
    let access = access_in(emu, TEAM_ID).await;
    let (status, board) = post(emu, "/v2/boards", &access, json!({ "name": "Items" })).await;
    assert_eq!(status, 201, "{board}");
    let id = board["id"].as_str().expect("id").to_string();
    (access, id)
}

async fn bulk(emu: &Emulator, access: &str, board: &str, items: Value) -> (u16, Value) {
    post(
        emu,
        &format!("/v2/boards/{board}/items/bulk"),
        access,
        items,
    )
    .await
}

async fn get(emu: &Emulator, access: &str, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}{path}", emu.base_url()))
        .bearer_auth(access)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn stickies(n: usize) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| json!({ "type": "sticky_note", "data": { "content": format!("note {i}") } }))
        .collect();
    Value::Array(list)
}

async fn frame(emu: &Emulator, access: &str, board: &str, body: Value) -> (u16, Value) {
    post(emu, &format!("/v2/boards/{board}/frames"), access, body).await
}

#[tokio::test]
async fn a_bulk_call_takes_1_to_20_items_all_or_nothing() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;

    let (status, body) = bulk(&emu, &access, &id, stickies(20)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["type"], "bulk-list");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 20);
    assert_eq!(data[7]["data"]["content"], "note 7", "in the order sent");
    assert_eq!(data[0]["type"], "sticky_note");
    assert_eq!(
        data[0]["geometry"],
        json!({ "width": 199.0, "height": 228.0 })
    );
    assert_eq!(data[0]["position"]["relativeTo"], "canvas_center");
    assert_eq!(data[0]["createdBy"]["id"], MIRO_USER_ID);
    assert!(data.iter().all(|i| i["id"].is_string()));
    assert_eq!(emu.items(&id).len(), 20);

    for refused in [stickies(21), json!([]), json!({ "type": "sticky_note" })] {
        let (status, body) = bulk(&emu, &access, &id, refused).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalidParameters"))
        );
    }

    // One bad item (index 3): the 400 names it, and nothing is created.
    let mut items = stickies(5);
    items[3]["style"] = json!({ "fillColor": "#ff0000" });
    let (status, body) = bulk(&emu, &access, &id, items).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalidParameters");
    assert_eq!(body["type"], "error");
    assert_eq!(body["context"]["fields"][0]["field"], "3.style.fillColor");
    assert!(body["context"]["fields"][0]["message"].is_string());
    assert_eq!(emu.items(&id).len(), 20, "transactional");

    // A frame has no bulk shape.
    let mut items = stickies(2);
    items[1] = json!({ "type": "frame", "data": { "title": "F" } });
    let (status, body) = bulk(&emu, &access, &id, items).await;
    assert_eq!(status, 400);
    assert_eq!(body["context"]["fields"][0]["field"], "1.type");

    // Markup outside the subset, unknown keys: refused by field.
    for (item, field) in [
        (
            json!({ "type": "text", "data": { "content": "<script>alert(1)</script>" } }),
            "0.data.content",
        ),
        (
            json!({ "type": "sticky_note", "data": { "text": "x" } }),
            "0.data.text",
        ),
        (json!({ "type": "shape", "colour": "red" }), "0.colour"),
    ] {
        let (status, body) = bulk(&emu, &access, &id, json!([item])).await;
        assert_eq!(status, 400);
        assert_eq!(body["context"]["fields"][0]["field"], field);
    }
    assert_eq!(emu.items(&id).len(), 20);
    let calls = emu.item_calls();
    assert_eq!(calls[0].kind, ItemCallKind::Bulk { items: 20 });
    assert_eq!(
        (calls[0].board_id.as_str(), calls[0].status),
        (id.as_str(), 201)
    );
    assert_eq!(calls[1].kind, ItemCallKind::Bulk { items: 21 });
    assert_eq!(calls[1].status, 400);
}

#[tokio::test]
async fn children_are_placed_from_their_frames_top_left_corner() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;
    let (status, f) = frame(
        &emu,
        &access,
        &id,
        json!({
            "data": { "title": "Sprint <b>12</b>", "format": "custom", "type": "freeform" },
            "position": { "x": 1000, "y": 500 },
            "geometry": { "width": 800, "height": 600 },
            "style": { "fillColor": "#eeeeee" },
        }),
    )
    .await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["type"], "frame");
    let frame_id = f["id"].as_str().expect("id").to_string();
    let items = json!([
        { "type": "sticky_note", "position": { "x": 100, "y": 150 }, "geometry": { "width": 100 }, "parent": { "id": frame_id } },
        { "type": "card", "data": { "title": "Card" }, "position": { "x": 400, "y": 300 }, "parent": { "id": frame_id } },
        { "type": "shape", "data": { "shape": "circle" }, "position": { "x": -50, "y": 20 }, "geometry": { "width": 40, "height": 60 } },
    ]);
    let (status, body) = bulk(&emu, &access, &id, items).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"][0]["parent"]["id"], frame_id.as_str());
    assert_eq!(body["data"][0]["position"]["relativeTo"], "parent_top_left");
    assert!(body["data"][2].get("parent").is_none());

    let on_board = emu.items(&id);
    assert_eq!(on_board.len(), 4);
    let (fl, ft, fr, fb) = on_board[0].bounds;
    assert_eq!((fl, ft, fr, fb), (600.0, 200.0, 1400.0, 800.0));
    let sticky = &on_board[1];
    assert_eq!(sticky.parent.as_deref(), Some(frame_id.as_str()));
    assert_eq!(sticky.position, Some((100.0, 150.0)), "as sent");
    let (w, h) = sticky.geometry;
    assert!((w - 100.0).abs() < 1e-9 && (h - 100.0 * 228.0 / 199.0).abs() < 1e-9);
    assert_eq!(sticky.center(), (700.0, 350.0));
    for child in &on_board[1..3] {
        let (l, t, r, b) = child.bounds;
        assert!(
            l >= fl && t >= ft && r <= fr && b <= fb,
            "{child:?} inside the frame"
        );
    }
    assert_eq!(on_board[3].bounds, (-70.0, -10.0, -30.0, 50.0), "top level");

    // A parent must be a frame of this board.
    let sticky_id = sticky.id.clone();
    for parent in [sticky_id.as_str(), "3458764600299999999"] {
        let mut items = stickies(2);
        items[1]["parent"] = json!({ "id": parent });
        let (status, body) = bulk(&emu, &access, &id, items).await;
        assert_eq!(status, 400);
        assert_eq!(body["context"]["fields"][0]["field"], "1.parent.id");
    }
    // Frames: one a call, with their own rules.
    let (status, body) = frame(
        &emu,
        &access,
        &id,
        json!({ "data": { "title": "No size" } }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["context"]["fields"][0]["field"], "geometry.width");
    assert_eq!(emu.items(&id).len(), 4);
}

#[tokio::test]
async fn connectors_join_two_items_of_the_board_and_no_frame() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;
    let (_, f) = frame(
        &emu,
        &access,
        &id,
        json!({ "geometry": { "width": 100, "height": 100 } }),
    )
    .await;
    let frame_id = f["id"].as_str().expect("id").to_string();
    let (_, made) = bulk(&emu, &access, &id, stickies(2)).await;
    let a = made["data"][0]["id"].as_str().expect("id").to_string();
    let b = made["data"][1]["id"].as_str().expect("id").to_string();
    let path = format!("/v2/boards/{id}/connectors");
    let join = |from: &str, to: &str| json!({ "startItem": { "id": from }, "endItem": { "id": to }, "shape": "elbowed" });

    let mut body = join(&a, &b);
    body["captions"] = json!([{ "content": "depends on" }]);
    let (status, c) = post(&emu, &path, &access, body).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["type"], "connector");
    assert_eq!(c["startItem"]["id"], a.as_str());
    assert_eq!(c["endItem"]["id"], b.as_str());
    assert_eq!(c["shape"], "elbowed");
    assert_eq!(c["captions"], json!([{ "content": "depends on" }]));

    for (body, field) in [
        (join(&a, &frame_id), "endItem.id"),
        (join(&frame_id, &b), "startItem.id"),
        (join(&a, &a), "endItem.id"),
        (join(&a, "3458764600299999999"), "endItem.id"),
    ] {
        let (status, refused) = post(&emu, &path, &access, body).await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["context"]["fields"][0]["field"], field);
    }
    let connectors = emu.connectors(&id);
    assert_eq!(connectors.len(), 1);
    assert_eq!(
        (connectors[0].start.as_str(), connectors[0].end.as_str()),
        (a.as_str(), b.as_str())
    );
    assert_eq!(connectors[0].captions, ["depends on"]);

    let (status, listed) = get(&emu, &access, &path).await;
    assert_eq!(status, 200);
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["data"][0]["id"], c["id"]);
    assert!(listed.get("cursor").is_none());
    let (_, items) = get(&emu, &access, &format!("/v2/boards/{id}/items?limit=50")).await;
    assert_eq!(items["total"], 3, "connectors are not items");
}

#[tokio::test]
async fn listings_page_with_cursors() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;
    for _ in 0..2 {
        assert_eq!(bulk(&emu, &access, &id, stickies(20)).await.0, 201);
    }
    let texts: Vec<Value> = (0..5)
        .map(|i| json!({ "type": "text", "data": { "content": format!("t{i}") } }))
        .collect();
    assert_eq!(bulk(&emu, &access, &id, Value::Array(texts)).await.0, 201);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v2/boards/{id}/items?limit=10&cursor={c}"),
            None => format!("/v2/boards/{id}/items?limit=10"),
        };
        let (status, page) = get(&emu, &access, &path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        assert_eq!(page["type"], "cursor-list");
        assert_eq!(page["total"], 45);
        assert_eq!(page["limit"], 10);
        let data = page["data"].as_array().expect("data");
        assert_eq!(page["size"], data.len());
        seen.extend(
            data.iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_string()),
        );
        match page.get("cursor").and_then(Value::as_str) {
            Some(c) => {
                assert!(page["links"]["next"].is_string());
                cursor = Some(c.to_string());
            }
            None => break,
        }
        assert!(pages < 10, "the cursor ends");
    }
    assert_eq!(pages, 5);
    let all: Vec<String> = emu.items(&id).into_iter().map(|i| i.id).collect();
    assert_eq!(seen, all, "every item once, in creation order");

    let (_, texts) = get(&emu, &access, &format!("/v2/boards/{id}/items?type=text")).await;
    assert_eq!(
        (texts["total"].as_u64(), texts["size"].as_u64()),
        (Some(5), Some(5))
    );
    assert!(texts.get("cursor").is_none());
    let (_, default) = get(&emu, &access, &format!("/v2/boards/{id}/items")).await;
    assert_eq!(default["limit"], 10, "the default limit");
    for query in [
        "limit=9",
        "limit=51",
        "limit=ten",
        "type=connector",
        "cursor=nope",
    ] {
        let (status, body) = get(&emu, &access, &format!("/v2/boards/{id}/items?{query}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalidParameters")),
            "{query}"
        );
    }
    let lists = emu
        .item_calls()
        .iter()
        .filter(|c| c.kind == ItemCallKind::ListItems)
        .count();
    assert_eq!(lists, 12);
}

#[tokio::test]
async fn item_faults_are_queued_per_kind() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;
    emu.inject_item_faults(
        ItemCallKind::Bulk { items: 0 },
        &[
            BoardFault::DropAfter,
            BoardFault::FailBefore(503),
            BoardFault::FailAfter(500),
        ],
    );
    let dropped = client()
        .post(format!("{}/v2/boards/{id}/items/bulk", emu.base_url()))
        .bearer_auth(&access)
        .json(&stickies(3))
        .send()
        .await;
    // The connection ends before the head or mid-body: never a whole answer.
    match dropped {
        Ok(r) => {
            assert_eq!(r.status(), 201);
            assert!(r.bytes().await.is_err(), "the answer breaks off");
        }
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    assert_eq!(emu.items(&id).len(), 3, "DropAfter creates the items");
    assert_eq!(bulk(&emu, &access, &id, stickies(1)).await.0, 503);
    assert_eq!(emu.items(&id).len(), 3, "FailBefore creates nothing");
    assert_eq!(bulk(&emu, &access, &id, stickies(1)).await.0, 500);
    assert_eq!(emu.items(&id).len(), 4, "FailAfter creates");
    let statuses: Vec<u16> = emu.item_calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [201, 503, 500]);

    // The listing's queue is its own (and shared by both listings).
    emu.inject_item_faults(
        ItemCallKind::ListItems,
        &[BoardFault::Pass, BoardFault::FailBefore(502)],
    );
    assert_eq!(bulk(&emu, &access, &id, stickies(1)).await.0, 201);
    assert_eq!(
        get(&emu, &access, &format!("/v2/boards/{id}/items"))
            .await
            .0,
        200
    );
    assert_eq!(
        get(&emu, &access, &format!("/v2/boards/{id}/connectors"))
            .await
            .0,
        502
    );
    assert_eq!(
        get(&emu, &access, &format!("/v2/boards/{id}/items"))
            .await
            .0,
        200
    );
    emu.inject_item_faults(ItemCallKind::Frame, &[BoardFault::FailAfter(504)]);
    let geometry = json!({ "geometry": { "width": 10, "height": 10 } });
    assert_eq!(frame(&emu, &access, &id, geometry.clone()).await.0, 504);
    assert_eq!(frame(&emu, &access, &id, geometry).await.0, 201);
    assert_eq!(
        emu.items(&id).iter().filter(|i| i.kind == "frame").count(),
        2
    );
}

#[tokio::test]
async fn only_a_reachable_board_takes_items() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;
    let second = access_in(&emu, SECOND_TEAM_ID).await;
    let (status, body) = bulk(&emu, &second, &id, stickies(1)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("applicationNotInstalled"))
    );
    let (status, body) = get(&emu, &second, &format!("/v2/boards/{id}/items")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("applicationNotInstalled"))
    );

    let attacker = tokens(&emu, &[], "miro_user=attacker").await["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let hidden = emu.add_hidden_board(TEAM_ID, "Hidden", "h");
    for (token, board) in [
        (&attacker, id.as_str()),
        (&access, hidden.as_str()),
        (&access, "uXnope="),
    ] {
        let (status, body) = bulk(&emu, token, board, stickies(1)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("notFound")),
            "{board}"
        );
    }
    let template = emu.add_template(TEAM_ID, "T", "t");
    assert_eq!(
        bulk(&emu, &access, &template, stickies(2)).await.0,
        201,
        "a template of the team"
    );
    assert!(emu.items(&id).is_empty());

    // Someone else writes the board: seen by the listing, not charged, not recorded.
    let calls = emu.item_calls().len();
    let foreign = emu.add_foreign_item(&id, "sticky_note", "theirs");
    assert_eq!(emu.item_calls().len(), calls);
    let (_, listed) = get(&emu, &access, &format!("/v2/boards/{id}/items")).await;
    assert_eq!(listed["data"][0]["id"], foreign.as_str());
    assert_eq!(listed["data"][0]["data"]["content"], "theirs");
    assert_ne!(listed["data"][0]["createdBy"]["id"], MIRO_USER_ID);

    // A copy of the template has its items, with ids of its own.
    let (status, _, copied) = call(
        &emu,
        Method::PUT,
        &format!("/v2/boards?copy_from={template}"),
        &access,
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{copied}");
    let copied = copied["id"].as_str().expect("id").to_string();
    let (theirs, ours) = (emu.items(&template), emu.items(&copied));
    assert_eq!(ours.len(), 2);
    assert_ne!(ours[0].id, theirs[0].id);
    assert_eq!(ours[0].data, theirs[0].data);
}

#[tokio::test]
async fn items_cost_100_credits_each() {
    let emu = emulator(EmulatorConfig {
        credit_rate_limit: Some((5_000, 60)),
        ..EmulatorConfig::default()
    })
    .await;
    let (access, id) = board(&emu).await;
    let (status, h, _) = call(
        &emu,
        Method::POST,
        &format!("/v2/boards/{id}/items/bulk"),
        &access,
        stickies(20),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        h["x-ratelimit-remaining"], "2500",
        "500 for the board, 2,000 for 20 items"
    );
    assert_eq!(bulk(&emu, &access, &id, stickies(20)).await.0, 201);
    let (status, h, body) = call(
        &emu,
        Method::POST,
        &format!("/v2/boards/{id}/items/bulk"),
        &access,
        stickies(20),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("tooManyRequests"))
    );
    assert_eq!(h["x-ratelimit-remaining"], "500");
    assert_eq!(emu.items(&id).len(), 40);
    assert_eq!(emu.credits_spent(MIRO_USER_ID), 4_500);
    // What is left fits a page of items (100) but not a deletion (500).
    assert_eq!(
        get(&emu, &access, &format!("/v2/boards/{id}/items"))
            .await
            .0,
        200
    );
    let (status, _, _) = call(
        &emu,
        Method::DELETE,
        &format!("/v2/boards/{id}"),
        &access,
        json!(null),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(emu.credits_spent(MIRO_USER_ID), 4_600);
    assert_eq!(emu.item_calls().last().map(|c| c.status), Some(429));
    assert_eq!((ITEM_CREDITS, DELETE_BOARD_CREDITS), (100, 500));
}

#[tokio::test]
async fn a_deleted_board_is_gone() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;
    assert_eq!(bulk(&emu, &access, &id, stickies(2)).await.0, 201);
    let template = emu.add_template(TEAM_ID, "T", "t");
    let (status, _, body) = call(
        &emu,
        Method::DELETE,
        &format!("/v2/boards/{template}"),
        &access,
        json!(null),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbiddenAccess")),
        "not the owner"
    );

    let (status, _, _) = call(
        &emu,
        Method::DELETE,
        &format!("/v2/boards/{id}"),
        &access,
        json!(null),
    )
    .await;
    assert_eq!(status, 204);
    assert!(emu.board_deleted(&id));
    assert!(!emu.board_deleted(&template));
    assert_eq!(emu.boards().len(), 1, "still listed as made");
    assert!(emu.items(&id).is_empty());
    let (status, body) = get(&emu, &access, &format!("/v2/boards/{id}/items")).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("notFound")));
    assert_eq!(bulk(&emu, &access, &id, stickies(1)).await.0, 404);
    let (status, _, _) = call(
        &emu,
        Method::DELETE,
        &format!("/v2/boards/{id}"),
        &access,
        json!(null),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post(
        &emu,
        &format!("/v2/boards/{id}/members"),
        &access,
        json!({ "emails": ["a@example.com"] }),
    )
    .await;
    assert_eq!(status, 404, "no invitations to a deleted board");
    let page = client()
        .get(format!("{}/app/board/{id}", emu.base_url()))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 404);
    let kinds: Vec<ItemCallKind> = emu.item_calls().iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == ItemCallKind::DeleteBoard)
            .count(),
        3
    );
}

#[tokio::test]
async fn the_view_link_draws_the_board() {
    let emu = emulator(EmulatorConfig::default()).await;
    let (access, id) = board(&emu).await;
    let boards = emu.boards();
    let (_, created) = post(
        &emu,
        "/v2/boards",
        &access,
        json!({ "name": "<Board & co>" }),
    )
    .await;
    let named = created["id"].as_str().expect("id").to_string();
    assert_eq!(
        created["viewLink"].as_str(),
        Some(format!("{}/app/board/{named}", emu.base_url()).as_str())
    );
    assert_eq!(boards.len(), 1);

    let (_, f) = frame(
        &emu,
        &access,
        &named,
        json!({
            "data": { "title": "Frame <i>one</i>" },
            "position": { "x": 0, "y": 0 },
            "geometry": { "width": 1000, "height": 800 },
        }),
    )
    .await;
    let frame_id = f["id"].as_str().expect("id").to_string();
    let items = json!([
        { "type": "sticky_note", "data": { "content": "&lt;script&gt;alert(1)&lt;/script&gt;" }, "style": { "fillColor": "pink" }, "parent": { "id": frame_id } },
        { "type": "text", "data": { "content": "<p>Hello <b>there</b></p>" }, "position": { "x": 800, "y": 0 } },
        { "type": "shape", "data": { "shape": "star", "content": "\"quoted\" 'single'" }, "position": { "x": 800, "y": 300 } },
        { "type": "shape", "data": { "shape": "circle" }, "position": { "x": 800, "y": 600 } },
        { "type": "card", "data": { "title": "Card", "description": "Due <u>soon</u>" }, "position": { "x": -800, "y": 0 } },
    ]);
    let (status, made) = bulk(&emu, &access, &named, items).await;
    assert_eq!(status, 201, "{made}");
    let a = made["data"][1]["id"].as_str().expect("id").to_string();
    let b = made["data"][2]["id"].as_str().expect("id").to_string();
    let joined = json!({ "startItem": { "id": a }, "endItem": { "id": b }, "captions": [{ "content": "a &amp; b" }] });
    assert_eq!(
        post(
            &emu,
            &format!("/v2/boards/{named}/connectors"),
            &access,
            joined
        )
        .await
        .0,
        201
    );
    emu.add_foreign_item(
        &named,
        "sticky_note",
        "<script>alert(2)</script><img src=x onerror=alert(3)>",
    );

    let page = client()
        .get(format!("{}/app/board/{named}", emu.base_url()))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert!(h["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    let html = page.text().await.expect("body");
    let items = emu.items(&named);
    assert_eq!(items.len(), 7);
    assert_eq!(
        html.matches("data-item-id=").count(),
        items.len() + 1,
        "one element per item and connector"
    );
    for item in &items {
        let element = format!("data-item-id=\"{}\" data-type=\"{}\"", item.id, item.kind);
        assert_eq!(html.matches(&element).count(), 1, "{element}");
    }
    assert_eq!(html.matches("data-type=\"connector\"").count(), 1);
    assert_eq!(html.matches("<svg").count(), 1);
    for drawn in [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;Board &amp; co&gt;",
        "Frame one",
        "Hello there",
        "&quot;quoted&quot; &#39;single&#39;",
        "a &amp; b",
        "alert(2)",
        "<polygon",
        "<ellipse",
        "fill=\"#ea94bb\"",
    ] {
        assert!(html.contains(drawn), "{drawn} in {html}");
    }
    let lower = html.to_lowercase();
    for never in ["<script", "<img", "onerror", "<b>", "<u>", "<i>"] {
        assert!(!lower.contains(never), "{never} in {html}");
    }

    // A copy's link is its own drawing too.
    let template = emu.add_template(TEAM_ID, "T", "t");
    let (_, _, copied) = call(
        &emu,
        Method::PUT,
        &format!("/v2/boards?copy_from={template}"),
        &access,
        json!({}),
    )
    .await;
    let copy_id = copied["id"].as_str().expect("id");
    assert_eq!(
        copied["viewLink"],
        format!("{}/app/board/{copy_id}", emu.base_url())
    );
    let empty = client()
        .get(format!("{}/app/board/{id}/", emu.base_url()))
        .send()
        .await
        .expect("page");
    assert_eq!(empty.status(), 200, "an empty board, with a trailing slash");
    let unknown = client()
        .get(format!("{}/app/board/uXnope=", emu.base_url()))
        .send()
        .await
        .expect("page");
    assert_eq!(unknown.status(), 404);
}

//! What the emulator keeps of a board's items and connectors, and of every
//! item call (the handle's view), and how Miro answers an item.

use super::rules;
use serde_json::{json, Map, Value};

/// An item on a board, as the emulator stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    /// Miro's id: a 19-digit number, as a string.
    pub id: String,
    /// Miro's `type`: `sticky_note`, `text`, `shape`, `card`, `frame` (a
    /// foreign item may be of any type).
    pub kind: String,
    /// `data` as sent (`{}` when none was).
    pub data: Value,
    /// `style` as sent (`{}` when none was).
    pub style: Value,
    /// `position` `(x, y)` as sent: the item's centre, on the board or, for
    /// a child, from its frame's top-left corner; `None` when none was
    /// (Miro then takes (0, 0)).
    pub position: Option<(f64, f64)>,
    /// `(width, height)` as Miro resolved them: defaults, a sticky note's
    /// ratio, a text's one line (50).
    pub geometry: (f64, f64),
    /// The id of the frame it is in.
    pub parent: Option<String>,
    /// `(left, top, right, bottom)` in board coordinates ((0, 0) the
    /// board's centre, y down).
    pub bounds: (f64, f64, f64, f64),
    /// The Miro user who made it.
    pub created_by: String,
    /// When, as Miro writes it (`2026-12-01T14:07:49Z`).
    pub created_at: String,
}

impl ItemRecord {
    /// The item's centre in board coordinates.
    pub fn center(&self) -> (f64, f64) {
        let (l, t, r, b) = self.bounds;
        ((l + r) / 2.0, (t + b) / 2.0)
    }
}

/// A connector on a board, as the emulator stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRecord {
    pub id: String,
    /// The ids of the items it joins.
    pub start: String,
    pub end: String,
    /// `straight`, `elbowed` or `curved` (Miro's default).
    pub shape: String,
    /// The captions' `content`, as sent.
    pub captions: Vec<String>,
    /// `style` as sent (`{}` when none was).
    pub style: Value,
    pub created_by: String,
    pub created_at: String,
}

/// Which item call it was. For [`crate::Emulator::inject_item_faults`] it
/// names a fault queue: `Bulk { .. }` (whatever `items`), `Frame`,
/// `Connector`, `ListItems` or `ListConnectors` (one queue for both
/// listings), `DeleteBoard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemCallKind {
    /// `POST /v2/boards/{id}/items/bulk` with this many items in its body
    /// (at least 1: a body that is no array counts as one).
    Bulk { items: usize },
    /// `POST /v2/boards/{id}/frames`.
    Frame,
    /// `POST /v2/boards/{id}/connectors`.
    Connector,
    /// `GET /v2/boards/{id}/items`.
    ListItems,
    /// `GET /v2/boards/{id}/connectors`.
    ListConnectors,
    /// `DELETE /v2/boards/{id}`.
    DeleteBoard,
}

/// A call of an item route or a board deletion, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCall {
    pub kind: ItemCallKind,
    /// The board the path names.
    pub board_id: String,
    /// The status answered: an injected one, a 429, a 401…; for
    /// `DropAfter`, the status of the head sent before the body broke off.
    pub status: u16,
}

fn user(id: &str) -> Value {
    json!({ "id": id, "type": "user" })
}

/// `sent`'s keys over `defaults`' (a `null` sent is no value).
pub(crate) fn merged(defaults: Value, sent: &Value) -> Value {
    let mut out = match defaults {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Value::Object(sent) = sent {
        for (k, v) in sent.iter().filter(|(_, v)| !v.is_null()) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Miro's answer for an item (`data` and `style` with Miro's defaults filled in).
pub(crate) fn item_json(board_id: &str, item: &ItemRecord) -> Value {
    let (x, y) = item.position.unwrap_or((0.0, 0.0));
    let relative_to = match item.parent {
        Some(_) => "parent_top_left",
        None => "canvas_center",
    };
    let (width, height) = item.geometry;
    let (data, style) = rules::answered(&item.kind, &item.data, &item.style);
    let mut answer = json!({
        "id": item.id,
        "type": item.kind,
        "data": data,
        "style": style,
        "position": { "x": x, "y": y, "origin": "center", "relativeTo": relative_to },
        "geometry": { "width": width, "height": height },
        "createdAt": item.created_at,
        "modifiedAt": item.created_at,
        "createdBy": user(&item.created_by),
        "modifiedBy": user(&item.created_by),
        "links": { "self": format!("https://api.miro.com/v2/boards/{board_id}/items/{}", item.id) },
    });
    if let (Some(parent), Value::Object(fields)) = (&item.parent, &mut answer) {
        fields.insert("parent".into(), json!({ "id": parent }));
    }
    answer
}

/// Miro's answer for a connector.
pub(crate) fn connector_json(board_id: &str, c: &ConnectorRecord) -> Value {
    json!({
        "id": c.id,
        "type": "connector",
        "startItem": { "id": c.start },
        "endItem": { "id": c.end },
        "shape": c.shape,
        "captions": c.captions.iter().map(|content| json!({ "content": content })).collect::<Vec<_>>(),
        "style": c.style,
        "isSupported": true,
        "createdAt": c.created_at,
        "modifiedAt": c.created_at,
        "createdBy": user(&c.created_by),
        "modifiedBy": user(&c.created_by),
        "links": { "self": format!("https://api.miro.com/v2/boards/{board_id}/connectors/{}", c.id) },
    })
}

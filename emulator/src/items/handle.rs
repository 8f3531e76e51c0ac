//! The handle's view of board content, for tests: what is on a board,
//! every item call, and someone else writing a board.

use super::records::{ConnectorRecord, ItemCall, ItemRecord};
use super::rules::default_geometry;
use crate::reply::iso8601;
use crate::state::TEMPLATE_OWNER_ID;
use crate::Emulator;
use serde_json::json;

impl Emulator {
    /// The items on a board (frames among them), in creation order; none
    /// for a board that does not exist or was deleted.
    pub fn items(&self, board_id: &str) -> Vec<ItemRecord> {
        let world = self.shared.world();
        world.items.get(board_id).cloned().unwrap_or_default()
    }

    /// The connectors on a board, in creation order.
    pub fn connectors(&self, board_id: &str) -> Vec<ConnectorRecord> {
        let world = self.shared.world();
        world.connectors.get(board_id).cloned().unwrap_or_default()
    }

    /// Every call of an item route and of `DELETE /v2/boards/{id}`, in the
    /// order Miro took them, whatever their answer (refused, faulted and
    /// rate-limited ones included).
    pub fn item_calls(&self) -> Vec<ItemCall> {
        self.shared.world().item_calls.clone()
    }

    /// Someone else (the templates' owner) writes an item of `kind` (e.g.
    /// `sticky_note`; any Miro type) on the board: `content` as its
    /// `data.content` (a `card`'s or `frame`'s `data.title`), at (0, 0) with
    /// the type's default size. No credits, no call record, no rule
    /// checked. Returns its id.
    pub fn add_foreign_item(&self, board_id: &str, kind: &str, content: &str) -> String {
        let mut world = self.shared.world();
        let data = match kind {
            "card" | "frame" => json!({ "title": content }),
            _ => json!({ "content": content }),
        };
        let (w, h) = default_geometry(kind);
        let record = ItemRecord {
            id: world.item_id(),
            kind: kind.to_string(),
            data,
            style: json!({}),
            position: None,
            geometry: (w, h),
            parent: None,
            bounds: (-w / 2.0, -h / 2.0, w / 2.0, h / 2.0),
            created_by: TEMPLATE_OWNER_ID.to_string(),
            created_at: iso8601(world.now()),
        };
        let id = record.id.clone();
        world
            .items
            .entry(board_id.to_string())
            .or_default()
            .push(record);
        id
    }

    /// Whether `DELETE /v2/boards/{board_id}` deleted the board
    /// ([`Emulator::boards`] still lists it).
    pub fn board_deleted(&self, board_id: &str) -> bool {
        self.shared.world().deleted.iter().any(|d| d == board_id)
    }
}

//! The app's own content for a board: items and connectors in plain fields
//! of ours (mapped onto Miro's by `crate::miro::items`), every rule checked
//! before the first call to Miro, and the order the saga makes them in.

use serde::{Deserialize, Serialize};

/// What an item is. Frames hold other items; the rest go in bulk calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    StickyNote,
    Text,
    Shape,
    Card,
    Frame,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::StickyNote => "sticky_note",
            ItemKind::Text => "text",
            ItemKind::Shape => "shape",
            ItemKind::Card => "card",
            ItemKind::Frame => "frame",
        }
    }
}

/// One item of a board request. Positions are the item's centre: board
/// coordinates, or for a child relative to its frame's top-left corner.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: ItemKind,
    /// The app's name for it: how connectors, children and the answer refer to it.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Plain text, never markup (escaped on the way to Miro).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<f64>,
    /// The `ref` of a frame in the same request: this item is its child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
}

/// A line between two items of the same request, named by their refs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<ConnectorShape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorShape {
    Straight,
    Elbowed,
    Curved,
}

impl ConnectorShape {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorShape::Straight => "straight",
            ConnectorShape::Elbowed => "elbowed",
            ConnectorShape::Curved => "curved",
        }
    }
}

/// Items one request may carry: bounds the calls (and credits) it costs.
pub const ITEMS_MAX: usize = 200;
pub const CONNECTORS_MAX: usize = 50;
/// Escaped, a text grows at most sixfold (`&quot;`): within Miro's 6,000.
pub const ITEM_TEXT_MAX: usize = 1000;
pub const ITEM_TITLE_MAX: usize = 200;
pub const ITEM_DESCRIPTION_MAX: usize = 1000;
pub const CAPTION_MAX: usize = 200;
pub const REF_MAX: usize = 64;
/// Coordinates and sizes Miro's board can hold comfortably.
pub const COORDINATE_MAX: f64 = 1_000_000.0;
pub const SIZE_MIN: f64 = 8.0;
pub const SIZE_MAX: f64 = 10_000.0;
/// Miro's bulk call takes at most this many items.
pub const ITEMS_PER_BULK_CALL: usize = 20;

/// Miro's sticky-note colours (a sticky note takes no other).
pub const STICKY_NOTE_COLORS: [&str; 16] = [
    "gray",
    "light_yellow",
    "yellow",
    "orange",
    "light_green",
    "green",
    "dark_green",
    "cyan",
    "light_pink",
    "pink",
    "violet",
    "red",
    "light_blue",
    "blue",
    "dark_blue",
    "black",
];

pub const STICKY_NOTE_SHAPES: [&str; 2] = ["square", "rectangle"];

/// Miro's shape kinds.
pub const SHAPE_KINDS: [&str; 21] = [
    "rectangle",
    "round_rectangle",
    "circle",
    "triangle",
    "rhombus",
    "parallelogram",
    "trapezoid",
    "pentagon",
    "hexagon",
    "octagon",
    "wedge_round_rectangle_callout",
    "star",
    "flow_chart_predefined_process",
    "cloud",
    "cross",
    "can",
    "right_arrow",
    "left_arrow",
    "left_right_arrow",
    "left_brace",
    "right_brace",
];

/// An item or connector Miro would refuse (or that makes no sense), named
/// by its field in the request: `items[3].color`, `connectors[0].to`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidItem {
    pub field: String,
    pub message: String,
}

fn invalid(field: String, message: impl Into<String>) -> InvalidItem {
    InvalidItem {
        field,
        message: message.into(),
    }
}

/// Which of the optional fields each kind takes.
struct Takes {
    text: bool,
    title: bool,
    description: bool,
    shape: Option<&'static [&'static str]>,
    /// Named colours (sticky notes) or `#rrggbb`.
    named_colors: bool,
    height: bool,
}

fn takes(kind: ItemKind) -> Takes {
    let none = Takes {
        text: false,
        title: false,
        description: false,
        shape: None,
        named_colors: false,
        height: true,
    };
    match kind {
        ItemKind::StickyNote => Takes {
            text: true,
            shape: Some(&STICKY_NOTE_SHAPES),
            named_colors: true,
            ..none
        },
        // Miro sizes a text's height from its content.
        ItemKind::Text => Takes {
            text: true,
            height: false,
            ..none
        },
        ItemKind::Shape => Takes {
            text: true,
            shape: Some(&SHAPE_KINDS),
            ..none
        },
        ItemKind::Card => Takes {
            title: true,
            description: true,
            ..none
        },
        ItemKind::Frame => Takes {
            title: true,
            ..none
        },
    }
}

/// `#rrggbb`, as Miro takes a colour outside the sticky-note set.
pub fn is_hex_color(color: &str) -> bool {
    color.len() == 7 && color.starts_with('#') && color[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_ref(reference: &str) -> bool {
    (1..=REF_MAX).contains(&reference.len())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn bounded_text(field: String, value: &Option<String>, max: usize) -> Result<(), InvalidItem> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(invalid(field, format!("at most {max} characters")))
        }
        _ => Ok(()),
    }
}

fn refused_field(field: String, kind: ItemKind) -> InvalidItem {
    invalid(field, format!("a {} does not take it", kind.as_str()))
}

/// Every rule for the content, checked before the first call to Miro.
pub fn validate_content(items: &[Item], connectors: &[Connector]) -> Result<(), InvalidItem> {
    if items.len() > ITEMS_MAX {
        return Err(invalid(
            "items".into(),
            format!("at most {ITEMS_MAX} items per request"),
        ));
    }
    if connectors.len() > CONNECTORS_MAX {
        return Err(invalid(
            "connectors".into(),
            format!("at most {CONNECTORS_MAX} connectors per request"),
        ));
    }
    let mut refs: std::collections::HashMap<&str, ItemKind> = std::collections::HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("items[{i}].{name}");
        if let Some(reference) = &item.reference {
            if !is_ref(reference) {
                return Err(invalid(
                    field("ref"),
                    format!("1 to {REF_MAX} letters, digits, '_', '.', ':' or '-'"),
                ));
            }
            if refs.insert(reference, item.kind).is_some() {
                return Err(invalid(field("ref"), "each ref may appear once"));
            }
        }
    }
    for (i, item) in items.iter().enumerate() {
        validate_item(i, item, &refs)?;
    }
    for (i, connector) in connectors.iter().enumerate() {
        for (name, reference) in [("from", &connector.from), ("to", &connector.to)] {
            let field = format!("connectors[{i}].{name}");
            match refs.get(reference.as_str()) {
                None => return Err(invalid(field, "not the ref of an item in this request")),
                Some(ItemKind::Frame) => return Err(invalid(field, "frames cannot be connected")),
                Some(_) => {}
            }
        }
        if connector.from == connector.to {
            return Err(invalid(
                format!("connectors[{i}].to"),
                "a connector joins two different items",
            ));
        }
        bounded_text(
            format!("connectors[{i}].caption"),
            &connector.caption,
            CAPTION_MAX,
        )?;
    }
    Ok(())
}

fn validate_item(
    i: usize,
    item: &Item,
    refs: &std::collections::HashMap<&str, ItemKind>,
) -> Result<(), InvalidItem> {
    let field = |name: &str| format!("items[{i}].{name}");
    let rules = takes(item.kind);
    for (name, present, taken) in [
        ("text", item.text.is_some(), rules.text),
        ("title", item.title.is_some(), rules.title),
        ("description", item.description.is_some(), rules.description),
        ("shape", item.shape.is_some(), rules.shape.is_some()),
        ("height", item.height.is_some(), rules.height),
    ] {
        if present && !taken {
            return Err(refused_field(field(name), item.kind));
        }
    }
    if item.kind == ItemKind::Text && item.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(invalid(field("text"), "a text needs some text"));
    }
    bounded_text(field("text"), &item.text, ITEM_TEXT_MAX)?;
    bounded_text(field("title"), &item.title, ITEM_TITLE_MAX)?;
    bounded_text(
        field("description"),
        &item.description,
        ITEM_DESCRIPTION_MAX,
    )?;
    if let (Some(shape), Some(allowed)) = (&item.shape, rules.shape) {
        if !allowed.contains(&shape.as_str()) {
            return Err(invalid(
                field("shape"),
                format!("one of {}", allowed.join(", ")),
            ));
        }
    }
    if let Some(color) = &item.color {
        let ok = if rules.named_colors {
            STICKY_NOTE_COLORS.contains(&color.as_str())
        } else {
            is_hex_color(color)
        };
        if !ok {
            let wanted = if rules.named_colors {
                format!("one of {}", STICKY_NOTE_COLORS.join(", "))
            } else {
                "a colour as #rrggbb".to_string()
            };
            return Err(invalid(field("color"), wanted));
        }
    }
    match (item.x, item.y) {
        (Some(_), None) => return Err(invalid(field("y"), "x and y go together")),
        (None, Some(_)) => return Err(invalid(field("x"), "x and y go together")),
        _ => {}
    }
    for (name, value) in [("x", item.x), ("y", item.y)] {
        if value.is_some_and(|v| !v.is_finite() || v.abs() > COORDINATE_MAX) {
            return Err(invalid(field(name), format!("within ±{COORDINATE_MAX}")));
        }
    }
    for (name, value) in [("width", item.width), ("height", item.height)] {
        if value.is_some_and(|v| !(SIZE_MIN..=SIZE_MAX).contains(&v)) {
            return Err(invalid(
                field(name),
                format!("from {SIZE_MIN} to {SIZE_MAX}"),
            ));
        }
    }
    if item.kind == ItemKind::StickyNote && item.width.is_some() && item.height.is_some() {
        return Err(invalid(
            field("height"),
            "a sticky note takes a width or a height, not both",
        ));
    }
    if let Some(frame) = &item.frame {
        if item.kind == ItemKind::Frame {
            return Err(invalid(field("frame"), "frames cannot be children"));
        }
        if refs.get(frame.as_str()) != Some(&ItemKind::Frame) {
            return Err(invalid(
                field("frame"),
                "not the ref of a frame in this request",
            ));
        }
    }
    Ok(())
}

/// One call of the content saga, in the order they are made: every frame
/// (one call each), then the other items in bulk calls of at most
/// [`ITEMS_PER_BULK_CALL`] (children after their frames exist), then every
/// connector. The same request always gives the same steps, so a record of
/// what landed can be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentStep {
    Frame(usize),
    Bulk(Vec<usize>),
    Connector(usize),
}

/// The steps, phase by phase: calls within a phase do not depend on each other.
pub fn content_phases(items: &[Item], connectors: &[Connector]) -> [Vec<ContentStep>; 3] {
    let frames = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.kind == ItemKind::Frame)
        .map(|(i, _)| ContentStep::Frame(i))
        .collect();
    let others: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.kind != ItemKind::Frame)
        .map(|(i, _)| i)
        .collect();
    let bulk = others
        .chunks(ITEMS_PER_BULK_CALL)
        .map(|c| ContentStep::Bulk(c.to_vec()))
        .collect();
    let lines = (0..connectors.len()).map(ContentStep::Connector).collect();
    [frames, bulk, lines]
}

/// What a request's content became, as its answer shows it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ContentSummary {
    /// Items and connectors the request made.
    pub created: usize,
    /// Miro's id of each item the app named with a `ref`.
    pub refs: std::collections::BTreeMap<String, String>,
    /// Items (by `ref`, else `items[i]`) and connectors (`connectors[i]`)
    /// whose creation could not be confirmed: someone else wrote the board
    /// while an answer was lost. Never sent again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

/// The index of the item a ref names.
pub fn item_index(items: &[Item], reference: &str) -> Option<usize> {
    items
        .iter()
        .position(|it| it.reference.as_deref() == Some(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn item(kind: ItemKind) -> Item {
        Item {
            kind,
            reference: None,
            text: None,
            title: None,
            description: None,
            shape: None,
            color: None,
            x: None,
            y: None,
            width: None,
            height: None,
            frame: None,
        }
    }

    fn named(kind: ItemKind, r: &str) -> Item {
        Item {
            reference: Some(r.into()),
            ..item(kind)
        }
    }

    fn field_of(items: &[Item], connectors: &[Connector]) -> Option<String> {
        validate_content(items, connectors).err().map(|e| e.field)
    }

    #[test]
    fn a_bad_item_is_named_by_its_index_and_field() {
        let mut items = vec![named(ItemKind::Frame, "f"), item(ItemKind::StickyNote)];
        assert_eq!(field_of(&items, &[]), None);
        items[1].color = Some("mauve".into());
        assert_eq!(field_of(&items, &[]).as_deref(), Some("items[1].color"));
        items[1].color = Some("#ff0000".into());
        assert_eq!(field_of(&items, &[]).as_deref(), Some("items[1].color"));
        items[1].color = Some("light_blue".into());
        items[1].frame = Some("nope".into());
        assert_eq!(field_of(&items, &[]).as_deref(), Some("items[1].frame"));
        items[1].frame = Some("f".into());
        items[1].title = Some("t".into());
        assert_eq!(field_of(&items, &[]).as_deref(), Some("items[1].title"));
        items[1].title = None;
        items[1].width = Some(100.0);
        items[1].height = Some(100.0);
        assert_eq!(field_of(&items, &[]).as_deref(), Some("items[1].height"));
        items[1].height = None;
        items[1].x = Some(3.0);
        assert_eq!(field_of(&items, &[]).as_deref(), Some("items[1].y"));
        items[1].y = Some(3.0);
        assert_eq!(field_of(&items, &[]), None);
        let mut text = item(ItemKind::Text);
        assert_eq!(
            field_of(&[text.clone()], &[]).as_deref(),
            Some("items[0].text")
        );
        text.text = Some("x".repeat(ITEM_TEXT_MAX + 1));
        assert_eq!(field_of(&[text], &[]).as_deref(), Some("items[0].text"));
        let mut nested = named(ItemKind::Frame, "g");
        nested.frame = Some("f".into());
        assert_eq!(
            field_of(&[named(ItemKind::Frame, "f"), nested], &[]).as_deref(),
            Some("items[1].frame")
        );
        let twice = [named(ItemKind::Card, "a"), named(ItemKind::Card, "a")];
        assert_eq!(field_of(&twice, &[]).as_deref(), Some("items[1].ref"));
        let too_many = vec![item(ItemKind::Card); ITEMS_MAX + 1];
        assert_eq!(field_of(&too_many, &[]).as_deref(), Some("items"));
    }

    #[test]
    fn connectors_join_two_different_non_frame_items_of_the_request() {
        let items = [
            named(ItemKind::Frame, "f"),
            named(ItemKind::StickyNote, "a"),
            named(ItemKind::Shape, "b"),
        ];
        let line = |from: &str, to: &str| Connector {
            from: from.into(),
            to: to.into(),
            shape: None,
            caption: None,
        };
        assert_eq!(field_of(&items, &[line("a", "b")]), None);
        assert_eq!(
            field_of(&items, &[line("a", "f")]).as_deref(),
            Some("connectors[0].to")
        );
        assert_eq!(
            field_of(&items, &[line("a", "b"), line("z", "b")]).as_deref(),
            Some("connectors[1].from")
        );
        assert_eq!(
            field_of(&items, &[line("a", "a")]).as_deref(),
            Some("connectors[0].to")
        );
    }

    #[test]
    fn frames_first_then_bulk_calls_of_twenty_then_connectors() {
        let mut items: Vec<Item> = (0..3)
            .map(|i| named(ItemKind::Frame, &format!("f{i}")))
            .collect();
        items.extend((0..45).map(|_| item(ItemKind::StickyNote)));
        let [frames, bulk, lines] = content_phases(&items, &[]);
        assert_eq!(frames.len(), 3);
        let sizes: Vec<usize> = bulk
            .iter()
            .map(|s| match s {
                ContentStep::Bulk(v) => v.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![20, 20, 5]);
        assert!(lines.is_empty());
    }
}

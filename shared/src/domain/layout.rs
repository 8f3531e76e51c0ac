//! Where items go when the app does not say: frames side by side as
//! columns, each sized to hold its children in a grid; loose items in a
//! grid of their own to the right; nothing overlapping. Explicit positions
//! are honoured (a child's relative to its frame's top-left corner), and
//! what is laid out keeps clear of them.

use super::{Item, ItemKind};

/// An item's centre and the size it is drawn at. A child's centre is
/// relative to its frame's top-left corner, as Miro takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// Space between laid-out items, and between a frame's edge and its children.
pub const GAP: f64 = 40.0;
/// Room at a frame's top for its title.
const FRAME_TITLE: f64 = 40.0;
const EMPTY_FRAME: (f64, f64) = (400.0, 300.0);

/// The size an item is drawn at: what the app asked for, else Miro's
/// defaults. A sticky note keeps Miro's proportions (199 × 228 square,
/// 350 × 228 rectangle) from whichever side it was given; a text's height
/// is one line (Miro grows it with the content).
pub fn item_size(item: &Item) -> (f64, f64) {
    match item.kind {
        ItemKind::StickyNote => {
            let (w, h) = if item.shape.as_deref() == Some("rectangle") {
                (350.0, 228.0)
            } else {
                (199.0, 228.0)
            };
            match (item.width, item.height) {
                (Some(width), _) => (width, width * h / w),
                (None, Some(height)) => (height * w / h, height),
                (None, None) => (w, h),
            }
        }
        ItemKind::Text => (item.width.unwrap_or(300.0), 50.0),
        ItemKind::Shape => (item.width.unwrap_or(200.0), item.height.unwrap_or(200.0)),
        ItemKind::Card => (item.width.unwrap_or(320.0), item.height.unwrap_or(94.0)),
        ItemKind::Frame => (
            item.width.unwrap_or(EMPTY_FRAME.0),
            item.height.unwrap_or(EMPTY_FRAME.1),
        ),
    }
}

/// A box by its edges.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bounds {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Bounds {
    fn around(x: f64, y: f64, (w, h): (f64, f64)) -> Self {
        Self {
            left: x - w / 2.0,
            top: y - h / 2.0,
            right: x + w / 2.0,
            bottom: y + h / 2.0,
        }
    }

    fn union(self, o: Bounds) -> Bounds {
        Bounds {
            left: self.left.min(o.left),
            top: self.top.min(o.top),
            right: self.right.max(o.right),
            bottom: self.bottom.max(o.bottom),
        }
    }
}

fn union_all(boxes: impl IntoIterator<Item = Bounds>) -> Option<Bounds> {
    boxes.into_iter().reduce(Bounds::union)
}

/// Places `sizes` in a grid of near-square shape, the first cell's
/// top-left at (`left`, `top`); returns the centres and the grid's extent.
fn grid(sizes: &[(f64, f64)], left: f64, top: f64) -> (Vec<(f64, f64)>, (f64, f64)) {
    if sizes.is_empty() {
        return (Vec::new(), (0.0, 0.0));
    }
    let cell_w = sizes.iter().map(|s| s.0).fold(0.0, f64::max) + GAP;
    let cell_h = sizes.iter().map(|s| s.1).fold(0.0, f64::max) + GAP;
    let columns = (sizes.len() as f64).sqrt().ceil() as usize;
    let rows = sizes.len().div_ceil(columns);
    let centres = (0..sizes.len())
        .map(|n| {
            let (c, r) = (n % columns, n / columns);
            (
                left + c as f64 * cell_w + cell_w / 2.0,
                top + r as f64 * cell_h + cell_h / 2.0,
            )
        })
        .collect();
    (centres, (columns as f64 * cell_w, rows as f64 * cell_h))
}

/// Every item's placement, by request index. Items the request placed keep
/// their place; frames grow to hold their children.
pub fn layout(items: &[Item]) -> Vec<Placement> {
    let mut placed: Vec<Option<Placement>> = vec![None; items.len()];
    let frame_of = |item: &Item| {
        item.frame
            .as_deref()
            .and_then(|r| super::item_index(items, r))
    };
    // Each frame's size: room for its placed children and a grid of the rest.
    let mut frame_sizes = vec![(0.0, 0.0); items.len()];
    for (f, frame) in items.iter().enumerate() {
        if frame.kind != ItemKind::Frame {
            continue;
        }
        let children: Vec<usize> = (0..items.len())
            .filter(|&c| frame_of(&items[c]) == Some(f))
            .collect();
        let explicit = union_all(children.iter().filter_map(|&c| {
            let it = &items[c];
            Some(Bounds::around(it.x?, it.y?, item_size(it)))
        }));
        let auto: Vec<usize> = children
            .iter()
            .copied()
            .filter(|&c| items[c].x.is_none())
            .collect();
        let sizes: Vec<(f64, f64)> = auto.iter().map(|&c| item_size(&items[c])).collect();
        // The grid goes below whatever the app placed in the frame.
        let top = explicit.map_or(FRAME_TITLE, |b| b.bottom.max(0.0) + GAP);
        let (centres, (grid_w, grid_h)) = grid(&sizes, GAP / 2.0, top);
        for ((&c, &(x, y)), &(width, height)) in auto.iter().zip(&centres).zip(&sizes) {
            placed[c] = Some(Placement {
                x,
                y,
                width,
                height,
            });
        }
        let needed_w = (GAP + grid_w).max(explicit.map_or(0.0, |b| b.right + GAP));
        let needed_h = if auto.is_empty() {
            explicit.map_or(0.0, |b| b.bottom + GAP)
        } else {
            top + grid_h + GAP / 2.0
        };
        let (asked_w, asked_h) = item_size(frame);
        frame_sizes[f] = (
            asked_w
                .max(needed_w)
                .max(if children.is_empty() { 0.0 } else { 200.0 }),
            asked_h.max(needed_h),
        );
    }
    // Children the app placed keep their place (relative to the frame).
    for (c, it) in items.iter().enumerate() {
        if let (Some(x), Some(y)) = (it.x, it.y) {
            let (width, height) = if it.kind == ItemKind::Frame {
                frame_sizes[c]
            } else {
                item_size(it)
            };
            placed[c] = Some(Placement {
                x,
                y,
                width,
                height,
            });
        }
    }
    // What is on the board itself so far: laid-out items go to its right.
    let top_level = |placed: &[Option<Placement>]| {
        union_all(items.iter().enumerate().filter_map(|(i, it)| {
            let p = placed[i]?;
            frame_of(it)
                .is_none()
                .then(|| Bounds::around(p.x, p.y, (p.width, p.height)))
        }))
    };
    let right_of = |b: Option<Bounds>| b.map_or((0.0, 0.0), |b| (b.right + 2.0 * GAP, b.top));
    let (mut left, top) = right_of(top_level(&placed));
    for (f, frame) in items.iter().enumerate() {
        if frame.kind != ItemKind::Frame || placed[f].is_some() {
            continue;
        }
        let (width, height) = frame_sizes[f];
        placed[f] = Some(Placement {
            x: left + width / 2.0,
            y: top + height / 2.0,
            width,
            height,
        });
        left += width + 100.0;
    }
    let loose: Vec<usize> = (0..items.len())
        .filter(|&i| placed[i].is_none() && frame_of(&items[i]).is_none())
        .collect();
    let sizes: Vec<(f64, f64)> = loose.iter().map(|&i| item_size(&items[i])).collect();
    let (left, top) = right_of(top_level(&placed));
    let (centres, _) = grid(&sizes, left, top);
    for ((&i, &(x, y)), &(width, height)) in loose.iter().zip(&centres).zip(&sizes) {
        placed[i] = Some(Placement {
            x,
            y,
            width,
            height,
        });
    }
    placed
        .into_iter()
        .zip(items)
        .map(|(p, it)| {
            p.unwrap_or_else(|| {
                let (width, height) = item_size(it);
                Placement {
                    x: 0.0,
                    y: 0.0,
                    width,
                    height,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: ItemKind, reference: Option<&str>, frame: Option<&str>) -> Item {
        Item {
            kind,
            reference: reference.map(str::to_string),
            text: None,
            title: None,
            description: None,
            shape: None,
            color: None,
            x: None,
            y: None,
            width: None,
            height: None,
            frame: frame.map(str::to_string),
        }
    }

    /// Board-coordinate boxes of every item, children moved by their frame.
    fn boxes(items: &[Item], placed: &[Placement]) -> Vec<Bounds> {
        items
            .iter()
            .zip(placed)
            .map(|(it, p)| {
                let (mut x, mut y) = (p.x, p.y);
                if let Some(f) = it
                    .frame
                    .as_deref()
                    .and_then(|r| crate::domain::item_index(items, r))
                {
                    x += placed[f].x - placed[f].width / 2.0;
                    y += placed[f].y - placed[f].height / 2.0;
                }
                Bounds::around(x, y, (p.width, p.height))
            })
            .collect()
    }

    fn overlap(a: Bounds, b: Bounds) -> bool {
        a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom
    }

    fn inside(inner: Bounds, outer: Bounds) -> bool {
        inner.left >= outer.left
            && inner.right <= outer.right
            && inner.top >= outer.top
            && inner.bottom <= outer.bottom
    }

    #[test]
    fn frames_hold_their_children_and_nothing_overlaps() {
        let mut items = vec![
            item(ItemKind::Frame, Some("a"), None),
            item(ItemKind::Frame, Some("b"), None),
            item(ItemKind::Frame, Some("c"), None),
        ];
        for n in 0..60 {
            let f = ["a", "b", "c"][n % 3];
            items.push(item(ItemKind::StickyNote, None, Some(f)));
        }
        for _ in 0..5 {
            items.push(item(ItemKind::Card, None, None));
        }
        items.push(item(ItemKind::Text, None, None));
        let placed = layout(&items);
        let b = boxes(&items, &placed);
        for (i, it) in items.iter().enumerate() {
            if let Some(f) = it
                .frame
                .as_deref()
                .and_then(|r| crate::domain::item_index(&items, r))
            {
                assert!(inside(b[i], b[f]), "item {i} inside its frame");
            }
            for j in 0..i {
                let nested = [i, j].iter().any(|&k| items[k].kind == ItemKind::Frame)
                    && (items[i].frame.is_some() || items[j].frame.is_some());
                if !nested {
                    assert!(!overlap(b[i], b[j]), "items {j} and {i} overlap");
                }
            }
        }
    }

    #[test]
    fn explicit_positions_are_kept_and_laid_out_items_keep_clear() {
        let mut pinned = item(ItemKind::Shape, None, None);
        pinned.x = Some(0.0);
        pinned.y = Some(0.0);
        pinned.width = Some(1000.0);
        pinned.height = Some(1000.0);
        let items = vec![
            pinned,
            item(ItemKind::Frame, Some("f"), None),
            item(ItemKind::StickyNote, None, Some("f")),
            item(ItemKind::Text, None, None),
        ];
        let placed = layout(&items);
        assert_eq!((placed[0].x, placed[0].y), (0.0, 0.0));
        let b = boxes(&items, &placed);
        for i in 1..items.len() {
            assert!(!overlap(b[0], b[i]), "item {i} clear of the placed shape");
        }
        assert!(!overlap(b[1], b[3]));
    }
}

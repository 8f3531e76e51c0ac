//! Miro's field rules for items (bulk and frames) and connectors, each
//! broken rule a [`FieldError`] naming the parameter (`style.fillColor`),
//! and Miro's defaults for what was left out.

use super::markup;
use serde_json::{json, Map, Value};

/// The types `POST /v2/boards/{id}/items/bulk` creates.
const BULK_TYPES: [&str; 4] = ["sticky_note", "text", "shape", "card"];
pub(crate) const STICKY_COLORS: [&str; 16] = [
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
pub(crate) const SHAPES: [&str; 21] = [
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
const CONNECTOR_SHAPES: [&str; 3] = ["straight", "elbowed", "curved"];
const STROKE_CAPS: [&str; 17] = [
    "none",
    "stealth",
    "rounded_stealth",
    "diamond",
    "filled_diamond",
    "oval",
    "filled_oval",
    "arrow",
    "triangle",
    "filled_triangle",
    "erd_one",
    "erd_many",
    "erd_only_one",
    "erd_zero_or_one",
    "erd_one_or_many",
    "erd_zero_or_many",
    "unknown",
];
const TEXT_ALIGN: [&str; 3] = ["left", "center", "right"];
const TEXT_ALIGN_VERTICAL: [&str; 3] = ["top", "middle", "bottom"];
const STROKE_STYLES: [&str; 3] = ["normal", "dotted", "dashed"];
/// Miro's limit on an item's `content`, in characters.
const MAX_CONTENT: usize = 6_000;
const MAX_CAPTIONS: usize = 20;
/// A sticky note's height, and its width by `data.shape`: the ratio is
/// height over width (kept as two numbers so round sizes stay exact).
const STICKY_HEIGHT: f64 = 228.0;
const SQUARE_WIDTH: f64 = 199.0;
const RECTANGLE_WIDTH: f64 = 350.0;

/// A broken rule: the parameter's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error for the item at `index` of a bulk body (`3.style.fillColor`).
    pub(crate) fn at(self, index: usize) -> Self {
        let field = if self.field.is_empty() {
            index.to_string()
        } else {
            format!("{index}.{}", self.field)
        };
        Self { field, ..self }
    }
}

type Checked<T> = Result<T, FieldError>;

/// An item that passed the rules, geometry resolved.
#[derive(Debug, Clone)]
pub(crate) struct NewItem {
    pub(crate) kind: &'static str,
    pub(crate) data: Value,
    pub(crate) style: Value,
    pub(crate) position: Option<(f64, f64)>,
    pub(crate) geometry: (f64, f64),
    /// The frame it asks to be in; that it is one is the caller's to check.
    pub(crate) parent: Option<String>,
}

/// A connector that passed the rules; that its ends are items of the
/// board, and no frames, is the caller's to check.
#[derive(Debug, Clone)]
pub(crate) struct NewConnector {
    pub(crate) start: String,
    pub(crate) end: String,
    pub(crate) shape: String,
    pub(crate) captions: Vec<String>,
    pub(crate) style: Value,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `v` as an object with only `allowed` keys (`path` names it).
fn object<'a>(v: &'a Value, path: &str, allowed: &[&str]) -> Checked<&'a Map<String, Value>> {
    let Value::Object(obj) = v else {
        let what = if path.is_empty() { "an item" } else { path };
        return Err(FieldError::new(path, format!("{what} must be an object")));
    };
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(FieldError::new(join(path, unknown), "unknown field"));
    }
    Ok(obj)
}

/// The member `key` of `obj`, a `null` being none.
fn member<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An optional object member with only `allowed` keys.
fn sub_object<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
    allowed: &[&str],
) -> Checked<Option<&'a Map<String, Value>>> {
    member(obj, key)
        .map(|v| object(v, &join(path, key), allowed))
        .transpose()
}

fn string<'a>(obj: &'a Map<String, Value>, path: &str, key: &str) -> Checked<Option<&'a str>> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(FieldError::new(join(path, key), "must be a string")),
    }
}

fn one_of(obj: &Map<String, Value>, path: &str, key: &str, allowed: &[&str]) -> Checked<()> {
    match string(obj, path, key)? {
        Some(s) if !allowed.contains(&s) => Err(FieldError::new(
            join(path, key),
            format!("must be one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// `#rrggbb`.
fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
}

fn hex_color(obj: &Map<String, Value>, path: &str, key: &str) -> Checked<()> {
    match string(obj, path, key)? {
        Some(s) if !is_hex_color(s) => Err(FieldError::new(
            join(path, key),
            "must be a color in hex, #rrggbb",
        )),
        _ => Ok(()),
    }
}

/// A number, or a string holding one (Miro takes both for sizes and opacities).
fn number_in(obj: &Map<String, Value>, path: &str, key: &str, lo: f64, hi: f64) -> Checked<()> {
    let n = match member(obj, key) {
        None => return Ok(()),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n.is_finite() && (lo..=hi).contains(&n) => Ok(()),
        _ => Err(FieldError::new(
            join(path, key),
            format!("must be a number from {lo} to {hi}"),
        )),
    }
}

fn plain_number(obj: &Map<String, Value>, path: &str, key: &str) -> Checked<Option<f64>> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(FieldError::new(join(path, key), "must be a number")),
        },
        Some(_) => Err(FieldError::new(join(path, key), "must be a number")),
    }
}

fn positive(obj: &Map<String, Value>, path: &str, key: &str) -> Checked<Option<f64>> {
    match plain_number(obj, path, key)? {
        Some(n) if n <= 0.0 => Err(FieldError::new(join(path, key), "must be greater than 0")),
        n => Ok(n),
    }
}

/// Markup in Miro's subset (`content`, `title`, `description`, captions).
fn markup_field(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    max: Option<usize>,
) -> Checked<Option<String>> {
    let Some(s) = string(obj, path, key)? else {
        return Ok(None);
    };
    if let Some(max) = max.filter(|max| s.chars().count() > *max) {
        return Err(FieldError::new(
            join(path, key),
            format!("must be at most {max} characters"),
        ));
    }
    markup::check(s).map_err(|message| FieldError::new(join(path, key), message))?;
    Ok(Some(s.to_string()))
}

/// The keys of `data` and `style` a type takes.
fn keys(kind: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        "sticky_note" => (
            &["content", "shape"],
            &["fillColor", "textAlign", "textAlignVertical"],
        ),
        "text" => (
            &["content"],
            &[
                "color",
                "fillColor",
                "fillOpacity",
                "fontFamily",
                "fontSize",
                "textAlign",
            ],
        ),
        "shape" => (
            &["content", "shape"],
            &[
                "borderColor",
                "borderOpacity",
                "borderStyle",
                "borderWidth",
                "color",
                "fillColor",
                "fillOpacity",
                "fontFamily",
                "fontSize",
                "textAlign",
                "textAlignVertical",
            ],
        ),
        "card" => (
            &["title", "description", "dueDate", "assigneeId"],
            &["cardTheme"],
        ),
        _ => (&["title", "format", "type"], &["fillColor"]),
    }
}

/// An item of a bulk body: `{type, data?, style?, position?, geometry?, parent?}`.
pub(crate) fn bulk_item(v: &Value) -> Checked<NewItem> {
    let obj = object(
        v,
        "",
        &["type", "data", "style", "position", "geometry", "parent"],
    )?;
    let kind = match member(obj, "type") {
        None => return Err(FieldError::new("type", "is required")),
        Some(Value::String(t)) if t == "frame" => {
            return Err(FieldError::new(
                "type",
                "frames cannot be created in bulk: use POST /v2/boards/{board_id}/frames",
            ))
        }
        Some(Value::String(t)) => BULK_TYPES.iter().copied().find(|k| k == t),
        Some(_) => None,
    };
    let Some(kind) = kind else {
        return Err(FieldError::new(
            "type",
            format!("must be one of {}", BULK_TYPES.join(", ")),
        ));
    };
    let parent = match sub_object(obj, "", "parent", &["id"])? {
        None => None,
        Some(p) => match string(p, "parent", "id")? {
            Some(id) if !id.is_empty() => Some(id.to_string()),
            _ => return Err(FieldError::new("parent.id", "is required")),
        },
    };
    item(kind, obj, parent)
}

/// The body of `POST /v2/boards/{id}/frames`: `{data?, style?, position?, geometry}`.
pub(crate) fn frame(v: &Value) -> Checked<NewItem> {
    let obj = object(v, "", &["data", "style", "position", "geometry"])?;
    item("frame", obj, None)
}

fn item(kind: &'static str, obj: &Map<String, Value>, parent: Option<String>) -> Checked<NewItem> {
    let (data_keys, style_keys) = keys(kind);
    let data = sub_object(obj, "", "data", data_keys)?;
    let empty = Map::new();
    let data_or_empty = data.unwrap_or(&empty);
    let sticky_shape = check_data(kind, data_or_empty)?;
    let style = sub_object(obj, "", "style", style_keys)?;
    check_style(kind, style.unwrap_or(&empty))?;
    let position = match sub_object(obj, "", "position", &["x", "y", "origin"])? {
        None => None,
        Some(p) => {
            one_of(p, "position", "origin", &["center"])?;
            let x = plain_number(p, "position", "x")?.unwrap_or(0.0);
            let y = plain_number(p, "position", "y")?.unwrap_or(0.0);
            Some((x, y))
        }
    };
    let geometry = geometry(
        kind,
        sub_object(obj, "", "geometry", &["width", "height"])?,
        sticky_shape,
    )?;
    let sent = |o: Option<&Map<String, Value>>| o.map_or(json!({}), |o| Value::Object(o.clone()));
    Ok(NewItem {
        kind,
        data: sent(data),
        style: sent(style),
        position,
        geometry,
        parent,
    })
}

/// `data`'s rules; a sticky note's shape (`square` unless said).
fn check_data(kind: &str, data: &Map<String, Value>) -> Checked<&'static str> {
    let path = "data";
    match kind {
        "sticky_note" | "shape" | "text" => {
            let content = markup_field(data, path, "content", Some(MAX_CONTENT))?;
            if kind == "text" && content.is_none_or(|c| c.is_empty()) {
                return Err(FieldError::new(
                    "data.content",
                    "is required and may not be empty",
                ));
            }
        }
        "card" => {
            markup_field(data, path, "title", None)?;
            markup_field(data, path, "description", None)?;
            if string(data, path, "dueDate")?.is_some_and(|d| !is_date_time(d)) {
                return Err(FieldError::new(
                    "data.dueDate",
                    "must be an ISO-8601 date-time",
                ));
            }
            if string(data, path, "assigneeId")?.is_some_and(|a| {
                !(1..=19).contains(&a.len()) || !a.bytes().all(|b| b.is_ascii_digit())
            }) {
                return Err(FieldError::new("data.assigneeId", "must be a Miro user id"));
            }
        }
        _ => {
            markup_field(data, path, "title", None)?;
            one_of(data, path, "format", &["custom"])?;
            one_of(data, path, "type", &["freeform"])?;
        }
    }
    Ok(match kind {
        "sticky_note" => {
            one_of(data, path, "shape", &["square", "rectangle"])?;
            match string(data, path, "shape")? {
                Some("rectangle") => "rectangle",
                _ => "square",
            }
        }
        "shape" => {
            one_of(data, path, "shape", &SHAPES)?;
            "square"
        }
        _ => "square",
    })
}

/// `2026-12-01` followed by nothing or by `T` and a time.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let (month, day) = (s.get(5..7), s.get(8..10));
    digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && month
            .and_then(|m| m.parse::<u8>().ok())
            .is_some_and(|m| (1..=12).contains(&m))
        && day
            .and_then(|d| d.parse::<u8>().ok())
            .is_some_and(|d| (1..=31).contains(&d))
        && (b.len() == 10 || b.get(10) == Some(&b'T'))
}

fn check_style(kind: &str, style: &Map<String, Value>) -> Checked<()> {
    let path = "style";
    match kind {
        "sticky_note" => {
            one_of(style, path, "fillColor", &STICKY_COLORS)?;
            one_of(style, path, "textAlign", &TEXT_ALIGN)?;
            one_of(style, path, "textAlignVertical", &TEXT_ALIGN_VERTICAL)?;
        }
        "text" | "shape" => {
            for key in ["color", "fillColor", "borderColor"] {
                hex_color(style, path, key)?;
            }
            for key in ["fillOpacity", "borderOpacity"] {
                number_in(style, path, key, 0.0, 1.0)?;
            }
            number_in(style, path, "fontSize", 10.0, 288.0)?;
            number_in(style, path, "borderWidth", 1.0, 24.0)?;
            string(style, path, "fontFamily")?;
            one_of(style, path, "borderStyle", &STROKE_STYLES)?;
            one_of(style, path, "textAlign", &TEXT_ALIGN)?;
            one_of(style, path, "textAlignVertical", &TEXT_ALIGN_VERTICAL)?;
        }
        "card" => hex_color(style, path, "cardTheme")?,
        _ => hex_color(style, path, "fillColor")?,
    }
    Ok(())
}

/// `(width, height)` from what was sent, by Miro's rules for the type.
fn geometry(
    kind: &str,
    geometry: Option<&Map<String, Value>>,
    sticky_shape: &str,
) -> Checked<(f64, f64)> {
    let empty = Map::new();
    let g = geometry.unwrap_or(&empty);
    let width = positive(g, "geometry", "width")?;
    let height = positive(g, "geometry", "height")?;
    Ok(match kind {
        "sticky_note" => {
            let base = if sticky_shape == "rectangle" {
                RECTANGLE_WIDTH
            } else {
                SQUARE_WIDTH
            };
            match (width, height) {
                (Some(_), Some(_)) => {
                    return Err(FieldError::new(
                        "geometry",
                        "a sticky note takes a width or a height, not both",
                    ))
                }
                (Some(w), None) => (w, w * STICKY_HEIGHT / base),
                (None, Some(h)) => (h * base / STICKY_HEIGHT, h),
                (None, None) => (SQUARE_WIDTH, SQUARE_WIDTH * STICKY_HEIGHT / base),
            }
        }
        "text" => {
            if height.is_some() {
                return Err(FieldError::new(
                    "geometry.height",
                    "a text takes a width only",
                ));
            }
            (width.unwrap_or(300.0), 50.0)
        }
        "shape" => (width.unwrap_or(200.0), height.unwrap_or(200.0)),
        "card" => (width.unwrap_or(320.0), height.unwrap_or(94.0)),
        _ => match (width, height) {
            (Some(w), Some(h)) => (w, h),
            (None, _) => return Err(FieldError::new("geometry.width", "is required")),
            (_, None) => return Err(FieldError::new("geometry.height", "is required")),
        },
    })
}

/// The size of an item of `kind` given none (a foreign item's).
pub(crate) fn default_geometry(kind: &str) -> (f64, f64) {
    match kind {
        "sticky_note" => (199.0, 228.0),
        "text" => (300.0, 50.0),
        "card" => (320.0, 94.0),
        "frame" => (800.0, 600.0),
        _ => (200.0, 200.0),
    }
}

/// `data` and `style` as Miro answers them: its defaults, then what was sent.
pub(crate) fn answered(kind: &str, data: &Value, style: &Value) -> (Value, Value) {
    let (data_defaults, style_defaults) = match kind {
        "sticky_note" => (
            json!({ "content": "", "shape": "square" }),
            json!({ "fillColor": "light_yellow", "textAlign": "center", "textAlignVertical": "top" }),
        ),
        "text" => (
            json!({ "content": "" }),
            json!({ "color": "#1a1a1a", "fontSize": "14", "textAlign": "left" }),
        ),
        "shape" => (
            json!({ "content": "", "shape": "rectangle" }),
            json!({ "fillColor": "#ffffff", "borderColor": "#1a1a1a", "color": "#1a1a1a", "fontSize": "14" }),
        ),
        "card" => (
            json!({ "title": "", "description": "" }),
            json!({ "cardTheme": "#2d9bf0" }),
        ),
        "frame" => (
            json!({ "title": "", "format": "custom", "type": "freeform" }),
            json!({ "fillColor": "#ffffff" }),
        ),
        _ => (json!({}), json!({})),
    };
    (
        super::records::merged(data_defaults, data),
        super::records::merged(style_defaults, style),
    )
}

/// One end of a connector: `{id, snapTo?}`.
fn endpoint(obj: &Map<String, Value>, key: &str) -> Checked<String> {
    let Some(end) = sub_object(obj, "", key, &["id", "snapTo"])? else {
        return Err(FieldError::new(key, "is required"));
    };
    one_of(
        end,
        key,
        "snapTo",
        &["auto", "top", "right", "bottom", "left"],
    )?;
    match string(end, key, "id")? {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(FieldError::new(join(key, "id"), "is required")),
    }
}

/// The body of `POST /v2/boards/{id}/connectors`.
pub(crate) fn connector(v: &Value) -> Checked<NewConnector> {
    let obj = object(
        v,
        "",
        &["startItem", "endItem", "shape", "captions", "style"],
    )?;
    let start = endpoint(obj, "startItem")?;
    let end = endpoint(obj, "endItem")?;
    if start == end {
        return Err(FieldError::new(
            "endItem.id",
            "must differ from startItem.id",
        ));
    }
    one_of(obj, "", "shape", &CONNECTOR_SHAPES)?;
    let shape = string(obj, "", "shape")?.unwrap_or("curved").to_string();
    let captions = match member(obj, "captions") {
        None => vec![],
        Some(Value::Array(list)) if list.len() <= MAX_CAPTIONS => {
            let mut captions = Vec::with_capacity(list.len());
            for (i, c) in list.iter().enumerate() {
                let path = format!("captions.{i}");
                let c = object(c, &path, &["content", "position", "textAlignVertical"])?;
                one_of(c, &path, "textAlignVertical", &TEXT_ALIGN_VERTICAL)?;
                if let Some(p) = member(c, "position") {
                    let fraction = match p {
                        Value::String(s) => s.strip_suffix('%').and_then(|n| n.parse::<f64>().ok()),
                        Value::Number(n) => n.as_f64().map(|n| n * 100.0),
                        _ => None,
                    };
                    if !fraction.is_some_and(|f| (0.0..=100.0).contains(&f)) {
                        return Err(FieldError::new(
                            join(&path, "position"),
                            "must be a percentage, 0% to 100%",
                        ));
                    }
                }
                match markup_field(c, &path, "content", Some(MAX_CONTENT))? {
                    Some(content) if !content.is_empty() => captions.push(content),
                    _ => return Err(FieldError::new(join(&path, "content"), "is required")),
                }
            }
            captions
        }
        Some(_) => {
            return Err(FieldError::new(
                "captions",
                format!("must be an array of at most {MAX_CAPTIONS} captions"),
            ))
        }
    };
    let style = match sub_object(
        obj,
        "",
        "style",
        &[
            "color",
            "endStrokeCap",
            "fontSize",
            "startStrokeCap",
            "strokeColor",
            "strokeStyle",
            "strokeWidth",
            "textOrientation",
        ],
    )? {
        None => json!({}),
        Some(s) => {
            hex_color(s, "style", "color")?;
            hex_color(s, "style", "strokeColor")?;
            one_of(s, "style", "startStrokeCap", &STROKE_CAPS)?;
            one_of(s, "style", "endStrokeCap", &STROKE_CAPS)?;
            one_of(s, "style", "strokeStyle", &STROKE_STYLES)?;
            one_of(s, "style", "textOrientation", &["horizontal", "aligned"])?;
            number_in(s, "style", "fontSize", 10.0, 288.0)?;
            number_in(s, "style", "strokeWidth", 1.0, 24.0)?;
            Value::Object(s.clone())
        }
    };
    Ok(NewConnector {
        start,
        end,
        shape,
        captions,
        style,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Value) -> String {
        bulk_item(&v)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.field)
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let cases = [
            (json!({ "type": "frame" }), "type"),
            (json!({ "type": "image" }), "type"),
            (json!({ "data": {} }), "type"),
            (json!({ "type": "text", "nope": 1 }), "nope"),
            (
                json!({ "type": "text", "data": { "content": "x", "html": 1 } }),
                "data.html",
            ),
            (json!({ "type": "text" }), "data.content"),
            (
                json!({ "type": "text", "data": { "content": "" } }),
                "data.content",
            ),
            (
                json!({ "type": "text", "data": { "content": "x" }, "geometry": { "height": 9 } }),
                "geometry.height",
            ),
            (
                json!({ "type": "text", "data": { "content": "x" }, "style": { "fillColor": "red" } }),
                "style.fillColor",
            ),
            (
                json!({ "type": "sticky_note", "style": { "fillColor": "#ff0000" } }),
                "style.fillColor",
            ),
            (
                json!({ "type": "sticky_note", "geometry": { "width": 9, "height": 9 } }),
                "geometry",
            ),
            (
                json!({ "type": "sticky_note", "data": { "shape": "circle" } }),
                "data.shape",
            ),
            (
                json!({ "type": "sticky_note", "data": { "content": "<script>x</script>" } }),
                "data.content",
            ),
            (
                json!({ "type": "sticky_note", "data": { "content": "a".repeat(6_001) } }),
                "data.content",
            ),
            (
                json!({ "type": "shape", "data": { "shape": "blob" } }),
                "data.shape",
            ),
            (
                json!({ "type": "shape", "geometry": { "width": 0 } }),
                "geometry.width",
            ),
            (
                json!({ "type": "shape", "geometry": { "rotation": 9 } }),
                "geometry.rotation",
            ),
            (
                json!({ "type": "shape", "position": { "x": "1" } }),
                "position.x",
            ),
            (
                json!({ "type": "shape", "position": { "x": 1, "z": 2 } }),
                "position.z",
            ),
            (
                json!({ "type": "card", "data": { "title": "<div>t</div>" } }),
                "data.title",
            ),
            (
                json!({ "type": "card", "data": { "dueDate": "soon" } }),
                "data.dueDate",
            ),
            (
                json!({ "type": "card", "style": { "cardTheme": "#12345" } }),
                "style.cardTheme",
            ),
            (json!({ "type": "card", "parent": {} }), "parent.id"),
            (json!("text"), ""),
        ];
        for (item, expected) in cases {
            assert_eq!(field(item.clone()), expected, "{item}");
        }
        assert_eq!(
            FieldError::new("style.fillColor", "x").at(3).field,
            "3.style.fillColor"
        );
        assert_eq!(FieldError::new("", "x").at(3).field, "3");
    }

    #[test]
    fn geometry_follows_the_type() {
        let g = |v: Value| bulk_item(&v).map(|i| i.geometry).map_err(|e| e.field);
        assert_eq!(g(json!({ "type": "sticky_note" })), Ok((199.0, 228.0)));
        assert_eq!(
            g(
                json!({ "type": "sticky_note", "data": { "shape": "rectangle" }, "geometry": { "width": 350 } })
            ),
            Ok((350.0, 228.0))
        );
        assert_eq!(
            g(json!({ "type": "sticky_note", "geometry": { "height": 228 } })),
            Ok((199.0, 228.0))
        );
        assert_eq!(
            g(json!({ "type": "text", "data": { "content": "t" } })),
            Ok((300.0, 50.0))
        );
        assert_eq!(
            g(json!({ "type": "shape", "geometry": { "height": 50 } })),
            Ok((200.0, 50.0))
        );
        assert_eq!(g(json!({ "type": "card" })), Ok((320.0, 94.0)));
        let f = |v: Value| frame(&v).map(|i| i.geometry).map_err(|e| e.field);
        assert_eq!(
            f(json!({ "geometry": { "width": 10, "height": 20 } })),
            Ok((10.0, 20.0))
        );
        assert_eq!(f(json!({})), Err("geometry.width".to_string()));
        assert_eq!(
            f(
                json!({ "geometry": { "width": 10, "height": 20 }, "data": { "format": "desktop" } })
            ),
            Err("data.format".to_string())
        );
        assert_eq!(
            f(json!({ "type": "frame", "geometry": { "width": 10, "height": 20 } })),
            Err("type".to_string())
        );
    }

    #[test]
    fn connectors_rules() {
        let c = |v: Value| connector(&v).map(|c| c.shape).map_err(|e| e.field);
        let ends = |a: &str, b: &str| json!({ "startItem": { "id": a }, "endItem": { "id": b } });
        assert_eq!(c(ends("1", "2")), Ok("curved".to_string()));
        assert_eq!(c(ends("1", "1")), Err("endItem.id".to_string()));
        assert_eq!(
            c(json!({ "endItem": { "id": "2" } })),
            Err("startItem".to_string())
        );
        let mut v = ends("1", "2");
        v["shape"] = json!("wavy");
        assert_eq!(c(v), Err("shape".to_string()));
        let mut v = ends("1", "2");
        v["captions"] = json!([{ "content": "ok" }, { "content": "<script>" }]);
        assert_eq!(c(v), Err("captions.1.content".to_string()));
        let mut v = ends("1", "2");
        v["captions"] = json!(vec![json!({ "content": "c" }); 21]);
        assert_eq!(c(v), Err("captions".to_string()));
        let mut v = ends("1", "2");
        v["startItem"]["snapTo"] = json!("middle");
        assert_eq!(c(v), Err("startItem.snapTo".to_string()));
    }
}

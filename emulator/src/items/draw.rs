//! The drawn board: `GET /app/board/{id}` (a board's view link) as an HTML
//! page with one inline SVG, one `<g data-item-id data-type>` per item and
//! connector. Every text is tags-stripped, then XML-escaped: nothing a
//! client sent can become markup here.

use super::markup::plain_lines;
use super::records::{ConnectorRecord, ItemRecord};
use super::rules::answered;
use crate::BoardRecord;
use serde_json::Value;
use std::fmt::Write as _;

/// The page's Content-Security-Policy: no script, no fetch, inline styles.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";
/// Room around the items, in board units.
const MARGIN: f64 = 50.0;
const LINE_HEIGHT: f64 = 1.25;

/// Text for XML, in content and attribute values alike.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not XML: a space instead.
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate, to the hundredth.
fn n(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    // Never `-0`.
    format!("{}", if r == 0.0 { 0.0 } else { r })
}

/// Miro's sticky-note colours by name.
fn sticky_fill(name: &str) -> &'static str {
    match name {
        "gray" => "#e6e6e6",
        "yellow" => "#f5d128",
        "orange" => "#ff9d48",
        "light_green" => "#d5f692",
        "green" => "#c9df56",
        "dark_green" => "#93d275",
        "cyan" => "#67c6c0",
        "light_pink" => "#ffcee0",
        "pink" => "#ea94bb",
        "violet" => "#c6a2d2",
        "red" => "#f0939d",
        "light_blue" => "#a6ccf5",
        "blue" => "#6cd8fa",
        "dark_blue" => "#9ea9ff",
        "black" => "#000000",
        _ => "#fff9b1",
    }
}

/// `style[key]` if it is a `#rrggbb` colour (a foreign item's style was
/// never checked).
fn hex<'a>(style: &'a Value, key: &str) -> Option<&'a str> {
    style.get(key).and_then(Value::as_str).filter(|c| {
        c.len() == 7 && c.starts_with('#') && c.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
    })
}

/// `style[key]` if it is a colour, else `fallback`.
fn color<'a>(style: &'a Value, key: &str, fallback: &'a str) -> &'a str {
    hex(style, key).unwrap_or(fallback)
}

fn text_of(data: &Value, key: &str) -> Vec<String> {
    data.get(key)
        .and_then(Value::as_str)
        .map(plain_lines)
        .unwrap_or_default()
}

/// Lines of text centred on `(x, y)`.
fn text_block(
    out: &mut String,
    lines: &[String],
    x: f64,
    y: f64,
    size: f64,
    fill: &str,
    anchor: &str,
) {
    if lines.is_empty() {
        return;
    }
    let first = y - (lines.len() as f64 - 1.0) * size * LINE_HEIGHT / 2.0;
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="{}" fill="{}" text-anchor="{anchor}" dominant-baseline="middle">"#,
        n(x),
        n(first),
        n(size),
        xml_escape(fill),
    );
    for (i, line) in lines.iter().enumerate() {
        let dy = if i == 0 { 0.0 } else { size * LINE_HEIGHT };
        let _ = write!(
            out,
            r#"<tspan x="{}" dy="{}">{}</tspan>"#,
            n(x),
            n(dy),
            xml_escape(line)
        );
    }
    out.push_str("</text>");
}

/// The outline of a shape kind in a unit box, as polygon corners; `None`
/// for the kinds drawn as a rectangle or an ellipse.
fn polygon(kind: &str) -> Option<Vec<(f64, f64)>> {
    let regular = |sides: usize, turn: f64| {
        (0..sides)
            .map(|i| {
                let a = turn + std::f64::consts::TAU * i as f64 / sides as f64;
                (0.5 + 0.5 * a.cos(), 0.5 + 0.5 * a.sin())
            })
            .collect::<Vec<_>>()
    };
    let up = -std::f64::consts::FRAC_PI_2;
    Some(match kind {
        "triangle" => vec![(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)],
        "rhombus" => vec![(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)],
        "parallelogram" => vec![(0.25, 0.0), (1.0, 0.0), (0.75, 1.0), (0.0, 1.0)],
        "trapezoid" => vec![(0.25, 0.0), (0.75, 0.0), (1.0, 1.0), (0.0, 1.0)],
        "pentagon" => regular(5, up),
        "hexagon" => regular(6, 0.0),
        "octagon" => regular(8, std::f64::consts::PI / 8.0),
        "star" => (0..10)
            .map(|i| {
                let a = up + std::f64::consts::TAU * f64::from(i) / 10.0;
                let r = if i % 2 == 0 { 0.5 } else { 0.2 };
                (0.5 + r * a.cos(), 0.5 + r * a.sin())
            })
            .collect(),
        "cross" => vec![
            (0.35, 0.0),
            (0.65, 0.0),
            (0.65, 0.35),
            (1.0, 0.35),
            (1.0, 0.65),
            (0.65, 0.65),
            (0.65, 1.0),
            (0.35, 1.0),
            (0.35, 0.65),
            (0.0, 0.65),
            (0.0, 0.35),
            (0.35, 0.35),
        ],
        "right_arrow" => vec![
            (0.0, 0.25),
            (0.6, 0.25),
            (0.6, 0.0),
            (1.0, 0.5),
            (0.6, 1.0),
            (0.6, 0.75),
            (0.0, 0.75),
        ],
        "left_arrow" => vec![
            (1.0, 0.25),
            (0.4, 0.25),
            (0.4, 0.0),
            (0.0, 0.5),
            (0.4, 1.0),
            (0.4, 0.75),
            (1.0, 0.75),
        ],
        "left_right_arrow" => vec![
            (0.0, 0.5),
            (0.25, 0.0),
            (0.25, 0.25),
            (0.75, 0.25),
            (0.75, 0.0),
            (1.0, 0.5),
            (0.75, 1.0),
            (0.75, 0.75),
            (0.25, 0.75),
            (0.25, 1.0),
        ],
        "wedge_round_rectangle_callout" => vec![
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 0.8),
            (0.45, 0.8),
            (0.2, 1.0),
            (0.25, 0.8),
            (0.0, 0.8),
        ],
        "left_brace" => vec![
            (1.0, 0.0),
            (0.6, 0.05),
            (0.6, 0.45),
            (0.0, 0.5),
            (0.6, 0.55),
            (0.6, 0.95),
            (1.0, 1.0),
        ],
        "right_brace" => vec![
            (0.0, 0.0),
            (0.4, 0.05),
            (0.4, 0.45),
            (1.0, 0.5),
            (0.4, 0.55),
            (0.4, 0.95),
            (0.0, 1.0),
        ],
        _ => return None,
    })
}

fn font_size(style: &Value, fallback: f64) -> f64 {
    let size = match style.get("fontSize") {
        Some(Value::Number(v)) => v.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    size.filter(|s: &f64| s.is_finite() && *s > 0.0)
        .unwrap_or(fallback)
}

fn item(out: &mut String, it: &ItemRecord) {
    let (data, style) = answered(&it.kind, &it.data, &it.style);
    let (l, t, r, b) = it.bounds;
    let (w, h) = (r - l, b - t);
    let (cx, cy) = it.center();
    let rect = |out: &mut String, fill: &str, stroke: &str, rx: f64| {
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" rx="{}" fill="{}" stroke="{}"/>"#,
            n(l),
            n(t),
            n(w),
            n(h),
            n(rx),
            xml_escape(fill),
            xml_escape(stroke)
        );
    };
    let shape_kind = data
        .get("shape")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"<g data-item-id="{}" data-type="{}""#,
        xml_escape(&it.id),
        xml_escape(&it.kind)
    );
    if it.kind == "shape" {
        let _ = write!(out, r#" data-shape="{}""#, xml_escape(shape_kind));
    }
    if let Some(parent) = &it.parent {
        let _ = write!(out, r#" data-parent-id="{}""#, xml_escape(parent));
    }
    out.push('>');
    match it.kind.as_str() {
        "frame" => {
            rect(out, color(&style, "fillColor", "#ffffff"), "#c3c3c3", 0.0);
            let title = text_of(&data, "title").join(" ");
            let _ = write!(
                out,
                r##"<text x="{}" y="{}" font-size="16" fill="#1a1a1a">{}</text>"##,
                n(l),
                n(t - 10.0),
                xml_escape(&title)
            );
        }
        "sticky_note" => {
            let fill = sticky_fill(
                style
                    .get("fillColor")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            rect(out, fill, "none", 2.0);
            let text = if fill == "#000000" {
                "#ffffff"
            } else {
                "#1a1a1a"
            };
            text_block(
                out,
                &text_of(&data, "content"),
                cx,
                cy,
                14.0,
                text,
                "middle",
            );
        }
        "shape" => {
            let fill = color(&style, "fillColor", "#ffffff");
            let stroke = color(&style, "borderColor", "#1a1a1a");
            if let Some(points) = polygon(shape_kind) {
                let points: Vec<String> = points
                    .iter()
                    .map(|(px, py)| format!("{},{}", n(l + px * w), n(t + py * h)))
                    .collect();
                let _ = write!(
                    out,
                    r#"<polygon points="{}" fill="{}" stroke="{}"/>"#,
                    points.join(" "),
                    xml_escape(fill),
                    xml_escape(stroke)
                );
            } else if shape_kind == "circle" {
                let _ = write!(
                    out,
                    r#"<ellipse cx="{}" cy="{}" rx="{}" ry="{}" fill="{}" stroke="{}"/>"#,
                    n(cx),
                    n(cy),
                    n(w / 2.0),
                    n(h / 2.0),
                    xml_escape(fill),
                    xml_escape(stroke)
                );
            } else {
                let rx = match shape_kind {
                    "round_rectangle" | "can" => w.min(h) / 8.0,
                    "cloud" => w.min(h) / 3.0,
                    _ => 0.0,
                };
                rect(out, fill, stroke, rx);
            }
            let text = color(&style, "color", "#1a1a1a");
            text_block(
                out,
                &text_of(&data, "content"),
                cx,
                cy,
                font_size(&style, 14.0),
                text,
                "middle",
            );
        }
        "card" => {
            let theme = color(&style, "cardTheme", "#2d9bf0");
            rect(out, "#ffffff", theme, 4.0);
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="6" height="{}" fill="{}"/>"#,
                n(l),
                n(t),
                n(h),
                xml_escape(theme)
            );
            let title = text_of(&data, "title").join(" ");
            let _ = write!(
                out,
                r##"<text x="{}" y="{}" font-size="14" font-weight="bold" fill="#1a1a1a" dominant-baseline="hanging">{}</text>"##,
                n(l + 16.0),
                n(t + 12.0),
                xml_escape(&title)
            );
            let description = text_of(&data, "description");
            text_block(
                out,
                &description,
                l + 16.0,
                t + 54.0,
                12.0,
                "#4a4a4a",
                "start",
            );
        }
        "text" => {
            if let Some(fill) = hex(&style, "fillColor") {
                rect(out, fill, "none", 0.0);
            }
            let text = color(&style, "color", "#1a1a1a");
            text_block(
                out,
                &text_of(&data, "content"),
                cx,
                cy,
                font_size(&style, 14.0),
                text,
                "middle",
            );
        }
        _ => {
            // A type the emulator does not create (a foreign item): its box and its type.
            rect(out, "#f7f7f7", "#8f8f8f", 0.0);
            let lines = [format!("[{}]", it.kind)]
                .into_iter()
                .chain(text_of(&data, "content"))
                .collect::<Vec<_>>();
            text_block(out, &lines, cx, cy, 12.0, "#4a4a4a", "middle");
        }
    }
    out.push_str("</g>");
}

fn connector(out: &mut String, c: &ConnectorRecord, items: &[ItemRecord]) {
    let _ = write!(
        out,
        r#"<g data-item-id="{}" data-type="connector" data-start-id="{}" data-end-id="{}">"#,
        xml_escape(&c.id),
        xml_escape(&c.start),
        xml_escape(&c.end)
    );
    let center = |id: &str| items.iter().find(|i| i.id == id).map(ItemRecord::center);
    if let (Some((x1, y1)), Some((x2, y2))) = (center(&c.start), center(&c.end)) {
        let stroke = color(&c.style, "strokeColor", "#1a1a1a");
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2"/>"#,
            n(x1),
            n(y1),
            n(x2),
            n(y2),
            xml_escape(stroke)
        );
        let lines: Vec<String> = c.captions.iter().flat_map(|cap| plain_lines(cap)).collect();
        text_block(
            out,
            &lines,
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0,
            12.0,
            "#1a1a1a",
            "middle",
        );
    }
    out.push_str("</g>");
}

/// The page for `board`: frames first, then the other items in creation
/// order, then connectors on top.
pub(crate) fn page(
    board: &BoardRecord,
    items: &[ItemRecord],
    connectors: &[ConnectorRecord],
) -> String {
    let (mut l, mut t, mut r, mut b) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for it in items {
        let (il, it_, ir, ib) = it.bounds;
        l = l.min(il);
        t = t.min(it_);
        r = r.max(ir);
        b = b.max(ib);
    }
    if items.is_empty() {
        (l, t, r, b) = (-500.0, -300.0, 500.0, 300.0);
    }
    let (vx, vy, vw, vh) = (
        l - MARGIN,
        t - MARGIN,
        r - l + 2.0 * MARGIN,
        b - t + 2.0 * MARGIN,
    );
    let name = xml_escape(&board.name);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}</title>\
<style>body{{margin:0;font-family:sans-serif;background:#f2f2f2}}h1{{font-size:16px;margin:8px 12px}}\
svg{{display:block;width:100vw;height:calc(100vh - 40px);background:#fafafa}}</style></head><body>\
<h1>{name}</h1><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"{} {} {} {}\" data-board-id=\"{}\" \
font-family=\"sans-serif\">",
        n(vx),
        n(vy),
        n(vw),
        n(vh),
        xml_escape(&board.id),
    );
    for it in items.iter().filter(|i| i.kind == "frame") {
        item(&mut out, it);
    }
    for it in items.iter().filter(|i| i.kind != "frame") {
        item(&mut out, it);
    }
    for c in connectors {
        connector(&mut out, c, items);
    }
    out.push_str("</svg></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::xml_escape;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            xml_escape("<a href=\"x\">'&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt; "
        );
    }
}

//! Board content at Miro: frames one at a time, the other items in bulk
//! calls of at most 20 (transactional at Miro), connectors one at a time,
//! and reading a board's items and connectors back. None of Miro's create
//! calls takes an idempotency key: what a lost answer did is learnt by
//! reading the board, never by sending again.

use super::*;
use crate::domain::{Connector, Item, ItemKind, Placement};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// One item as the saga sends it: where it goes (relative to its frame,
/// when it has one) and its frame's Miro id.
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    pub item: &'a Item,
    pub placement: Placement,
    pub parent: Option<&'a str>,
}

/// App text as Miro's content: Miro renders a small HTML subset, and an
/// app's data is never markup. A newline becomes a line break.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", "\n").chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Content as text, whatever markup Miro added or kept: for comparing what
/// was sent with what a board holds.
pub fn plain_text(content: &str) -> String {
    let mut text = String::with_capacity(content.len());
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text an item carries at Miro (its content, else its title), as sent.
pub fn sent_text(item: &Item) -> Option<String> {
    item.text
        .as_deref()
        .or(item.title.as_deref())
        .map(escape_text)
}

fn position(p: &Placement) -> Value {
    json!({ "x": p.x, "y": p.y })
}

/// Miro's body for one item (`frames` or a bulk entry).
pub fn item_body(new: &NewItem<'_>) -> Value {
    let (item, p) = (new.item, &new.placement);
    let text = item.text.as_deref().map(escape_text);
    let mut data = Map::new();
    let mut style = Map::new();
    let geometry = match item.kind {
        ItemKind::StickyNote => {
            if let Some(t) = text {
                data.insert("content".into(), t.into());
            }
            data.insert(
                "shape".into(),
                item.shape.clone().unwrap_or_else(|| "square".into()).into(),
            );
            if let Some(c) = &item.color {
                style.insert("fillColor".into(), c.clone().into());
            }
            // Miro takes one side of a sticky note and keeps its proportions.
            if item.height.is_some() && item.width.is_none() {
                json!({ "height": p.height })
            } else {
                json!({ "width": p.width })
            }
        }
        ItemKind::Text => {
            if let Some(t) = text {
                data.insert("content".into(), t.into());
            }
            if let Some(c) = &item.color {
                style.insert("color".into(), c.clone().into());
            }
            json!({ "width": p.width })
        }
        ItemKind::Shape => {
            if let Some(t) = text {
                data.insert("content".into(), t.into());
            }
            data.insert(
                "shape".into(),
                item.shape
                    .clone()
                    .unwrap_or_else(|| "rectangle".into())
                    .into(),
            );
            if let Some(c) = &item.color {
                style.insert("fillColor".into(), c.clone().into());
            }
            json!({ "width": p.width, "height": p.height })
        }
        ItemKind::Card => {
            if let Some(t) = &item.title {
                data.insert("title".into(), escape_text(t).into());
            }
            if let Some(d) = &item.description {
                data.insert("description".into(), escape_text(d).into());
            }
            if let Some(c) = &item.color {
                style.insert("cardTheme".into(), c.clone().into());
            }
            json!({ "width": p.width, "height": p.height })
        }
        ItemKind::Frame => {
            if let Some(t) = &item.title {
                data.insert("title".into(), escape_text(t).into());
            }
            data.insert("format".into(), "custom".into());
            data.insert("type".into(), "freeform".into());
            if let Some(c) = &item.color {
                style.insert("fillColor".into(), c.clone().into());
            }
            json!({ "width": p.width, "height": p.height })
        }
    };
    let mut body = json!({
        "data": data,
        "position": position(p),
        "geometry": geometry,
    });
    if let Value::Object(fields) = &mut body {
        if item.kind != ItemKind::Frame {
            fields.insert("type".into(), item.kind.as_str().into());
        }
        if !style.is_empty() {
            fields.insert("style".into(), Value::Object(style));
        }
        if let Some(parent) = new.parent {
            fields.insert("parent".into(), json!({ "id": parent }));
        }
    }
    body
}

/// Miro's body for a connector between two items it knows by id.
pub fn connector_body(connector: &Connector, start: &str, end: &str) -> Value {
    let mut body = json!({
        "startItem": { "id": start },
        "endItem": { "id": end },
        "shape": connector.shape.map_or("curved", |s| s.as_str()),
    });
    if let (Some(caption), Value::Object(fields)) = (&connector.caption, &mut body) {
        fields.insert(
            "captions".into(),
            json!([{ "content": escape_text(caption) }]),
        );
    }
    body
}

/// An item as a board holds it: what reconciling a lost answer compares.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardItem {
    pub id: String,
    pub kind: String,
    /// Its content (or title), as plain text.
    pub text: String,
    pub x: f64,
    pub y: f64,
    pub parent: Option<String>,
    /// The Miro user who made it.
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoardConnector {
    pub id: String,
    pub start: String,
    pub end: String,
    pub caption: String,
}

#[derive(Deserialize)]
struct Created {
    #[serde(deserialize_with = "super::required_id")]
    id: String,
}

#[derive(Deserialize)]
struct BulkAnswer {
    data: Vec<Created>,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize, Default)]
struct Ref {
    #[serde(default, deserialize_with = "string_or_number")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct ItemData {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct Position {
    #[serde(default)]
    x: f64,
    #[serde(default)]
    y: f64,
}

#[derive(Deserialize)]
struct ListedItem {
    #[serde(deserialize_with = "super::required_id")]
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    data: Option<ItemData>,
    #[serde(default)]
    position: Option<Position>,
    #[serde(default)]
    parent: Option<Ref>,
    #[serde(default, rename = "createdBy")]
    created_by: Option<Ref>,
}

#[derive(Deserialize)]
struct Caption {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedConnector {
    #[serde(deserialize_with = "super::required_id")]
    id: String,
    #[serde(default)]
    start_item: Option<Ref>,
    #[serde(default)]
    end_item: Option<Ref>,
    #[serde(default)]
    captions: Vec<Caption>,
}

/// Pages read at most when reading a board back (50 items a page): a board
/// with more than this many items is not one the saga can account for.
pub const MAX_PAGES: usize = 40;

/// Miro's `400` for an item names it as `<index>.<field>` in
/// `context.fields`; this is that, read back.
#[derive(Debug, Deserialize, Default)]
struct RefusalBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    context: Option<RefusalContext>,
}

#[derive(Debug, Deserialize, Default)]
struct RefusalContext {
    #[serde(default)]
    fields: Vec<RefusedField>,
}

#[derive(Debug, Deserialize, Default)]
struct RefusedField {
    #[serde(default)]
    field: String,
    #[serde(default)]
    message: String,
}

impl MiroApi {
    /// `POST /v2/boards/{id}/frames`: one frame; its new id.
    pub async fn create_frame(
        &self,
        access_token: &Secret,
        board_id: &str,
        frame: &NewItem<'_>,
    ) -> Result<String, MiroError> {
        let answer = self
            .post_item(
                access_token,
                board_id,
                "frames",
                &item_body(frame),
                "create_frame",
            )
            .await?;
        let created: Created = serde_json::from_slice(&answer).map_err(|_| lost_answer())?;
        Ok(created.id)
    }

    /// `POST /v2/boards/{id}/items/bulk`: 1 to 20 items, all or none; their
    /// new ids in the order sent.
    pub async fn create_items(
        &self,
        access_token: &Secret,
        board_id: &str,
        items: &[NewItem<'_>],
    ) -> Result<Vec<String>, MiroError> {
        let body = Value::Array(items.iter().map(item_body).collect());
        let answer = self
            .post_item(access_token, board_id, "items/bulk", &body, "create_items")
            .await?;
        let created: BulkAnswer = serde_json::from_slice(&answer).map_err(|_| lost_answer())?;
        if created.data.len() != items.len() {
            return Err(lost_answer());
        }
        Ok(created.data.into_iter().map(|c| c.id).collect())
    }

    /// `POST /v2/boards/{id}/connectors`; its new id.
    pub async fn create_connector(
        &self,
        access_token: &Secret,
        board_id: &str,
        connector: &Connector,
        start: &str,
        end: &str,
    ) -> Result<String, MiroError> {
        let body = connector_body(connector, start, end);
        let answer = self
            .post_item(
                access_token,
                board_id,
                "connectors",
                &body,
                "create_connector",
            )
            .await?;
        let created: Created = serde_json::from_slice(&answer).map_err(|_| lost_answer())?;
        Ok(created.id)
    }

    async fn post_item(
        &self,
        access_token: &Secret,
        board_id: &str,
        path: &str,
        body: &Value,
        call: &'static str,
    ) -> Result<Vec<u8>, MiroError> {
        let rest: Vec<&str> = path.split('/').collect();
        let response = self
            .http
            .post(self.board_url(board_id, &rest)?)
            .bearer_auth(access_token.expose())
            .json(body)
            .send_as(call)
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(item_failure(response, self.clock.now()).await);
        }
        // A 201 whose body is lost or unreadable: the items may well exist.
        read_capped(response).await.map_err(|_| lost_answer())
    }

    /// Every item on the board (`GET /v2/boards/{id}/items`, 50 a page), at
    /// most [`MAX_PAGES`] pages; `None` when the board holds more.
    pub async fn board_items(
        &self,
        access_token: &Secret,
        board_id: &str,
    ) -> Result<Option<Vec<BoardItem>>, MiroError> {
        let pages: Option<Vec<ListedItem>> =
            self.read_pages(access_token, board_id, "items").await?;
        Ok(pages.map(|items| {
            items
                .into_iter()
                .map(|i| BoardItem {
                    id: i.id,
                    kind: i.kind,
                    text: i
                        .data
                        .and_then(|d| d.content.or(d.title))
                        .map(|t| plain_text(&t))
                        .unwrap_or_default(),
                    x: i.position.as_ref().map_or(0.0, |p| p.x),
                    y: i.position.as_ref().map_or(0.0, |p| p.y),
                    parent: i.parent.and_then(|p| p.id),
                    created_by: i.created_by.and_then(|u| u.id),
                })
                .collect()
        }))
    }

    /// Every connector on the board (`GET /v2/boards/{id}/connectors`).
    pub async fn board_connectors(
        &self,
        access_token: &Secret,
        board_id: &str,
    ) -> Result<Option<Vec<BoardConnector>>, MiroError> {
        let pages: Option<Vec<ListedConnector>> = self
            .read_pages(access_token, board_id, "connectors")
            .await?;
        Ok(pages.map(|lines| {
            lines
                .into_iter()
                .map(|c| BoardConnector {
                    id: c.id,
                    start: c.start_item.and_then(|r| r.id).unwrap_or_default(),
                    end: c.end_item.and_then(|r| r.id).unwrap_or_default(),
                    caption: c
                        .captions
                        .first()
                        .map(|c| plain_text(&c.content))
                        .unwrap_or_default(),
                })
                .collect()
        }))
    }

    async fn read_pages<T: serde::de::DeserializeOwned>(
        &self,
        access_token: &Secret,
        board_id: &str,
        what: &str,
    ) -> Result<Option<Vec<T>>, MiroError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.board_url(board_id, &[what])?;
            url.query_pairs_mut().append_pair("limit", "50");
            if let Some(c) = &cursor {
                url.query_pairs_mut().append_pair("cursor", c);
            }
            let response = self
                .http
                .get(url)
                .bearer_auth(access_token.expose())
                .send_as("list_items")
                .await
                .map_err(transport)?;
            if response.status() != StatusCode::OK {
                return Err(item_failure(response, self.clock.now()).await);
            }
            let body = read_capped(response)
                .await
                .map_err(|_| unreadable("item list"))?;
            let page: Page<T> =
                serde_json::from_slice(&body).map_err(|_| unreadable("item list"))?;
            all.extend(page.data);
            match page.cursor.filter(|c| !c.is_empty()) {
                Some(next) => cursor = Some(next),
                None => return Ok(Some(all)),
            }
        }
        Ok(None)
    }
}

/// An answer lost after Miro may have acted.
fn lost_answer() -> MiroError {
    MiroError::Unavailable {
        may_have_taken_effect: true,
        detail: "unreadable item answer".into(),
    }
}

/// Miro's answer to a content call that failed: a `400` naming an item
/// becomes [`MiroError::InvalidItem`]; a `404` is a board the token cannot
/// reach; the rest as for any call.
async fn item_failure(response: reqwest::Response, now: i64) -> MiroError {
    let status = response.status();
    if status != StatusCode::BAD_REQUEST && status != StatusCode::NOT_FOUND {
        return failure(response, now).await;
    }
    let body: RefusalBody = read_capped(response)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if body.code.as_deref() == Some("applicationNotInstalled") {
        return MiroError::NotInstalled;
    }
    if status == StatusCode::NOT_FOUND {
        return MiroError::BoardNotFound;
    }
    let named = body
        .context
        .and_then(|c| c.fields.into_iter().next())
        .unwrap_or_default();
    let (index, field) = match named.field.split_once('.') {
        Some((i, rest)) => (i.parse().ok(), rest.to_string()),
        None => (named.field.parse().ok(), String::new()),
    };
    let mut message = if named.message.is_empty() {
        body.message.unwrap_or_else(|| "refused by Miro".into())
    } else {
        named.message
    };
    message.truncate(message.floor_char_boundary(300));
    MiroError::InvalidItem {
        index,
        field: field.chars().take(100).collect(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_text_is_never_markup_and_reads_back_as_sent() {
        let text = "<script>alert('x')</script> & \"friends\"\nline two";
        let escaped = escape_text(text);
        assert!(!escaped.contains('<') || escaped.contains("<br>"));
        assert!(!escaped.replace("<br>", "").contains(['<', '>', '"', '\'']));
        assert_eq!(plain_text(&escaped), plain_text(&escape_text(text)));
        assert_eq!(
            plain_text(&escaped),
            "<script>alert('x')</script> & \"friends\" line two"
        );
        assert_eq!(plain_text("<p>a&amp;b</p>"), "a&b");
    }
}

//! The small HTML subset Miro takes in an item's `content`, `title` and
//! `description` (and a connector's captions): which tags pass, and the
//! plain text the drawn board shows.
//!
//! Scanning is over bytes: every delimiter is ASCII, and the bytes of a
//! multi-byte UTF-8 character are all above 0x7f, so they never match one.

/// The tags Miro keeps; any other is refused.
const ALLOWED_TAGS: [&str; 13] = [
    "p", "br", "strong", "b", "em", "i", "u", "s", "a", "span", "ol", "ul", "li",
];

/// `Ok` if `s` holds only allowed tags, each closed by `>`, without event
/// handlers or `javascript:` in them; else why not. A `<` that starts no
/// tag (`a < b`) is text, and so are entities.
pub(crate) fn check(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(c) if c.is_ascii_alphabetic() => i = tag(b, i + 1, false)?,
            Some(b'/') => i = tag(b, i + 2, true)?,
            Some(b'!') | Some(b'?') => {
                return Err(
                    "comments, declarations and processing instructions are not allowed".into(),
                )
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks the tag whose name starts at `start`; the index after its `>`.
fn tag(b: &[u8], start: usize, closing: bool) -> Result<usize, String> {
    let name_end = scan(b, start, |c| c.is_ascii_alphanumeric());
    let name = String::from_utf8_lossy(&b[start..name_end]).to_ascii_lowercase();
    if name.is_empty() {
        return Err("a closing tag needs a name".into());
    }
    if !ALLOWED_TAGS.contains(&name.as_str()) {
        return Err(format!(
            "tag <{name}> is not allowed (allowed: {})",
            ALLOWED_TAGS.join(", ")
        ));
    }
    let mut i = name_end;
    loop {
        i = scan(b, i, |c| c.is_ascii_whitespace());
        match b.get(i) {
            None => return Err(format!("tag <{name}> is not closed by >")),
            Some(b'>') => return Ok(i + 1),
            Some(b'/') => {
                i += 1;
                continue;
            }
            Some(_) if closing => return Err(format!("closing tag </{name}> takes no attributes")),
            Some(_) => {}
        }
        let attr_end = scan(b, i, |c| !c.is_ascii_whitespace() && !b"=>/".contains(&c));
        let attr = String::from_utf8_lossy(&b[i..attr_end]).to_ascii_lowercase();
        if attr.starts_with("on") {
            return Err(format!("attribute {attr} is not allowed"));
        }
        i = scan(b, attr_end, |c| c.is_ascii_whitespace());
        if b.get(i) != Some(&b'=') {
            continue;
        }
        i = scan(b, i + 1, |c| c.is_ascii_whitespace());
        let (value_start, value_end, next) = match b.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let end = scan(b, i + 1, |c| c != q);
                if end >= b.len() {
                    return Err(format!("tag <{name}> has an unterminated attribute value"));
                }
                (i + 1, end, end + 1)
            }
            _ => {
                let end = scan(b, i, |c| !c.is_ascii_whitespace() && c != b'>');
                (i, end, end)
            }
        };
        let value: String = String::from_utf8_lossy(&b[value_start..value_end])
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if value.contains("javascript:") {
            return Err(format!("attribute {attr} may not hold a javascript: URL"));
        }
        i = next;
    }
}

/// The first index from `i` whose byte fails `keep` (or the end).
fn scan(b: &[u8], mut i: usize, keep: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && keep(b[i]) {
        i += 1;
    }
    i
}

/// The text a reader sees, line by line: tags dropped (a line ends at
/// `<br>`, `</p>` and `</li>`), entities decoded. Robust to any input (a
/// foreign item's content was never checked): whatever looks like a tag
/// goes, up to its `>` or the end.
pub(crate) fn plain_lines(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut lines = vec![String::new()];
    let mut text_start = 0;
    let mut i = 0;
    while i < b.len() {
        let starts_tag = b[i] == b'<'
            && b.get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || b"/!?".contains(c));
        if !starts_tag {
            i += 1;
            continue;
        }
        push_text(&mut lines, &s[text_start..i]);
        let end = scan(b, i, |c| c != b'>');
        let inner = String::from_utf8_lossy(&b[i + 1..end]).to_ascii_lowercase();
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let breaks = name == "br" || (inner.starts_with('/') && (name == "p" || name == "li"));
        if breaks {
            lines.push(String::new());
        }
        i = (end + 1).min(b.len());
        text_start = i;
    }
    push_text(&mut lines, &s[text_start..]);
    let mut lines: Vec<String> = lines
        .into_iter()
        .map(|l| decode_entities(&l).trim().to_string())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

fn push_text(lines: &mut [String], text: &str) {
    if let Some(last) = lines.last_mut() {
        last.push_str(text);
    }
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;` and numeric
/// references as the characters they stand for; anything else stays.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = entity(&rest[1..]);
        match decoded {
            Some((c, len)) => {
                out.push(c);
                // `len` covers the name and `;`, `1` the `&`.
                rest = &rest[1 + len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character of the entity whose name starts `after` (just past a
/// `&`), and the bytes of its name and `;`.
fn entity(after: &str) -> Option<(char, usize)> {
    // An entity's name is short: look no further than 11 characters.
    let semi = after
        .char_indices()
        .take(11)
        .find(|(_, c)| *c == ';')
        .map(|(at, _)| at)?;
    let name = &after[..semi];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => {
            let code = match name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((c, semi + 1))
}

#[cfg(test)]
mod tests {
    use super::{check, plain_lines};

    #[test]
    fn the_subset_passes_and_nothing_else() {
        for ok in [
            "plain",
            "<p>One</p><p>Two<br>three</p>",
            "<strong>b</strong> <em>i</em> <u>u</u> <s>s</s> <b>x</b><i>y</i>",
            "<a href=\"https://example.com\" target=_blank>link</a>",
            "<ul><li>a</li></ul><ol><li>b</li></ol><span style='color:red'>c</span>",
            "a < b &amp; c &lt;script&gt; <br/> <BR />",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "<script>alert(1)</script>",
            "<img src=x>",
            "<p onclick=\"x()\">a</p>",
            "<a href=\" javascript:alert(1)\">a</a>",
            "<a href='JaVa\nScRiPt:alert(1)'>a</a>",
            "<!-- hidden -->",
            "<p",
            "<a href=\"never closed>",
            "</div>",
            "</p class=x>",
            "<iframe/src=x>",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_text_drops_tags_and_decodes_entities() {
        assert_eq!(
            plain_lines("<p>One &amp; <b>two</b></p><p>three<br>four</p>"),
            ["One & two", "three", "four"]
        );
        assert_eq!(plain_lines("&lt;script&gt;"), ["<script>"]);
        assert_eq!(plain_lines("<script>x</script"), ["x"]);
        assert_eq!(
            plain_lines("a < b &#39;c&#x27; &bogus; &"),
            ["a < b 'c' &bogus; &"]
        );
        assert!(plain_lines("").is_empty());
    }
}

//! SECURITY.md names, for every threat (and every fault below us), the
//! tests that prove the defence. Those names must be real, as whole paths:
//! `it::trust::x` is a test function `x` in the module `trust` of the `it`
//! test crate, not any `fn x` anywhere. The scheme (SECURITY.md says the same):
//!
//! - `it::<module>::…::<test>`: `tests/tests/it/` (the crate root is `main.rs`);
//! - `fuzz::<test>`: `tests/tests/fuzz.rs`;
//! - `miro_connect::<module>::…::<test>`: unit tests in `shared/src/`;
//! - `local::<file>::<test>`: `local/tests/<file>.rs`, else
//!   `local::<module>::…::<test>`: unit tests in `local/src/`;
//! - `browser: <title>`: a `test('<title>'` in `tests/browser/*.mjs`;
//! - a name with a `/`: a file in the repository (a script).
//!
//! Modules are followed as rustc does: `mod m;` to `m.rs` or `m/mod.rs`,
//! inline `mod m { … }`, and `mod $name { … }` made by a `macro_rules!` of
//! the same file called with `m` as its first argument. The function must
//! carry a test attribute (`#[test]`, `#[tokio::test]`).

use std::ops::Range;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The source with comments, string and char literals blanked (same
/// length, newlines kept), so that braces and names can be found in it.
fn clean(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out: Vec<char> = c.clone();
    let blank = |out: &mut Vec<char>, range: Range<usize>| {
        for i in range {
            if out[i] != '\n' {
                out[i] = ' ';
            }
        }
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            blank(&mut out, i..end);
            i = end;
        } else if c[i] == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i..j);
            i = j;
        } else if c[i] == 'r'
            && (i == 0 || !ident(c[i - 1]))
            && matches!(next, Some('"') | Some('#'))
        {
            // A raw string: r"…", r#"…"#, … (a bare `r#ident` is not one).
            let hashes = (i + 1..c.len()).take_while(|&j| c[j] == '#').count();
            let open = i + 1 + hashes;
            if c.get(open) != Some(&'"') {
                i += 1;
                continue;
            }
            let mut j = open + 1;
            while j < c.len() {
                if c[j] == '"' && (j + 1..j + 1 + hashes).all(|k| c.get(k) == Some(&'#')) {
                    break;
                }
                j += 1;
            }
            blank(&mut out, open + 1..j.min(c.len()));
            i = j + 1 + hashes;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1..j.min(c.len()));
            i = j + 1;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                let end = (i + 3..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                blank(&mut out, i + 1..end);
                i = end + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                blank(&mut out, i + 1..i + 2);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Byte offset of the `}` that closes the `{` at `open`.
fn block_end(text: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// Whether `word` stands alone at `at` (not part of a longer identifier).
fn word_at(text: &str, at: usize, word: &str) -> bool {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    text[at..].starts_with(word)
        && (at == 0 || !is_ident(text.as_bytes()[at - 1]))
        && text
            .as_bytes()
            .get(at + word.len())
            .is_none_or(|&b| !is_ident(b))
}

/// The identifier (or `$ident`) starting at `at`, after whitespace.
fn ident_after(text: &str, at: usize) -> (&str, usize) {
    let start = at + (text[at..].len() - text[at..].trim_start().len());
    let len = text[start..]
        .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '$'))
        .unwrap_or(text.len() - start);
    (&text[start..start + len], start + len)
}

/// What a scope declares directly: its modules (a file, or a block) and its
/// macros; nested module and macro bodies are left out of `own`.
struct Items {
    file_modules: Vec<String>,
    block_modules: Vec<(String, Range<usize>)>,
    macros: Vec<(String, Range<usize>)>,
    /// The scope's own text: nested module and macro bodies blanked.
    own: String,
}

fn items(text: &str, range: Range<usize>) -> Items {
    let mut found = Items {
        file_modules: vec![],
        block_modules: vec![],
        macros: vec![],
        own: text[range.clone()].to_string(),
    };
    let mut own = text.as_bytes().to_vec();
    let mut i = range.start;
    while i < range.end {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let is_mod = word_at(text, i, "mod");
        let is_macro = word_at(text, i, "macro_rules")
            && text[i + "macro_rules".len()..]
                .trim_start()
                .starts_with('!');
        if !is_mod && !is_macro {
            i += 1;
            continue;
        }
        let after = i + if is_mod { 3 } else { "macro_rules".len() };
        let after = if is_macro {
            after + text[after..].find('!').map_or(0, |p| p + 1)
        } else {
            after
        };
        let (name, end) = ident_after(text, after);
        let rest = text[end..].trim_start();
        let at = end + (text[end..].len() - rest.len());
        if name.is_empty() {
            i = after;
        } else if is_mod && rest.starts_with(';') {
            found.file_modules.push(name.to_string());
            i = at + 1;
        } else if rest.starts_with('{') {
            let close = block_end(text, at);
            let body = at + 1..close;
            for b in &mut own[body.clone()] {
                if *b != b'\n' {
                    *b = b' ';
                }
            }
            if is_mod {
                found.block_modules.push((name.to_string(), body));
            } else {
                found.macros.push((name.to_string(), body));
            }
            i = close + 1;
        } else {
            i = after;
        }
    }
    found.own = String::from_utf8_lossy(&own[range]).into_owned();
    found
}

/// A module: its file (cleaned), the range of its body in that file, and
/// the directory its `mod m;` children live in.
struct Module {
    file: PathBuf,
    text: String,
    range: Range<usize>,
    dir: PathBuf,
}

impl Module {
    fn file(file: PathBuf, dir: PathBuf) -> Result<Self, String> {
        let source =
            std::fs::read_to_string(&file).map_err(|_| format!("no file {}", file.display()))?;
        let text = clean(&source);
        let range = 0..text.len();
        Ok(Self {
            file,
            text,
            range,
            dir,
        })
    }

    fn child(&self, name: &str) -> Result<Self, String> {
        let found = items(&self.text, self.range.clone());
        if found.file_modules.iter().any(|m| m == name) {
            let flat = self.dir.join(format!("{name}.rs"));
            return if flat.exists() {
                Self::file(flat, self.dir.join(name))
            } else {
                Self::file(self.dir.join(name).join("mod.rs"), self.dir.join(name))
            };
        }
        if let Some((_, body)) = found.block_modules.iter().find(|(m, _)| m == name) {
            return Ok(Self {
                file: self.file.clone(),
                text: self.text.clone(),
                range: body.clone(),
                dir: self.dir.join(name),
            });
        }
        // `mod $name { … }` made by a macro of this file, called with `name`.
        for (mac, body) in &found.macros {
            let called = found
                .own
                .match_indices(&format!("{mac}!"))
                .any(|(at, call)| {
                    let open = at + call.len();
                    let rest = found.own[open..].trim_start();
                    (rest.starts_with('(') || rest.starts_with('{') || rest.starts_with('['))
                        && ident_after(rest, 1).0 == name
                });
            let matcher = &self.text[body.clone()];
            let param = matcher
                .find('$')
                .map(|p| ident_after(matcher, p).0.to_string());
            let Some(param) = param.filter(|_| called) else {
                continue;
            };
            let generated = items(&self.text, body.clone());
            if let Some((_, inner)) = generated.block_modules.iter().find(|(m, _)| *m == param) {
                return Ok(Self {
                    file: self.file.clone(),
                    text: self.text.clone(),
                    range: inner.clone(),
                    dir: self.dir.join(name),
                });
            }
        }
        Err(format!("no module {name} in {}", self.file.display()))
    }

    /// Whether the module itself (not a module inside it) has a test `name`.
    fn has_test(&self, name: &str) -> bool {
        let own = items(&self.text, self.range.clone()).own;
        own.match_indices("fn")
            .filter(|(at, _)| word_at(&own, *at, "fn"))
            .any(|(at, _)| {
                let (ident, end) = ident_after(&own, at + 2);
                if ident != name || !own[end..].trim_start().starts_with(['(', '<']) {
                    return false;
                }
                // The attributes between the previous item and this fn.
                let before = &own[..at];
                let start = before.rfind([';', '{', '}']).map_or(0, |p| p + 1);
                let attributes = &before[start..];
                attributes.contains("#[test]") || attributes.contains("#[tokio::test")
            })
    }
}

/// Finds the test a Rust path names, or says what is missing.
fn locate(name: &str) -> Result<(), String> {
    let root = root();
    let segments: Vec<&str> = name.split("::").collect();
    let (mut module, path): (Module, &[&str]) = match segments.as_slice() {
        ["it", rest @ ..] => (
            Module::file(
                root.join("tests/tests/it/main.rs"),
                root.join("tests/tests/it"),
            )?,
            rest,
        ),
        ["fuzz", rest @ ..] => (
            Module::file(
                root.join("tests/tests/fuzz.rs"),
                root.join("tests/tests/fuzz"),
            )?,
            rest,
        ),
        ["miro_connect", rest @ ..] => (
            Module::file(root.join("shared/src/lib.rs"), root.join("shared/src"))?,
            rest,
        ),
        ["local", file, rest @ ..] if root.join(format!("local/tests/{file}.rs")).exists() => (
            Module::file(
                root.join(format!("local/tests/{file}.rs")),
                root.join(format!("local/tests/{file}")),
            )?,
            rest,
        ),
        ["local", rest @ ..] => (
            Module::file(root.join("local/src/main.rs"), root.join("local/src"))?,
            rest,
        ),
        _ => return Err(format!("{name}: not a path of the scheme")),
    };
    let Some((test, modules)) = path.split_last() else {
        return Err(format!("{name}: no test named"));
    };
    for m in modules {
        module = module.child(m).map_err(|e| format!("{name}: {e}"))?;
    }
    if module.has_test(test) {
        Ok(())
    } else {
        Err(format!(
            "{name}: no test fn {test} in that module of {}",
            module.file.display()
        ))
    }
}

fn browser_tests() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(root().join("tests/browser"))
        .expect("tests/browser")
        .flatten()
    {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".mjs") {
            all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    all
}

/// Every name in backquotes in the last column of the rows of the threat
/// table (`| # | attack | …`) and of the fault table (`| fault | …`).
fn named_tests(doc: &str) -> Vec<(String, Vec<String>)> {
    let mut rows = vec![];
    // The first cell of the current table's header.
    let mut table: Option<String> = None;
    for line in doc.lines() {
        if !line.starts_with('|') {
            table = None;
            continue;
        }
        let first = line
            .split('|')
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string();
        let Some(kind) = &table else {
            table = Some(first);
            continue;
        };
        if line.starts_with("|---") || !matches!(kind.as_str(), "#" | "fault") {
            continue;
        }
        let proved_by = line.rsplit('|').nth(1).expect("last column");
        let names = proved_by
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        rows.push((line.to_string(), names));
    }
    rows
}

fn check(name: &str, browser: &str) -> Result<(), String> {
    if let Some(title) = name.strip_prefix("browser: ") {
        return if browser.contains(&format!("test('{title}'")) {
            Ok(())
        } else {
            Err(format!("no browser test {title:?}"))
        };
    }
    if name.contains('/') {
        return if root().join(name).exists() {
            Ok(())
        } else {
            Err(format!("no file {name}"))
        };
    }
    locate(name)
}

#[test]
fn every_threat_names_a_test_that_exists() {
    let doc = std::fs::read_to_string(root().join("SECURITY.md")).expect("SECURITY.md");
    let browser = browser_tests();
    let rows = named_tests(&doc);
    assert!(rows.len() >= 15, "the threat table has its rows");
    let mut missing = vec![];
    for (row, names) in &rows {
        if names.is_empty() {
            missing.push(format!("a row without a test: {row}"));
        }
        for name in names {
            if let Err(e) = check(name, &browser) {
                missing.push(e);
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The checker itself: whole paths, each kind of module, test functions only.
#[test]
fn the_checker_matches_whole_paths_only() {
    let browser = browser_tests();
    for real in [
        "it::security_doc::every_threat_names_a_test_that_exists",
        "it::store_contract::dynamodb_local::pending_is_taken_exactly_once",
        "fuzz::create_board_body",
        "miro_connect::seal::tests::opens_only_at_its_place",
        "miro_connect::logging::tests::no_setting_opens_the_runtime_or_the_sdks_below_warn",
        "local::server::it_answers_only_to_its_own_address",
        "local::gateway::tests::a_loopback_bind_answers_to_its_address_localhost_and_the_public_url",
        "browser: the flow secret never appears in a URL",
        "infra/check",
    ] {
        assert_eq!(check(real, &browser), Ok(()), "{real}");
    }
    for wrong in [
        // The right function in the wrong module.
        "it::trust::every_threat_names_a_test_that_exists",
        "miro_connect::seal::opens_only_at_its_place",
        "it::store_contract::nowhere::pending_is_taken_exactly_once",
        // A helper, not a test.
        "it::store_contract::pending_is_taken_exactly_once",
        "it::security_doc::clean",
        // Not a module of that crate; not a test at all.
        "fuzz::seal::tests::opens_only_at_its_place",
        "nowhere::opens_only_at_its_place",
        "it::flows::no_such_test",
        "browser: no such title",
        "no/such/script",
    ] {
        assert!(check(wrong, &browser).is_err(), "{wrong} was accepted");
    }
}

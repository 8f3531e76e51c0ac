//! SECURITY.md names, for every threat, the tests that prove the defence.
//! Those names must be real.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sources(dir: &Path, ext: &str, out: &mut String) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") && !path.ends_with("node_modules") {
            sources(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

#[test]
fn every_threat_names_a_test_that_exists() {
    let doc = std::fs::read_to_string(root().join("SECURITY.md")).expect("SECURITY.md");
    let mut rust = String::new();
    for dir in ["shared", "tests", "functions"] {
        sources(&root().join(dir), "rs", &mut rust);
    }
    let browser =
        std::fs::read_to_string(root().join("tests/browser/flow.test.mjs")).expect("browser tests");

    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| {
            l.starts_with("| ")
                && l.split('|')
                    .nth(1)
                    .is_some_and(|c| c.trim().parse::<u32>().is_ok())
        })
        .collect();
    assert!(rows.len() >= 15, "the threat table has its rows");
    for row in rows {
        let proved_by = row.rsplit('|').nth(1).expect("last column");
        let names: Vec<&str> = proved_by.split('`').skip(1).step_by(2).collect();
        assert!(!names.is_empty(), "a row without a test: {row}");
        for name in names {
            if let Some(title) = name.strip_prefix("browser: ") {
                assert!(
                    browser.contains(&format!("test('{title}'")),
                    "no browser test {title:?}"
                );
            } else if name.contains('/') {
                assert!(root().join(name).exists(), "no script {name}");
            } else {
                let function = name.rsplit("::").next().expect("a name");
                assert!(rust.contains(&format!("fn {function}(")), "no test {name}");
            }
        }
    }
}

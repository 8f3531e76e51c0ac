//! The codebase's shape, held in place: no import circle among the shared
//! crate's modules, a code map in `docs/architecture.md` that matches the
//! tree, and nothing that points outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || matches!(name.as_str(), "target" | "node_modules") {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Code only: line comments (and so doc comments) left out.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module of `shared/src` a file belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// `crate::x` references in code, as top-level module names.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            refs.insert(name);
        }
    }
    refs
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn shared_module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("shared/src");
    let mut files = Vec::new();
    files_under(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        let refs = crate_refs(&code_of(&text));
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != module));
    }
    graph
}

#[test]
fn no_import_circle_among_shared_modules() {
    let graph = shared_module_graph();
    assert!(graph.contains_key("service") && graph.contains_key("store"));
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn the_circle_check_finds_a_circle() {
    let mut graph = shared_module_graph();
    graph
        .entry("domain".into())
        .or_default()
        .insert("service".into());
    assert!(find_cycle(&graph).is_some(), "domain → service → domain");
}

/// Paths in backticks in the code map's table.
fn code_map() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("the doc");
    let section = doc.split("## Code map").nth(1).expect("a code map section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_code_map_matches_the_tree() {
    let root = root();
    let map = code_map();
    for path in &map {
        assert!(
            root.join(path).exists(),
            "the code map names {path}, which is not there"
        );
    }
    let mut files = Vec::new();
    files_under(&root.join("shared/src"), &mut files);
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .expect("in the repository")
            .to_string_lossy()
            .into_owned();
        assert!(map.contains(&rel), "{rel} is missing from the code map");
    }
    let functions = std::fs::read_dir(root.join("functions")).expect("functions");
    for f in functions.flatten() {
        let rel = format!("functions/{}", f.file_name().to_string_lossy());
        assert!(map.contains(&rel), "{rel} is missing from the code map");
    }
}

#[test]
fn nothing_refers_to_a_file_outside_the_repository() {
    let root = root();
    let mut files = Vec::new();
    files_under(&root, &mut files);
    // The project's briefs live beside the repository, never in it: no file
    // may name them (spelled in pieces so this list does not name them either).
    let outside = [
        ["DESIGN", ".md"].concat(),
        ["miro-api", ".md"].concat(),
        ["../", "shared/"].concat(),
        ["tooling", "-notes"].concat(),
    ];
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for name in &outside {
            assert!(
                !text.contains(name.as_str()),
                "{} refers to {name}, outside the repository",
                file.display()
            );
        }
    }
}

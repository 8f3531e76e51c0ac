//! One list of Lambda functions and one of routes
//! (`miro_connect::routes::{Function, ROUTES}`), and everything else that
//! names them held to it: the workspace's members and `cargo lambda watch`'s
//! router (`Cargo.toml`), `functions/`, the release build (`infra/build`),
//! the benchmark (`bench/run`, `bench/src`), the local Lambda stack
//! (`local/lambda-stack`) and the template's functions and route targets.
//! Each fails on a name that is not in the list and on one that is missing.

use miro_connect::routes::{Function, ROUTES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use yaml_rust2::YamlLoader;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn the_functions() -> BTreeSet<String> {
    names().iter().map(|f| f.to_string()).collect()
}

fn names() -> Vec<&'static str> {
    Function::ALL.iter().map(|f| f.name()).collect()
}

/// `names` must be exactly the functions: says what is extra and what is missing.
fn assert_exactly_the_functions(what: &str, names: &BTreeSet<String>) {
    let all = the_functions();
    let extra: Vec<_> = names.difference(&all).collect();
    let missing: Vec<_> = all.difference(names).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: names {extra:?}, which routes::Function does not list, and misses {missing:?}"
    );
}

/// A shell script's lines, with `\`-continued lines joined and comments dropped.
fn script_lines(text: &str) -> Vec<String> {
    let mut lines = vec![];
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

/// The packages (`-p`, `--package`) and binaries (`--bin`) of every `cargo`
/// command in a script (shell variables left out), and the words of its
/// `FUNCTIONS=(…)` array, if any.
fn script_names(text: &str) -> (BTreeSet<String>, Option<BTreeSet<String>>) {
    let mut packages = BTreeSet::new();
    let mut array = None;
    for line in script_lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(at) = line.find("FUNCTIONS=(") {
            let inside = &line[at + "FUNCTIONS=(".len()..];
            let inside = inside.split(')').next().unwrap_or_default();
            array = Some(inside.split_whitespace().map(str::to_string).collect());
        }
        if !words.contains(&"cargo") {
            continue;
        }
        let mut named = vec![];
        for pair in words.windows(2) {
            if matches!(pair[0], "-p" | "--package" | "--bin") {
                named.push(pair[1]);
            }
        }
        for word in &words {
            if let Some(p) = word
                .strip_prefix("--package=")
                .or_else(|| word.strip_prefix("--bin="))
            {
                named.push(p);
            }
        }
        for name in named {
            let name = name.trim_matches('"');
            if !name.starts_with('$') {
                packages.insert(name.to_string());
            }
        }
    }
    (packages, array)
}

/// The packages and binaries a script builds, less the ones that are no
/// function (`others`), must be exactly the functions.
fn assert_script_builds_the_functions(path: &str, others: &[&str]) {
    let (packages, array) = script_names(&read(path));
    let mut functions = packages.clone();
    for other in others {
        assert!(
            functions.remove(*other),
            "{path} no longer builds {other}: update this test"
        );
    }
    if let Some(array) = array {
        assert_exactly_the_functions(&format!("{path}'s FUNCTIONS array"), &array);
        functions.extend(array);
    }
    assert_exactly_the_functions(path, &functions);
}

#[test]
fn the_scripts_build_exactly_the_functions() {
    assert_script_builds_the_functions("infra/build", &[]);
    assert_script_builds_the_functions("bench/run", &["miro-bench"]);
    assert_script_builds_the_functions("local/lambda-stack", &["miro-connect-local"]);
}

/// The `[section]` of a TOML file: its lines up to the next section.
fn toml_section<'a>(text: &'a str, section: &str) -> Vec<&'a str> {
    let header = format!("[{section}]");
    text.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// `"a" = "b"` → (a, b).
fn toml_pair(line: &str) -> (String, String) {
    let (k, v) = line
        .split_once('=')
        .unwrap_or_else(|| panic!("not `key = value`: {line}"));
    let unquote = |s: &str| {
        let s = s.trim();
        assert!(
            s.len() >= 2 && s.starts_with('"') && s.ends_with('"'),
            "not a plain string: {s} (in `{line}`)"
        );
        s[1..s.len() - 1].to_string()
    };
    (unquote(k), unquote(v))
}

#[test]
fn the_workspace_has_a_crate_for_each_function_and_the_watch_router_serves_the_routes() {
    let manifest = read("Cargo.toml");
    // members = [ "shared", "functions/auth-start", … ]
    let members_start = manifest.find("members = [").expect("workspace members");
    let members_end = members_start + manifest[members_start..].find(']').expect("members end");
    let members: BTreeSet<String> = manifest[members_start..members_end]
        .split('"')
        .skip(1)
        .step_by(2)
        .filter_map(|m| m.strip_prefix("functions/"))
        .map(str::to_string)
        .collect();
    assert_exactly_the_functions("the workspace's functions/ members", &members);

    let dirs: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .expect("functions/")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_exactly_the_functions("the directories under functions/", &dirs);
    for f in Function::ALL {
        let crate_manifest = read(&format!("functions/{f}/Cargo.toml"));
        assert!(
            crate_manifest
                .lines()
                .any(|l| l.trim() == format!("name = \"{f}\"")),
            "functions/{f} is the package {f} (its binary, the Lambda's)"
        );
        // Its library keeps Cargo's default name, the target its log lines
        // carry and the log filter lets through (`Function::target`).
        assert!(
            toml_section(&crate_manifest, "lib").is_empty(),
            "functions/{f} renames its library: its logs would not be {}'s",
            f.target()
        );
    }

    let dependencies: BTreeSet<String> = toml_section(&manifest, "workspace.dependencies")
        .into_iter()
        .filter(|l| l.contains("path = \"functions/"))
        .map(|l| l.split('=').next().unwrap_or_default().trim().to_string())
        .collect();
    assert_exactly_the_functions("[workspace.dependencies] on functions/", &dependencies);

    let router: BTreeMap<String, String> =
        toml_section(&manifest, "workspace.metadata.lambda.watch.router")
            .into_iter()
            .map(toml_pair)
            .collect();
    let routes: BTreeMap<String, String> = ROUTES
        .iter()
        .map(|r| (r.path.to_string(), r.function.name().to_string()))
        .collect();
    assert_eq!(
        router, routes,
        "[workspace.metadata.lambda.watch.router] serves every path of routes::ROUTES with its function"
    );
}

#[test]
fn the_benchmark_takes_its_functions_from_the_list() {
    let dir = root().join("bench/src");
    let mut files = vec![];
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("bench/src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut uses_the_list = false;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        uses_the_list |= text.contains("Function::ALL") && text.contains("ROUTES");
        // Every string literal, whole: a function named by hand is one.
        let literals = text.split('"').skip(1).step_by(2);
        for literal in literals {
            assert!(
                !names().contains(&literal),
                "{} names the function {literal:?}: take it from routes::Function or ROUTES",
                file.display()
            );
        }
    }
    assert!(uses_the_list, "the benchmark runs routes::Function::ALL");
}

#[test]
fn the_template_deploys_each_function_behind_its_routes() {
    let text = read("infra/template.yaml");
    let t = YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0);
    let resources = t["Resources"].as_hash().expect("resources");
    let of_type = |ty: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r["Type"].as_str() == Some(ty))
            .map(|(n, r)| (n.as_str().expect("logical id").to_string(), r))
    };
    // Logical id → binary.
    let binaries: BTreeMap<String, String> = of_type("AWS::Serverless::Function")
        .map(|(n, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{n} names its binary"));
            (n, binary.to_string())
        })
        .collect();
    assert_exactly_the_functions(
        "the template's functions",
        &binaries.values().cloned().collect(),
    );
    // Integration → function's logical id (`!GetAtt X.Arn` reads as "X.Arn").
    let integrations: BTreeMap<String, String> = of_type("AWS::ApiGatewayV2::Integration")
        .map(|(n, r)| {
            let uri = r["Properties"]["IntegrationUri"]
                .as_str()
                .unwrap_or_else(|| panic!("{n}'s IntegrationUri"));
            (n, uri.trim_end_matches(".Arn").to_string())
        })
        .collect();
    let mut deployed = BTreeSet::new();
    for (name, r) in of_type("AWS::ApiGatewayV2::Route") {
        let key = r["Properties"]["RouteKey"].as_str().expect("route key");
        let target = r["Properties"]["Target"].as_str().expect("target");
        let integration = target
            .strip_prefix("integrations/${")
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{name}: target {target}"));
        let function = integrations
            .get(integration)
            .and_then(|f| binaries.get(f))
            .unwrap_or_else(|| panic!("{name}: {integration} reaches no function"));
        let (method, path) = key.split_once(' ').expect("METHOD /path");
        let listed = ROUTES
            .iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("the template routes {key}, which routes::ROUTES lacks"));
        assert_eq!(function, listed.function.name(), "{key}");
        deployed.insert(key.to_string());
    }
    for r in ROUTES {
        let key = format!("{} {}", r.method, r.path);
        assert!(deployed.contains(&key), "the template lacks {key}");
    }
}

/// The checks themselves: a name too many, or one too few, is found.
#[test]
fn the_script_check_sees_an_extra_and_a_missing_function() {
    let names = names();
    let all = names.join(" -p ");
    let (packages, _) = script_names(&format!(
        "# cargo build -p commented-out\ncargo build -q \\\n  -p {all} --bin extra-fn --bin \"$f\"\n"
    ));
    assert!(packages.contains("extra-fn") && !packages.contains("commented-out"));
    assert!(!packages.iter().any(|p| p.starts_with('$')), "{packages:?}");
    let missing: BTreeSet<String> = names[1..].iter().map(|f| f.to_string()).collect();
    let (_, array) = script_names(&format!("FUNCTIONS=({})\n", names[1..].join(" ")));
    assert_eq!(array, Some(missing.clone()));
    for names in [packages, missing] {
        let result = std::panic::catch_unwind(|| assert_exactly_the_functions("x", &names));
        assert!(result.is_err(), "{names:?} accepted");
    }
}

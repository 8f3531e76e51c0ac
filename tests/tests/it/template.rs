//! The template deploys what the code expects: every function is built the
//! same way, and gets exactly the environment it reads (no more, no less).

use miro_connect::bootstrap::Needs;
use std::collections::BTreeSet;
use yaml_rust2::{Yaml, YamlLoader};

fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

fn keys(y: &Yaml) -> BTreeSet<String> {
    y.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Each function crate and what it declares it reads.
fn functions() -> Vec<(&'static str, Needs)> {
    vec![
        ("auth-start", auth_start::NEEDS),
        ("auth-callback", auth_callback::NEEDS),
        ("create-board", create_board::NEEDS),
        ("connection", connection::NEEDS),
        ("board-events", board_events::NEEDS),
    ]
}

#[test]
fn every_function_gets_exactly_the_environment_it_reads() {
    let t = template();
    let global = &t["Globals"]["Function"];
    assert_eq!(global["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(global["Architectures"][0].as_str(), Some("arm64"));
    let global_env = keys(&global["Environment"]["Variables"]);

    let mut seen = BTreeSet::new();
    for (name, resource) in t["Resources"].as_hash().expect("resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().expect("name");
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("binary");
        let (_, needs) = functions()
            .into_iter()
            .find(|(b, _)| *b == binary)
            .unwrap_or_else(|| panic!("{name} builds {binary}, which is no function crate"));
        seen.insert(binary.to_string());

        let env: BTreeSet<String> = global_env
            .iter()
            .cloned()
            .chain(keys(&resource["Properties"]["Environment"]["Variables"]))
            .collect();
        for required in needs.required_on_aws() {
            assert!(
                env.contains(required),
                "{name} needs {required} and the template does not set it"
            );
        }
        let reads = needs.reads();
        for given in &env {
            assert!(
                reads.contains(&given.as_str()),
                "{name} is given {given}, which it never reads"
            );
        }
    }
    let all: BTreeSet<String> = functions().iter().map(|(b, _)| b.to_string()).collect();
    assert_eq!(seen, all, "every function crate is deployed");
}

#[test]
fn only_functions_that_use_the_secret_may_read_it() {
    let t = template();
    for (name, resource) in t["Resources"].as_hash().expect("resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("binary");
        let needs = functions()
            .into_iter()
            .find(|(b, _)| *b == binary)
            .expect("known")
            .1;
        let actions: BTreeSet<String> = resource["Properties"]["Policies"]
            .as_vec()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_vec().cloned().unwrap_or_default())
            .flat_map(|s| s["Action"].as_vec().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        assert!(
            !actions.iter().any(|a| a.contains('*')),
            "{name:?}: no wildcard actions"
        );
        assert_eq!(
            actions.contains("secretsmanager:GetSecretValue"),
            needs.secrets,
            "{name:?}"
        );
        assert_eq!(
            actions.contains("events:PutEvents"),
            needs.events,
            "{name:?}"
        );
    }
}

fn openapi() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

/// (method, path, guarded by the JWT authorizer)
type RouteSet = BTreeSet<(String, String, bool)>;

#[test]
fn the_spec_the_template_and_the_local_server_serve_the_same_routes() {
    let code: RouteSet = miro_connect::routes::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), r.authorized))
        .collect();

    let spec = openapi();
    let mut in_spec = RouteSet::new();
    for (path, item) in spec["paths"].as_hash().expect("paths") {
        for (method, op) in item.as_hash().expect("operations") {
            let open = op["security"].as_vec().is_some_and(|s| s.is_empty());
            in_spec.insert((
                method.as_str().expect("method").to_uppercase(),
                path.as_str().expect("path").to_string(),
                !open,
            ));
        }
    }

    let t = template();
    let mut in_template = RouteSet::new();
    for (_, resource) in t["Resources"].as_hash().expect("resources") {
        if resource["Type"].as_str() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let key = resource["Properties"]["RouteKey"]
            .as_str()
            .expect("route key");
        let (method, path) = key.split_once(' ').expect("METHOD /path");
        let jwt = resource["Properties"]["AuthorizationType"].as_str() == Some("JWT");
        in_template.insert((method.to_string(), path.to_string(), jwt));
    }

    assert_eq!(in_spec, code, "openapi.yaml and the local server's routes");
    assert_eq!(
        in_template, code,
        "the template's routes and the local server's"
    );
}

#[test]
fn the_spec_lists_every_error_code() {
    let spec = openapi();
    let listed: BTreeSet<String> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_vec()
        .expect("ErrorCode enum")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    let codes: BTreeSet<String> = miro_connect::error::CODES
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(listed, codes);
}

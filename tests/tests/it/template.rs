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

//! The template deploys what the code expects: every function is built the
//! same way, and gets exactly the environment it reads (no more, no less).

use miro_connect::bootstrap::Needs;
use miro_connect::routes::Function;
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

/// What each function crate declares it reads (no wildcard: a function
/// added to `Function` must be placed here).
fn needs(f: Function) -> Needs {
    match f {
        Function::AuthStart => auth_start::NEEDS,
        Function::AuthCallback => auth_callback::NEEDS,
        Function::CreateBoard => create_board::NEEDS,
        Function::Connection => connection::NEEDS,
        Function::BoardEvents => board_events::NEEDS,
        Function::KeepAlive => keep_alive::NEEDS,
    }
}

/// The function a template resource builds.
fn built(binary: &str, resource: &str) -> Function {
    Function::named(binary)
        .unwrap_or_else(|| panic!("{resource} builds {binary}, which is no function crate"))
}

fn every_function() -> BTreeSet<String> {
    Function::ALL.iter().map(|f| f.name().to_string()).collect()
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
        let needs = needs(built(binary, name));
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
    assert_eq!(seen, every_function(), "every function crate is deployed");
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
        let needs = needs(built(binary, name.as_str().unwrap_or_default()));
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
        .chain(miro_connect::error::EDGE_CODES.iter())
        .map(|c| c.to_string())
        .collect();
    assert_eq!(listed, codes);
}

// ---- Who may ask for a board through events ----

fn resource<'a>(t: &'a Yaml, name: &str) -> &'a Yaml {
    let r = &t["Resources"][name];
    assert!(!r.is_badvalue(), "no resource {name}");
    r
}

/// The logical ids of the resources of one type.
fn of_type(t: &Yaml, ty: &str) -> Vec<String> {
    t["Resources"]
        .as_hash()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .filter_map(|(n, _)| n.as_str().map(str::to_string))
        .collect()
}

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(a) => a.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// The stack's own event bus (the only one), by logical id.
fn the_bus(t: &Yaml) -> String {
    let buses = of_type(t, "AWS::Events::EventBus");
    assert_eq!(buses.len(), 1, "the stack creates its own event bus");
    buses[0].clone()
}

/// The only rule, on the stack's bus.
fn the_rule(t: &Yaml) -> String {
    let rules = of_type(t, "AWS::Events::Rule");
    assert_eq!(rules.len(), 1, "one rule");
    rules[0].clone()
}

fn is_list_parameter(t: &Yaml, name: &str) {
    assert_eq!(
        t["Parameters"][name]["Type"].as_str(),
        Some("CommaDelimitedList"),
        "{name}"
    );
    assert!(
        t["Parameters"][name]["Default"].is_badvalue(),
        "{name} has no default: the deployer names them"
    );
}

#[test]
fn the_rule_takes_only_board_requests_from_trusted_sources() {
    use miro_connect::events::{CREATED, FAILED, REQUESTED, SOURCE};
    let t = template();
    let bus = the_bus(&t);
    let rule = resource(&t, &the_rule(&t));
    assert_eq!(
        rule["Properties"]["EventBusName"].as_str(),
        Some(bus.as_str())
    );

    let pattern = &rule["Properties"]["EventPattern"];
    assert_eq!(
        keys(pattern),
        ["detail-type", "source"].map(String::from).into(),
        "the pattern matches on exactly the source and the detail-type"
    );
    assert_eq!(strings(&pattern["detail-type"]), [REQUESTED]);
    assert!(!strings(&pattern["detail-type"])
        .iter()
        .any(|d| d == CREATED || d == FAILED));
    assert_eq!(
        pattern["source"].as_str(),
        Some("TrustedEventSources"),
        "source is the TrustedEventSources parameter"
    );
    is_list_parameter(&t, "TrustedEventSources");

    // Our own outcome events are on the same bus: the deployer may not
    // trust their source.
    let refuses_our_source = t["Rules"]
        .as_hash()
        .into_iter()
        .flatten()
        .flat_map(|(_, r)| r["Assertions"].as_vec().cloned().unwrap_or_default())
        .any(|a| {
            // !Not [!Contains [!Ref TrustedEventSources, miro-connect]]
            let contains = &a["Assert"][0];
            strings(&contains[0]) == ["TrustedEventSources"] && contains[1].as_str() == Some(SOURCE)
        });
    assert!(
        refuses_our_source,
        "a template rule keeps {SOURCE} out of TrustedEventSources"
    );

    let targets: Vec<String> = rule["Properties"]["Targets"]
        .as_vec()
        .expect("targets")
        .iter()
        .map(|t| t["Arn"].as_str().expect("target arn").to_string())
        .collect();
    assert_eq!(targets, ["BoardRequestQueue.Arn"]);
}

#[test]
fn only_the_named_producers_may_put_events_on_the_bus() {
    let t = template();
    let bus_id = the_bus(&t);
    let bus = resource(&t, &bus_id);
    is_list_parameter(&t, "EventProducers");
    let bus_name = bus["Properties"]["Name"].as_str().expect("bus name");
    let bus_arn = format!(
        "arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:event-bus/{bus_name}"
    );

    let statements = bus["Properties"]["Policy"]["Statement"]
        .as_vec()
        .expect("the bus has a policy");
    let (allows, denies): (Vec<&Yaml>, Vec<&Yaml>) = statements
        .iter()
        .partition(|s| s["Effect"].as_str() == Some("Allow"));
    assert_eq!(allows.len(), 1, "one grant");
    let allow = allows[0];
    assert_eq!(strings(&allow["Principal"]["AWS"]), ["EventProducers"]);
    assert_eq!(strings(&allow["Action"]), ["events:PutEvents"]);
    assert_eq!(allow["Resource"].as_str(), Some(bus_arn.as_str()));
    assert!(allow["Condition"].is_badvalue());

    // IAM alone would let any principal of this account put events: a deny
    // for everyone but the producers and board-events (its outcomes).
    assert_eq!(denies.len(), 1, "one refusal");
    let deny = denies[0];
    assert_eq!(deny["Effect"].as_str(), Some("Deny"));
    assert_eq!(deny["Principal"].as_str(), Some("*"));
    assert_eq!(strings(&deny["Action"]), ["events:PutEvents"]);
    assert_eq!(deny["Resource"].as_str(), Some(bus_arn.as_str()));
    let not_producer = &deny["Condition"]["StringNotEquals"];
    assert_eq!(
        keys(not_producer),
        ["aws:PrincipalAccount", "aws:PrincipalArn"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        strings(&not_producer["aws:PrincipalArn"]),
        ["EventProducers"]
    );
    assert_eq!(
        strings(&not_producer["aws:PrincipalAccount"]),
        ["EventProducers"]
    );
    assert_eq!(
        keys(&deny["Condition"]),
        ["ArnNotEquals", "StringNotEquals"].map(String::from).into()
    );
    // The functions that publish (outcomes, lifecycle events) are the ones
    // the bus exempts, each on that bus and nowhere else.
    let publishers: BTreeSet<String> = of_type(&t, "AWS::Serverless::Function")
        .into_iter()
        .filter(|name| {
            !resource(&t, name)["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"]
                .is_badvalue()
        })
        .collect();
    assert!(publishers.contains("BoardEventsFunction"));
    assert_eq!(
        strings(&deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        publishers.iter().map(|p| format!("{p}Role.Arn")).collect()
    );
    for name in &publishers {
        let f = resource(&t, name);
        assert_eq!(
            f["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"].as_str(),
            Some(bus_id.as_str()),
            "{name}"
        );
        let puts: Vec<&Yaml> = statements_of(f)
            .filter(|s| {
                strings(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("events:"))
            })
            .collect();
        assert_eq!(puts.len(), 1, "{name}");
        assert_eq!(strings(&puts[0]["Action"]), ["events:PutEvents"]);
        assert_eq!(puts[0]["Resource"].as_str(), Some(bus_arn.as_str()));
    }
    assert!(
        t["Parameters"]["EventBusName"].is_badvalue(),
        "no parameter names another bus"
    );
}

#[test]
fn the_queue_takes_messages_only_from_the_rule() {
    let t = template();
    let rule = the_rule(&t);
    let policies = of_type(&t, "AWS::SQS::QueuePolicy");
    assert_eq!(policies.len(), 1);
    let policy = resource(&t, &policies[0]);
    assert_eq!(
        strings(&policy["Properties"]["Queues"]),
        ["BoardRequestQueue"]
    );
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_vec()
        .expect("statements");
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Effect"].as_str(), Some("Allow"));
    assert_eq!(
        s["Principal"]["Service"].as_str(),
        Some("events.amazonaws.com")
    );
    assert_eq!(strings(&s["Action"]), ["sqs:SendMessage"]);
    assert_eq!(s["Resource"].as_str(), Some("BoardRequestQueue.Arn"));
    assert_eq!(keys(&s["Condition"]), ["ArnEquals".to_string()].into());
    assert_eq!(
        strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]),
        [format!("{rule}.Arn")]
    );
}

// ---- Least privilege by key ----

/// The item kinds (partition key prefixes) each function may touch.
// BREAKER is the refresh breaker's one item (every function that
// refreshes); every function that seals reads the key summary (KEYRING#) at
// its cold start, and registers its sealing key there.
fn item_kinds(f: Function) -> &'static [&'static str] {
    match f {
        Function::AuthStart => &["AUTHZ#", "FLOWS#"],
        Function::AuthCallback => &["AUTHZ#", "FLOWS#", "DONE#", "CONN#", "BREAKER", "KEYRING#"],
        Function::CreateBoard => &["AUTHZ#", "FLOWS#", "CONN#", "IDEM#", "BREAKER", "KEYRING#"],
        Function::Connection => &["CONN#", "KEYRING#"],
        Function::BoardEvents => &["CONN#", "IDEM#", "BREAKER", "KEYRING#"],
        // SWEEP# is the sweep index's partition key (the day connections
        // fall due), SEALED# the sealing-key index's (the key id).
        Function::KeepAlive => &["CONN#", "SWEEP#", "SEALED#", "BREAKER", "KEYRING#"],
    }
}

fn statements_of(function: &Yaml) -> impl Iterator<Item = &Yaml> {
    function["Properties"]["Policies"]
        .as_vec()
        .into_iter()
        .flatten()
        .flat_map(|p| p["Statement"].as_vec().into_iter().flatten())
}

#[test]
fn every_role_reaches_only_the_item_kinds_it_uses() {
    let t = template();
    let mut seen = BTreeSet::new();
    for name in of_type(&t, "AWS::Serverless::Function") {
        let f = resource(&t, &name);
        let binary = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("binary");
        let function = built(binary, &name);
        let kinds = item_kinds(function);
        seen.insert(binary);
        // A cold start that seals reads the key summary first (and may
        // register its key there): exactly the functions that read the secret.
        assert_eq!(
            kinds.contains(&"KEYRING#"),
            needs(function).secrets,
            "{name}"
        );
        let want: BTreeSet<String> = kinds.iter().map(|k| format!("{k}*")).collect();

        let dynamo: Vec<&Yaml> = statements_of(f)
            .filter(|s| {
                strings(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("dynamodb:"))
            })
            .collect();
        assert_eq!(dynamo.len(), 1, "{name}: one DynamoDB statement");
        let s = dynamo[0];
        assert_eq!(s["Effect"].as_str(), Some("Allow"), "{name}");
        // The table, and for the keep-alive its sparse indexes.
        let resources = match &s["Resource"] {
            Yaml::Array(list) => list.iter().filter_map(|r| r.as_str()).collect(),
            other => other.as_str().into_iter().collect::<Vec<_>>(),
        };
        let mut want_resources = vec!["Table.Arn"];
        if kinds.contains(&"SWEEP#") {
            want_resources.push("${Table.Arn}/index/sweep");
        }
        if kinds.contains(&"SEALED#") {
            want_resources.push("${Table.Arn}/index/sealed");
        }
        assert_eq!(resources, want_resources, "{name}");
        assert_eq!(
            keys(&s["Condition"]),
            ["ForAllValues:StringLike".to_string()].into(),
            "{name}"
        );
        let like = &s["Condition"]["ForAllValues:StringLike"];
        assert_eq!(
            keys(like),
            ["dynamodb:LeadingKeys".to_string()].into(),
            "{name}"
        );
        let leading = strings(&like["dynamodb:LeadingKeys"]);
        assert_eq!(leading.len(), want.len(), "{name}: {leading:?}");
        assert_eq!(
            leading.into_iter().collect::<BTreeSet<_>>(),
            want,
            "{name}'s LeadingKeys"
        );

        // Counters (FLOWS#) and refresh leases (CONN#) are updated in place.
        let actions = strings(&s["Action"]);
        if kinds.iter().any(|k| *k == "FLOWS#" || *k == "CONN#") {
            assert!(
                actions.iter().any(|a| a == "dynamodb:UpdateItem"),
                "{name} updates counters or leases"
            );
        }
        // Whoever touches connections may refresh one, and a refresh's new
        // tokens are written with PutItem: without it Miro's rotation would
        // kill the connection (an emulator and DynamoDB Local enforce no IAM).
        if kinds.contains(&"CONN#") {
            for needed in [
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ] {
                assert!(
                    actions.iter().any(|a| a == needed),
                    "{name} reads and refreshes connections: it needs {needed}"
                );
            }
        }
        // A user's connections are listed with a Query of their partition
        // (CONN#<user>), which LeadingKeys bounds as it bounds single items.
        assert_eq!(
            actions.iter().any(|a| a == "dynamodb:Query"),
            kinds.contains(&"CONN#"),
            "{name} queries exactly when it reads connections"
        );
        assert!(
            actions.iter().all(|a| [
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem"
            ]
            .contains(&a.as_str())),
            "{name}: single-item and one-partition actions only (LeadingKeys bounds them): {actions:?}"
        );
    }
    let seen: BTreeSet<String> = seen.into_iter().map(str::to_string).collect();
    assert_eq!(seen, every_function(), "every function is in the table");
}

// ---- Tracing, metrics, dashboard ----

#[test]
fn every_function_is_traced_with_x_ray() {
    let t = template();
    let global = t["Globals"]["Function"]["Tracing"].as_str();
    for name in of_type(&t, "AWS::Serverless::Function") {
        let own = resource(&t, &name)["Properties"]["Tracing"].as_str();
        assert_eq!(own.or(global), Some("Active"), "{name}");
    }
}

/// The metric names a dashboard widget shows: `[namespace, name, …]`
/// entries and the `MetricName="…"` of SEARCH expressions.
fn dashboard_metrics(body: &serde_json::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for widget in body["widgets"].as_array().into_iter().flatten() {
        for entry in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if entry[0] == miro_connect::metrics::NAMESPACE {
                names.extend(entry[1].as_str().map(str::to_string));
            }
            let expression = entry[0]["expression"].as_str().unwrap_or_default();
            if let Some((_, rest)) = expression.split_once("MetricName=\"") {
                names.extend(rest.split('"').next().map(str::to_string));
            }
        }
    }
    names
}

#[test]
fn the_dashboard_and_alarms_show_the_documented_metrics() {
    use miro_connect::metrics::{Metric, NAMESPACE};
    let t = template();
    let documented: BTreeSet<String> = Metric::ALL.iter().map(|m| m.name().to_string()).collect();
    let dashboards = of_type(&t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = resource(&t, &dashboards[0])["Properties"]["DashboardBody"]
        .as_str()
        .expect("a !Sub body");
    let body = body.replace("${AWS::Region}", "us-east-1");
    let body: serde_json::Value = serde_json::from_str(&body).expect("the body is JSON");
    assert_eq!(
        dashboard_metrics(&body),
        documented,
        "the dashboard shows every metric"
    );

    let mut alarmed = BTreeSet::new();
    for name in of_type(&t, "AWS::CloudWatch::Alarm") {
        let p = &resource(&t, &name)["Properties"];
        let mut metrics = vec![(p["Namespace"].as_str(), p["MetricName"].as_str())];
        for q in p["Metrics"].as_vec().into_iter().flatten() {
            let m = &q["MetricStat"]["Metric"];
            metrics.push((m["Namespace"].as_str(), m["MetricName"].as_str()));
        }
        for (namespace, metric) in metrics {
            if namespace == Some(NAMESPACE) {
                let metric = metric.expect("a metric name");
                assert!(documented.contains(metric), "{name} watches {metric}");
                alarmed.insert(metric.to_string());
            }
        }
    }
    assert_eq!(
        alarmed,
        [
            "KeepAliveErrors",
            "RefreshBreakerOpened",
            "SealedUnderMissingKey",
            "TokenRefreshFailures",
            "TokenRefreshes"
        ]
        .map(String::from)
        .into(),
        "the refresh-failure rate, the breaker, keep-alive errors and connections under a missing key are alarmed"
    );
}

// ---- The table ----

/// Attribute definitions, key schema, indexes (name, keys, projection) and
/// the TTL attribute, as comparable text.
#[derive(Debug, PartialEq)]
struct TableShape {
    attributes: BTreeSet<String>,
    keys: Vec<String>,
    indexes: BTreeSet<String>,
    ttl: String,
}

fn key_text(name: &str, kind: &str) -> String {
    format!("{name}:{kind}")
}

#[tokio::test]
async fn the_code_makes_the_table_the_template_declares() {
    use crate::support::{dynamo_client, fresh_table, Backend};
    let t = template();
    let p = &resource(&t, "Table")["Properties"];
    let yaml_keys = |y: &Yaml| -> Vec<String> {
        y.as_vec()
            .expect("key schema")
            .iter()
            .map(|k| {
                key_text(
                    k["AttributeName"].as_str().expect("name"),
                    k["KeyType"].as_str().expect("type"),
                )
            })
            .collect()
    };
    let declared = TableShape {
        attributes: p["AttributeDefinitions"]
            .as_vec()
            .expect("attribute definitions")
            .iter()
            .map(|a| {
                key_text(
                    a["AttributeName"].as_str().expect("name"),
                    a["AttributeType"].as_str().expect("type"),
                )
            })
            .collect(),
        keys: yaml_keys(&p["KeySchema"]),
        indexes: p["GlobalSecondaryIndexes"]
            .as_vec()
            .expect("indexes")
            .iter()
            .map(|i| {
                let mut projected = strings(&i["Projection"]["NonKeyAttributes"]);
                projected.sort();
                format!(
                    "{} {:?} {} {:?}",
                    i["IndexName"].as_str().expect("index name"),
                    yaml_keys(&i["KeySchema"]),
                    i["Projection"]["ProjectionType"]
                        .as_str()
                        .expect("projection"),
                    projected
                )
            })
            .collect(),
        ttl: p["TimeToLiveSpecification"]["AttributeName"]
            .as_str()
            .expect("ttl")
            .to_string(),
    };

    let client = dynamo_client(Backend::DynamoDbLocal).await;
    let name = fresh_table(&client).await;
    let described = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe");
    let table = described.table().expect("table");
    let made_keys = |k: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<String> {
        k.iter()
            .map(|k| key_text(k.attribute_name(), k.key_type().as_str()))
            .collect()
    };
    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .expect("ttl");
    let made = TableShape {
        attributes: table
            .attribute_definitions()
            .iter()
            .map(|a| key_text(a.attribute_name(), a.attribute_type().as_str()))
            .collect(),
        keys: made_keys(table.key_schema()),
        indexes: table
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                let projection = i.projection().expect("projection");
                let mut projected = projection.non_key_attributes().to_vec();
                projected.sort();
                format!(
                    "{} {:?} {} {:?}",
                    i.index_name().unwrap_or_default(),
                    made_keys(i.key_schema()),
                    projection
                        .projection_type()
                        .map(|p| p.as_str())
                        .unwrap_or_default(),
                    projected
                )
            })
            .collect(),
        ttl: ttl
            .time_to_live_description()
            .and_then(|d| d.attribute_name())
            .unwrap_or_default()
            .to_string(),
    };
    assert_eq!(
        made, declared,
        "DynamoStore::create_table and infra/template.yaml disagree"
    );
}

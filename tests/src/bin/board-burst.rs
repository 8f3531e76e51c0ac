//! A second (third, …) OS process for the concurrency tests: builds the
//! service exactly as a Lambda cold start does (`service_from_env`), then
//! fires `BURST_COUNT` concurrent `POST /boards` for `BURST_USER` through the
//! real create-board handler and prints each status on its own line. With
//! `BURST_TEAMS` (Miro team ids, comma-separated), the boards name those teams
//! in turn; with `BURST_BODY`, every request sends that body (and
//! `BURST_KEY` as its `Idempotency-Key`, if given).

use lambda_http::{Body, RequestExt};
use miro_connect::http::authorizer_context;
use std::sync::Arc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let user = std::env::var("BURST_USER")?;
    let count: usize = std::env::var("BURST_COUNT")?.parse()?;
    let teams: Vec<String> = std::env::var("BURST_TEAMS")
        .map(|t| t.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let fixed_body = std::env::var("BURST_BODY").ok();
    let key = std::env::var("BURST_KEY").ok();
    let service = Arc::new(miro_connect::bootstrap::service_from_env(create_board::NEEDS).await?);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let service = service.clone();
        let user = user.clone();
        let team = match teams.len() {
            0 => String::new(),
            n => format!(r#","team_id":"{}""#, teams[i % n]),
        };
        let fixed_body = fixed_body.clone();
        let key = key.clone();
        tasks.spawn(async move {
            let body = fixed_body.unwrap_or_else(|| {
                format!(r#"{{"name":"Burst {} #{i}"{team}}}"#, std::process::id())
            });
            let mut req = lambda_http::http::Request::builder()
                .method("POST")
                .uri("https://connect.example.test/boards")
                .header("content-type", "application/json");
            if let Some(key) = &key {
                req = req.header("idempotency-key", key);
            }
            let req = req
                .body(Body::Text(body))?
                .with_request_context(authorizer_context(&user));
            let response = create_board::handle(&service, req).await?;
            Ok::<u16, Failure>(response.status().as_u16())
        });
    }
    while let Some(done) = tasks.join_next().await {
        println!("{}", done?.unwrap_or(0));
    }
    Ok(())
}

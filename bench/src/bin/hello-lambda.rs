//! The baseline: a hello-world `lambda_runtime` function, nothing else.
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(serde_json::json!({ "statusCode": 200, "body": "hello" }))
    }))
    .await
}

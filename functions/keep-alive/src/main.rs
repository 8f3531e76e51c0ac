use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    miro_connect::logging::init();
    let service = miro_connect::bootstrap::service_from_env(keep_alive::NEEDS).await?;
    run(service_fn(|event| keep_alive::handle(&service, event))).await
}

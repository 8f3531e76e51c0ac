use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    miro_connect::logging::init();
    let service = miro_connect::bootstrap::service_from_env(auth_start::NEEDS).await?;
    run(service_fn(|req| auth_start::handle(&service, req))).await
}

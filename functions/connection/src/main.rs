use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    miro_connect::logging::init();
    let service = miro_connect::bootstrap::service_from_env(connection::NEEDS).await?;
    run(service_fn(|req| connection::handle(&service, req))).await
}

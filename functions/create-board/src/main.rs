use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    miro_connect::logging::init();
    let service = miro_connect::bootstrap::service_from_env(create_board::NEEDS).await?;
    run(service_fn(|req| create_board::handle(&service, req))).await
}

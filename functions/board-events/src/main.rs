use lambda_runtime::{run, service_fn, Error};
use miro_connect::events::EventBridgePublisher;

#[tokio::main]
async fn main() -> Result<(), Error> {
    miro_connect::logging::init();
    let (aws, service) =
        miro_connect::bootstrap::aws_and_service_from_env(board_events::NEEDS).await?;
    let bus = miro_connect::bootstrap::env_lookup(board_events::NEEDS)(
        miro_connect::bootstrap::EVENT_BUS,
    )
    .unwrap_or_else(|| "default".into());
    let events = aws_sdk_eventbridge::Client::new(&aws);
    let app = board_events::App {
        service,
        publisher: Box::new(EventBridgePublisher::new(events, bus)),
    };
    run(service_fn(|event| board_events::handle(&app, event))).await
}

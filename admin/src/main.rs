//! `miro-connect-admin`: the operator's command, on the same settings as the
//! functions (the environment, and the stack's secret through
//! `MIRO_SECRET_ARN`) and the same wiring (`bootstrap`). README, "Operating it".
//!
//!   miro-connect-admin restore [--since EPOCH] [--until EPOCH] [--reason REASON]
//!   miro-connect-admin breaker [reset]
//!   miro-connect-admin keys
//!
//! Each prints one JSON value: what it found or did.

use miro_connect::bootstrap::{service_from_env, BootError, Needs};
use miro_connect::service::breaker::RestoreFilter;
use miro_connect::Service;
use serde_json::{json, Value};
use std::process::ExitCode;

/// Refreshes, revokes and announces, like keep-alive.
const NEEDS: Needs = Needs {
    secrets: true,
    events: true,
};

const USAGE: &str = "usage:
  miro-connect-admin restore [--since EPOCH] [--until EPOCH] [--reason grant_rejected|revoked_at_miro]
      retired connections (retired at or after --since, before --until) are tried with their
      kept refresh token; those Miro honours are connected again
  miro-connect-admin breaker [reset]
      the refresh breaker's state; `reset` closes it
  miro-connect-admin keys
      every sealing key id, whether this ring has it, and the connections it sealed at the
      last count (a key leaves the ring at 0)";

#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Failed(#[from] miro_connect::error::Error),
}

impl From<lexopt::Error> for AdminError {
    fn from(e: lexopt::Error) -> Self {
        AdminError::Usage(e.to_string())
    }
}

enum Command {
    Restore(RestoreFilter),
    Breaker { reset: bool },
    Keys,
}

#[tokio::main]
async fn main() -> ExitCode {
    miro_connect::logging::init();
    match run().await {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("miro-connect-admin: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<Value, AdminError> {
    let command = parse(lexopt::Parser::from_env())?;
    let service = service_from_env(NEEDS).await?;
    execute(&service, command).await
}

async fn execute(service: &Service, command: Command) -> Result<Value, AdminError> {
    Ok(match command {
        Command::Restore(filter) => json!(service.restore(&filter).await?),
        Command::Breaker { reset } => {
            if reset {
                service.reset_breaker().await?;
            }
            json!(service.breaker().await?)
        }
        Command::Keys => json!(service.key_counts().await?),
    })
}

fn parse(mut args: lexopt::Parser) -> Result<Command, AdminError> {
    use lexopt::prelude::*;
    let usage = |m: &str| AdminError::Usage(m.to_string());
    let Some(Value(command)) = args.next()? else {
        return Err(usage("a command is required"));
    };
    match command.string()?.as_str() {
        "restore" => {
            let mut filter = RestoreFilter::default();
            while let Some(arg) = args.next()? {
                match arg {
                    Long("since") => filter.since = Some(args.value()?.parse()?),
                    Long("until") => filter.until = Some(args.value()?.parse()?),
                    Long("reason") => filter.reason = Some(args.value()?.string()?),
                    other => return Err(other.unexpected().into()),
                }
            }
            Ok(Command::Restore(filter))
        }
        "breaker" => {
            let reset = match args.next()? {
                None => false,
                Some(Value(v)) if v == "reset" => true,
                Some(other) => return Err(other.unexpected().into()),
            };
            Ok(Command::Breaker { reset })
        }
        "keys" => match args.next()? {
            None => Ok(Command::Keys),
            Some(other) => Err(other.unexpected().into()),
        },
        other => Err(usage(&format!("unknown command {other:?}"))),
    }
}

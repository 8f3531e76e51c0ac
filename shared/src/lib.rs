//! Domain, ports and adapters shared by the miro-connect Lambda functions.
//!
//! Read in this order: [`service`] (the use cases), [`store`] (the ports they
//! are written against), then the adapters ([`store::dynamo`],
//! [`store::memory`], [`oauth`], [`miro`]) and the edges ([`http`],
//! [`identity`], [`config`]).

pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod https;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod miro;
pub mod oauth;
pub mod routes;
pub mod seal;
pub mod secret;
pub mod service;
pub mod store;
pub mod token_protocol;

pub use error::Error;
pub use service::Service;

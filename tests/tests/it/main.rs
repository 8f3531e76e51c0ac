//! Integration tests: every flow against the Miro emulator, the store
//! contract against every adapter, and bad input.

mod architecture;
mod bad_input;
mod content;
mod events;
mod flows;
mod keepalive;
mod keys;
mod layout;
mod metrics;
mod operator;
mod runtime_logs;
mod security_doc;
mod storage_faults;
mod store_contract;
mod support;
mod teams;
mod template;
mod templates;
mod tokens;
mod trust;

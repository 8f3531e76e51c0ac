//! Integration tests: every flow against the Miro emulator, the store
//! contract against every adapter, and bad input.

mod bad_input;
mod events;
mod flows;
mod security_doc;
mod store_contract;
mod support;
mod template;
mod tokens;
mod trust;

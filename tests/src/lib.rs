//! The test harness of miro-connect: what the integration tests
//! (`tests/it/`) and the fuzz targets (`tests/fuzz.rs`) share beyond the
//! Miro emulator (its own crate, `miro-emulator`). Today that is the fault
//! proxy, which stands between a client and DynamoDB, Secrets Manager or
//! EventBridge and breaks chosen calls.

pub mod fault_proxy;

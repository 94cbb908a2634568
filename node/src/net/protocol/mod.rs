//! The messages nodes exchange: one module per protocol.

pub(crate) mod cluster;
pub(crate) mod ledger;

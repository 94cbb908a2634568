//! The contracts' ledger: a signed, hash-chained log of transactions (`log.rs`), the service that
//! owns it — writes on its own thread, reads from a snapshot, the orderer's gate, forwarding —
//! (`service.rs`), and its side of the peer network: gossip, catch-up and forwarded transactions
//! (`sync.rs`).

mod log;
mod service;
pub(crate) mod sync;

pub use log::{LedgerDamage, LedgerStatus, Receipt, contract_address};
pub use service::LedgerService;
pub(crate) use service::TxGate;

//! What nodes ask each other (request-response, JSON, `/prag/ledger/1`).

use prag_proto::ledger::{Entry, SignedTx};
use serde::{Deserialize, Serialize};

/// Entries per catch-up answer.
pub const CATCH_UP_BATCH: u64 = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LedgerRequest {
    /// Entries from height `from` on, at most [`CATCH_UP_BATCH`].
    Entries { from: u64 },
    /// A transaction for the orderer.
    Submit(SignedTx),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LedgerResponse {
    Entries(Vec<Entry>),
    /// The receipt as JSON, or why the transaction was refused; `not_orderer` when the asked
    /// node does not order.
    Submitted(Result<serde_json::Value, String>),
}

pub const NOT_ORDERER: &str = "not_orderer";

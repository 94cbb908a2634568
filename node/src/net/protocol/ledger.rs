//! What nodes ask each other about the contracts' ledger (request-response, JSON,
//! `/prag/ledger/2`), and the gossip topic new entries are published on.

use prag_proto::ledger::{Entry, SignedTx};
use serde::{Deserialize, Serialize};

use crate::error::WireError;

/// The gossipsub topic of new ledger entries.
pub(crate) const TOPIC: &str = "prag/ledger/1";
/// The request-response protocol.
pub(crate) const PROTOCOL: &str = "/prag/ledger/2";
/// Entries per catch-up answer.
pub(crate) const CATCH_UP_BATCH: u64 = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum LedgerRequest {
    /// Entries from height `from` on, at most [`CATCH_UP_BATCH`].
    Entries { from: u64 },
    /// A transaction for the orderer.
    Submit(SignedTx),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum LedgerResponse {
    Entries(Vec<Entry>),
    /// The receipt (as JSON), or why the transaction was refused. A node that does not order
    /// answers with kind `not_orderer`, and the sender tries the next peer.
    Submitted(Result<serde_json::Value, WireError>),
}

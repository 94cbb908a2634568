//! The node's one error type: a [`ErrorKind`] (what went wrong, which alone decides the HTTP status
//! and the stable code in answers, refusal counters and the audit log), a message a person can act
//! on, and the typed cause it came from.
//!
//! This module imports nothing else of the crate: every module that has errors of its own says
//! how they become an [`Error`] next to where they are defined, so the kinds stay in one table
//! here and the dependencies point one way.
//!
//! Between nodes, errors travel as [`WireError`]: the kind and the message, never a sentinel
//! string, so a refusal reaches a client with the same status and code whichever node it asked.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong. Each kind has one HTTP status and one code ([`ErrorKind::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    // Who is asking: the request's signature and its freshness.
    /// A signature header (or the whole signature) is missing.
    Unsigned,
    MalformedSignature,
    BadSignature,
    /// Signed too long ago, too far ahead, or before this node started.
    Stale,
    /// A (key, nonce) pair, or a transaction nonce, seen before.
    Replayed,
    /// The body does not have the signed hash.
    BodyMismatch,
    /// The request is addressed to another node.
    WrongAudience,

    // What the caller may do.
    Forbidden,
    UnregisteredWorker,
    /// A worker's or node's attestation report does not pass.
    Attestation,
    UnboundKey,
    StaleLiveliness,
    InactiveSubscriber,
    RevokedApiKey,
    NoGrant,
    /// A peer that is not an admitted storage node.
    NotAdmitted,

    // What the caller asked for.
    BadRequest,
    /// A request on the owner's channel that does not open.
    BadChannel,
    NotFound,
    UnknownCollection,
    Conflict,
    TooLarge,

    // Answers paid from a market stack.
    /// This node is not registered in the compute market.
    NotMarketNode,
    UnknownStack,
    /// The stack went to another node.
    StackNotSelected,
    /// The stack belongs to someone other than the subscriber the worker acts for.
    StackNotOwned,
    /// The stack is settling, settled, or past its deadline.
    StackClosed,
    /// The stack has fewer units left than the answer costs.
    StackExhausted,
    /// This node does not hold every shard of the collection, so it cannot answer from a whole
    /// snapshot.
    SnapshotIncomplete,

    // Limits.
    /// A per-key limit (collections, bytes in flight).
    Quota,
    /// A node-wide limit: try again later.
    Busy,
    /// The client was too slow.
    Timeout,

    // The contracts' ledger.
    /// This node has no ledger (the network's first node was not started with an admin key).
    NoLedger,
    /// This node does not order transactions, and no peer that does could be reached.
    NotOrderer,

    // The node itself.
    /// A peer or the peer network could not be reached.
    Unavailable,
    /// A configuration value is out of range (at start).
    Config,
    /// Our fault: storage, index or a bug. The message goes to the log, not to the caller.
    #[serde(other)]
    Internal,
}

impl ErrorKind {
    /// Every kind, for the table's tests and documentation.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Unsigned,
        ErrorKind::MalformedSignature,
        ErrorKind::BadSignature,
        ErrorKind::Stale,
        ErrorKind::Replayed,
        ErrorKind::BodyMismatch,
        ErrorKind::WrongAudience,
        ErrorKind::Forbidden,
        ErrorKind::UnregisteredWorker,
        ErrorKind::Attestation,
        ErrorKind::UnboundKey,
        ErrorKind::StaleLiveliness,
        ErrorKind::InactiveSubscriber,
        ErrorKind::RevokedApiKey,
        ErrorKind::NoGrant,
        ErrorKind::NotAdmitted,
        ErrorKind::BadRequest,
        ErrorKind::BadChannel,
        ErrorKind::NotFound,
        ErrorKind::UnknownCollection,
        ErrorKind::Conflict,
        ErrorKind::TooLarge,
        ErrorKind::NotMarketNode,
        ErrorKind::UnknownStack,
        ErrorKind::StackNotSelected,
        ErrorKind::StackNotOwned,
        ErrorKind::StackClosed,
        ErrorKind::StackExhausted,
        ErrorKind::SnapshotIncomplete,
        ErrorKind::Quota,
        ErrorKind::Busy,
        ErrorKind::Timeout,
        ErrorKind::NoLedger,
        ErrorKind::NotOrderer,
        ErrorKind::Unavailable,
        ErrorKind::Config,
        ErrorKind::Internal,
    ];

    /// The table: HTTP status and stable code of each kind.
    pub const fn http_and_code(self) -> (u16, &'static str) {
        use ErrorKind::*;
        match self {
            Unsigned => (401, "unsigned"),
            MalformedSignature => (401, "malformed_signature"),
            BadSignature => (401, "bad_signature"),
            Stale => (401, "stale"),
            Replayed => (401, "replayed"),
            BodyMismatch => (401, "body_mismatch"),
            WrongAudience => (401, "wrong_audience"),
            Forbidden => (403, "forbidden"),
            UnregisteredWorker => (403, "unregistered_worker"),
            Attestation => (403, "attestation"),
            UnboundKey => (403, "unbound_key"),
            StaleLiveliness => (403, "stale_liveliness"),
            InactiveSubscriber => (403, "inactive_subscriber"),
            RevokedApiKey => (403, "revoked_api_key"),
            NoGrant => (403, "no_grant"),
            NotAdmitted => (403, "not_admitted"),
            BadRequest => (400, "bad_request"),
            BadChannel => (400, "bad_channel"),
            NotFound => (404, "not_found"),
            UnknownCollection => (404, "unknown_collection"),
            Conflict => (409, "conflict"),
            TooLarge => (413, "too_large"),
            NotMarketNode => (409, "not_market_node"),
            UnknownStack => (404, "unknown_stack"),
            StackNotSelected => (403, "stack_not_selected"),
            StackNotOwned => (403, "stack_not_owned"),
            StackClosed => (409, "stack_closed"),
            StackExhausted => (402, "stack_exhausted"),
            SnapshotIncomplete => (503, "snapshot_incomplete"),
            Quota => (429, "quota"),
            Busy => (503, "busy"),
            Timeout => (408, "timeout"),
            NoLedger => (409, "no_ledger"),
            NotOrderer => (409, "not_orderer"),
            Unavailable => (503, "unavailable"),
            Config => (500, "config"),
            Internal => (500, "internal"),
        }
    }

    pub const fn http_status(self) -> u16 {
        self.http_and_code().0
    }

    pub const fn code(self) -> &'static str {
        self.http_and_code().1
    }

    /// Whether the node, not the caller, is at fault: such errors are logged in full and the
    /// caller is told only that something failed; the others are refusals, and are counted.
    pub const fn is_internal(self) -> bool {
        matches!(self, ErrorKind::Internal | ErrorKind::Config)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every way an operation of the node can fail.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

/// `Result` with the node's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// The same error, remembering `source` as its cause (logged with it; never sent to callers).
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// An error that is our fault: `context` says what we were doing.
    pub fn internal(context: impl Into<String>, source: impl Into<Source>) -> Self {
        Error::new(ErrorKind::Internal, context).with_source(source)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Forbidden, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::TooLarge, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }

    /// The message alone (without causes).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What a caller may be told: the message, or for an internal error only that one happened
    /// (its message and causes may name server paths and go to the operator's log instead).
    pub fn public_message(&self) -> &str {
        if self.kind.is_internal() { "the node failed to answer; its operator's log says why" } else { &self.message }
    }

    /// The message followed by every cause, `: `-separated (for logs).
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error").field("kind", &self.kind).field("message", &self.chain()).finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// A task the node started on a blocking thread ended without an answer (it panicked).
impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::internal("a background task of the node failed", e)
    }
}

/// An error as one node tells it to another: its kind and its public message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        WireError { kind: e.kind, message: e.public_message().to_string() }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        Error::new(w.kind, w.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_status_and_a_unique_code() {
        let mut codes = std::collections::HashSet::new();
        for k in ErrorKind::ALL {
            let (status, code) = k.http_and_code();
            assert!((400..600).contains(&status), "{k:?}");
            assert!(codes.insert(code), "code {code} used twice");
            // The wire spelling is the code.
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(code));
        }
        assert_eq!(codes.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn the_readme_lists_every_code_with_its_status() {
        let readme = include_str!("../../README.md");
        for k in ErrorKind::ALL {
            let (status, code) = k.http_and_code();
            let row = format!("| `{code}` | {status} |");
            assert!(readme.contains(&row), "README.md's error table lacks {row}");
        }
        let section = readme.split("### Errors").nth(1).and_then(|s| s.split("\n#").next()).unwrap_or("");
        let rows = section.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, ErrorKind::ALL.len(), "README.md's error table has a row for a code the node does not have");
    }

    #[test]
    fn a_kind_a_newer_peer_invents_reads_as_internal() {
        let w: WireError = serde_json::from_str(r#"{"kind":"from_the_future","message":"x"}"#).unwrap();
        assert_eq!(w.kind, ErrorKind::Internal);
    }

    #[test]
    fn internal_errors_keep_their_cause_for_the_log_only() {
        let io = std::io::Error::other("/srv/prag/collections/abc/docs/x.doc: disk full");
        let e = Error::internal("cannot commit the document", io);
        assert!(e.chain().contains("disk full"));
        assert!(!e.public_message().contains("/srv"));
        assert_eq!(WireError::from(&e).message, e.public_message());
        let refusal = Error::new(ErrorKind::NoGrant, "no grant");
        assert_eq!(refusal.public_message(), "no grant");
    }
}

//! Who may retrieve: the checks a worker's request must pass, the attestation gate they rely on,
//! the audit log every decision goes to, and the usage meters `report_work` is built from.
//!
//! The order of the checks is the order a request is read in: signature, freshness and replay
//! (checked by the owner's channel before the request reaches the worker path, so only signed
//! requests are decided and audited here), the request itself (audience), then the worker
//! (registered, attested, key bound, alive), then whom it acts for (active subscriber or stored API
//! key), then the collection (exists, granted).

pub mod attestation;
pub mod audit;
pub mod meter;

/// Why a worker's request was refused. Each has a stable code (metrics, audit log, error body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("the request is addressed to node {0:?}, not this one")]
    WrongAudience(String),
    #[error("the signing key is not a registered worker's key")]
    UnregisteredWorker,
    #[error("the worker's attestation does not pass: {0}")]
    Attestation(String),
    #[error("the worker's attestation report does not bind its signing key")]
    UnboundKey,
    #[error("the worker's last liveliness answer is {0}")]
    StaleLiveliness(String),
    #[error("the subscriber is not active and no valid API key was given")]
    InactiveSubscriber,
    #[error("the API key is not (or no longer) stored in SubscriptionManager")]
    RevokedApiKey,
    #[error("no collection {0:?} on this node")]
    UnknownCollection(String),
    #[error("the collection's owner has not granted this subscriber access")]
    NoGrant,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::WrongAudience(_) => "wrong_audience",
            Refusal::UnregisteredWorker => "unregistered_worker",
            Refusal::Attestation(_) => "attestation",
            Refusal::UnboundKey => "unbound_key",
            Refusal::StaleLiveliness(_) => "stale_liveliness",
            Refusal::InactiveSubscriber => "inactive_subscriber",
            Refusal::RevokedApiKey => "revoked_api_key",
            Refusal::UnknownCollection(_) => "unknown_collection",
            Refusal::NoGrant => "no_grant",
        }
    }

    /// The HTTP status: 404 for an unknown collection, 400 for a malformed request, 403 for every
    /// rule.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::UnknownCollection(_) => 404,
            _ => 403,
        }
    }
}

//! The owner's channel: how a data owner's (or a worker's) requests reach a node that the client
//! has verified is attested, without anything readable on the wire.
//!
//! Like Oblivious HTTP (RFC 9458), a request is encapsulated with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to the node's *channel key*, and the
//! answer is sealed under a key exported from the same HPKE context:
//!
//! ```text
//! client                                                node
//!   GET /v1/attestation  ─────────────────────────────►  NodeAttestation (report, storage key, card)
//!   verify: report genuine, allowed by the client's policy, binds the storage key; the storage
//!   key signed (node_id, channel_key)
//!   POST /v1/sealed
//!     x-prag-channel: base64(enc ‖ Seal₀(head))      ─►  open head: method, path, body length,
//!     body: Seal₁(inner body)                             the signed request headers
//!                                                         verify signature, nonce, limits — then
//!                                                         read and open the body
//!   200: nonce ‖ AES-GCM(k, status ‖ answer)         ◄─  k from HPKE export + response nonce
//! ```
//! `info` = `"PRAG-CHANNEL-V1\n" ‖ node_id`; the AADs name the part (`head`, `body`, `response`).
//! The inner request is signed exactly as a plain request (`prag_proto::auth`) with the node's id as
//! its audience, so the signature, not the channel, says who is asking; the head travels sealed,
//! so an observer sees neither the signer, nor the path, nor the collection. Every answer after the
//! head opens is sealed, refusals included.
//!
//! What an observer on the wire still sees: that a client talks to this node, when, and the sizes
//! of requests and answers.

mod card;
mod envelope;

pub(crate) use card::own_report;
pub use card::{CARD_DOMAIN, ChannelKeys, NodeTrust, TrustError, card_message, sign_card, verify_node};
pub use envelope::{
    BodyOpener, ChannelError, ClientRequest, HEADER_CHANNEL, MAX_HEAD_BYTES, NodeRequest, ResponseKey, SealedRequest,
    TAG_LEN, open_response, seal_response,
};

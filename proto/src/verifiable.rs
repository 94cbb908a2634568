//! Verifiable retrieval: what a stack-paid answer commits to, the receipt a node signs for it,
//! and the stack root its settlement commits (pure code, shared by node, worker CLI and tests).
//!
//! - **Compute unit.** One token of the model's tokenizer: a request costs the tokens of the
//!   question plus the tokens of every returned chunk's text (special tokens excluded), counted
//!   by every node with the same tokenizer. [`units_of`] is that sum.
//! - **Request bytes** ([`LoggedRequest::bytes`]): stack, index, collection, k, the question, the
//!   question's vector (as committed: nobody re-embeds on other hardware), and the snapshot root
//!   the answer was computed on. Binary and length-prefixed, so no two requests share bytes.
//! - **Response bytes** ([`response_bytes`]): every hit's document id, path, chunk, score (its
//!   `f32` bit pattern) and text, in answer order, then the units charged.
//! - **Leaf**: `H(H(request) ‖ H(response))`, H = BLAKE2b-256 (Atoma's §10 scheme).
//! - **Stack root** ([`stack_root`]): `H("prag-stack-root-v1" ‖ M ‖ u64 units)`, M the Merkle root
//!   of the leaves in request order. Binding the total into the root means a node that claims
//!   more units than its log adds up to commits to a root no honest attester computes.

use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::api::Hit;
use crate::contracts::market::commitment::{blake2b256, merkle_root, parent_level, stack_proof};

/// Receipt format version.
pub const RECEIPT_VERSION: u32 = 1;

/// What the compute unit is, for `--help` texts and the API description.
pub const UNIT_DEFINITION: &str = "one token of the model's tokenizer: a request costs the tokens of its question plus \
    the tokens of every returned chunk";

/// The compute units of one answer: the question's tokens plus every hit's.
pub fn units_of(question_tokens: u64, hit_tokens: impl IntoIterator<Item = u64>) -> u64 {
    hit_tokens.into_iter().fold(question_tokens, u64::saturating_add)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

/// One request of a stack, as the serving node logged it and every attester re-executes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub stack: u64,
    /// 0-based position in the stack's log.
    pub index: u64,
    pub collection: String,
    pub k: u32,
    pub question: String,
    pub vector: Vec<f32>,
    /// Hex snapshot root of the collection the answer was computed on.
    pub snapshot_root: String,
}

impl LoggedRequest {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.question.len() + 4 * self.vector.len());
        out.extend_from_slice(b"prag-request-v1");
        out.extend_from_slice(&self.stack.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        put_bytes(&mut out, self.collection.as_bytes());
        out.extend_from_slice(&self.k.to_le_bytes());
        put_bytes(&mut out, self.question.as_bytes());
        out.extend_from_slice(&(self.vector.len() as u64).to_le_bytes());
        for f in &self.vector {
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        put_bytes(&mut out, self.snapshot_root.as_bytes());
        out
    }

    pub fn hash(&self) -> [u8; 32] {
        blake2b256(&[&self.bytes()])
    }
}

/// The bytes an answer commits to: its hits in order and the units charged.
pub fn response_bytes(hits: &[Hit], units: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + hits.iter().map(|h| h.text.len() + h.doc_id.len() + 32).sum::<usize>());
    out.extend_from_slice(b"prag-response-v1");
    out.extend_from_slice(&(hits.len() as u64).to_le_bytes());
    for h in hits {
        put_bytes(&mut out, h.doc_id.as_bytes());
        put_bytes(&mut out, h.path.as_bytes());
        out.extend_from_slice(&h.chunk.to_le_bytes());
        out.extend_from_slice(&h.score.to_bits().to_le_bytes());
        put_bytes(&mut out, h.text.as_bytes());
    }
    out.extend_from_slice(&units.to_le_bytes());
    out
}

pub fn response_hash(hits: &[Hit], units: u64) -> [u8; 32] {
    blake2b256(&[&response_bytes(hits, units)])
}

/// The leaf of one request: `H(H(request) ‖ H(response))`.
pub fn leaf_of(request_hash: &[u8; 32], response_hash: &[u8; 32]) -> [u8; 32] {
    blake2b256(&[request_hash, response_hash])
}

/// The stack root over `leaves` (request order) and the units claimed in total.
pub fn stack_root(leaves: &[[u8; 32]], units: u64) -> Option<[u8; 32]> {
    let m = merkle_root(leaves)?;
    Some(blake2b256(&[b"prag-stack-root-v1", &m, &units.to_le_bytes()]))
}

/// One step of an inclusion path: the sibling's hash and whether it sits on the left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathStep {
    pub sibling: String,
    pub left: bool,
}

/// The inclusion path of leaf `index` in the Merkle tree of [`merkle_root`] (an odd last node is
/// promoted unchanged, so it has no step at that level).
pub fn merkle_path(leaves: &[[u8; 32]], index: usize) -> Option<Vec<PathStep>> {
    if index >= leaves.len() {
        return None;
    }
    let (mut level, mut i, mut path) = (leaves.to_vec(), index, Vec::new());
    while level.len() > 1 {
        let sibling = if i % 2 == 0 { i + 1 } else { i - 1 };
        if let Some(s) = level.get(sibling) {
            path.push(PathStep { sibling: hex::encode(s), left: sibling < i });
        }
        level = parent_level(&level);
        i /= 2;
    }
    Some(path)
}

/// The Merkle root a leaf and its path lead to (None when a sibling is not 32 bytes of hex).
pub fn root_from_path(leaf: &[u8; 32], path: &[PathStep]) -> Option<[u8; 32]> {
    let mut h = *leaf;
    for step in path {
        let s = crate::contracts::market::commitment::parse32(&step.sibling)?;
        h = if step.left { blake2b256(&[&s, &h]) } else { blake2b256(&[&h, &s]) };
    }
    Some(h)
}

/// What a node serves for a settled stack's receipt holder: the leaf's path to the Merkle root
/// of the stack's log, and what the stack root binds besides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    pub stack: u64,
    pub index: u64,
    pub leaf: String,
    pub path: Vec<PathStep>,
    /// Requests in the log and units claimed in total (bound into the stack root).
    pub requests: u64,
    pub units: u64,
    /// Hex stack root (see [`stack_root`]).
    pub root: String,
}

impl InclusionProof {
    /// Checks the path from `leaf` to the root, and that the root gives `committed_proof` (the
    /// ticket's proof) for a settlement with `extra_nodes` attester slots.
    pub fn check(&self, leaf: &[u8; 32], extra_nodes: u8, committed_proof: &str) -> Result<(), ReceiptError> {
        if hex::encode(leaf) != self.leaf {
            return Err(ReceiptError::Inclusion("the proof is for another leaf".into()));
        }
        let m = root_from_path(leaf, &self.path).ok_or_else(|| ReceiptError::Inclusion("malformed path".into()))?;
        let root = blake2b256(&[b"prag-stack-root-v1", &m, &self.units.to_le_bytes()]);
        if hex::encode(root) != self.root {
            return Err(ReceiptError::Inclusion("the leaf's path does not lead to the stack root".into()));
        }
        if hex::encode(stack_proof(&root, extra_nodes)) != committed_proof {
            return Err(ReceiptError::Inclusion(
                "the stack root does not give the proof the node committed on the ledger".into(),
            ));
        }
        Ok(())
    }
}

/// A node's signed statement about one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub version: u32,
    /// Hex compressed public key of the node's storage key (its market registration).
    pub node_key: String,
    /// The node's market id.
    pub node: u64,
    pub stack: u64,
    pub index: u64,
    pub snapshot_root: String,
    pub request_hash: String,
    pub response_hash: String,
    /// `H(request_hash ‖ response_hash)`.
    pub leaf: String,
    pub units: u64,
    /// Unix seconds when the answer was made.
    pub time: u64,
    /// Hex 64-byte secp256k1 ECDSA signature (SHA-256) of [`Receipt::message`].
    pub signature: String,
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("unknown receipt version {0}")]
    Version(u32),
    #[error("the receipt's {0} is malformed")]
    Malformed(&'static str),
    #[error("the leaf is not H(request_hash ‖ response_hash): the receipt was altered")]
    Leaf,
    #[error("the signature does not verify with the receipt's node key: the receipt was altered or forged")]
    Signature,
    #[error("signed by {got}, not by the node's registered key {want}")]
    WrongKey { got: String, want: String },
    #[error("the answer does not match the receipt: {0}")]
    Answer(String),
    #[error("inclusion: {0}")]
    Inclusion(String),
}

impl Receipt {
    /// The signed bytes: every field but the signature, each length-prefixed.
    pub fn message(&self) -> Vec<u8> {
        let mut out = b"prag-receipt-v1".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        put_bytes(&mut out, self.node_key.as_bytes());
        for n in [self.node, self.stack, self.index] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for s in [&self.snapshot_root, &self.request_hash, &self.response_hash, &self.leaf] {
            put_bytes(&mut out, s.as_bytes());
        }
        out.extend_from_slice(&self.units.to_le_bytes());
        out.extend_from_slice(&self.time.to_le_bytes());
        out
    }

    /// Makes and signs the receipt for one answer.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &SigningKey,
        node: u64,
        request: &LoggedRequest,
        request_hash: &[u8; 32],
        response_hash: &[u8; 32],
        units: u64,
        time: u64,
    ) -> Receipt {
        let mut r = Receipt {
            version: RECEIPT_VERSION,
            node_key: crate::account::public_key_hex(key.verifying_key()),
            node,
            stack: request.stack,
            index: request.index,
            snapshot_root: request.snapshot_root.clone(),
            request_hash: hex::encode(request_hash),
            response_hash: hex::encode(response_hash),
            leaf: hex::encode(leaf_of(request_hash, response_hash)),
            units,
            time,
            signature: String::new(),
        };
        let sig: Signature = key.sign(&r.message());
        r.signature = hex::encode(sig.to_bytes());
        r
    }

    /// The leaf as bytes.
    pub fn leaf_bytes(&self) -> Result<[u8; 32], ReceiptError> {
        crate::contracts::market::commitment::parse32(&self.leaf).ok_or(ReceiptError::Malformed("leaf"))
    }

    /// Checks the receipt on its own: format, leaf, and signature by its `node_key`; with
    /// `registered`, that the key is that one.
    pub fn verify(&self, registered: Option<&str>) -> Result<(), ReceiptError> {
        use crate::contracts::market::commitment::parse32;
        if self.version != RECEIPT_VERSION {
            return Err(ReceiptError::Version(self.version));
        }
        let req = parse32(&self.request_hash).ok_or(ReceiptError::Malformed("request_hash"))?;
        let res = parse32(&self.response_hash).ok_or(ReceiptError::Malformed("response_hash"))?;
        parse32(&self.snapshot_root).ok_or(ReceiptError::Malformed("snapshot_root"))?;
        if hex::encode(leaf_of(&req, &res)) != self.leaf {
            return Err(ReceiptError::Leaf);
        }
        let key: VerifyingKey =
            crate::account::parse_public_key(&self.node_key).map_err(|_| ReceiptError::Malformed("node_key"))?;
        let canonical = crate::account::public_key_hex(&key);
        if canonical != self.node_key {
            return Err(ReceiptError::Malformed("node_key"));
        }
        let sig = hex::decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(ReceiptError::Malformed("signature"))?;
        key.verify(&self.message(), &sig).map_err(|_| ReceiptError::Signature)?;
        if let Some(want) = registered {
            let want =
                crate::account::canonical_public_key(want).map_err(|_| ReceiptError::Malformed("registered key"))?;
            if want != canonical {
                return Err(ReceiptError::WrongKey { got: canonical, want });
            }
        }
        Ok(())
    }

    /// Checks that `hits` (the answer it came with) are what the receipt commits to.
    pub fn check_answer(&self, hits: &[Hit]) -> Result<(), ReceiptError> {
        if hex::encode(response_hash(hits, self.units)) != self.response_hash {
            return Err(ReceiptError::Answer(
                "its hits hash to another response: this receipt belongs to another answer, or the answer was altered"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The leaf of a logged request and its answer (what the log, the receipt and the attesters
/// compute).
pub fn answer_leaf(request: &LoggedRequest, hits: &[Hit], units: u64) -> [u8; 32] {
    leaf_of(&request.hash(), &response_hash(hits, units))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(i: u32) -> Hit {
        Hit {
            doc_id: format!("d{i}"),
            path: format!("p{i}.md"),
            chunk: i,
            score: 0.5 / (i + 1) as f32,
            text: format!("text {i}"),
        }
    }

    fn request(index: u64) -> LoggedRequest {
        LoggedRequest {
            stack: 7,
            index,
            collection: "clinic".into(),
            k: 3,
            question: "q?".into(),
            vector: vec![0.25, -0.5, 1.0],
            snapshot_root: hex::encode([9u8; 32]),
        }
    }

    fn receipt() -> (SigningKey, Receipt, Vec<Hit>) {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let hits = vec![hit(0), hit(1)];
        let req = request(3);
        let r = Receipt::sign(&key, 2, &req, &req.hash(), &response_hash(&hits, 40), 40, 1_700_000_000);
        (key, r, hits)
    }

    #[test]
    fn a_receipt_verifies_and_any_altered_field_fails_with_a_reason() {
        let (key, r, hits) = receipt();
        let me = crate::account::public_key_hex(key.verifying_key());
        r.verify(Some(&me)).unwrap();
        r.check_answer(&hits).unwrap();
        let other = crate::account::public_key_hex(SigningKey::from_slice(&[8u8; 32]).unwrap().verifying_key());
        assert!(matches!(r.verify(Some(&other)), Err(ReceiptError::WrongKey { .. })));
        let flip = |s: &str| {
            let mut b = hex::decode(s).unwrap();
            b[0] ^= 1;
            hex::encode(b)
        };
        let tampered: Vec<(&str, Receipt)> = vec![
            ("version", Receipt { version: 2, ..r.clone() }),
            ("node_key", Receipt { node_key: other.clone(), ..r.clone() }),
            ("node", Receipt { node: 3, ..r.clone() }),
            ("stack", Receipt { stack: 8, ..r.clone() }),
            ("index", Receipt { index: 4, ..r.clone() }),
            ("snapshot_root", Receipt { snapshot_root: flip(&r.snapshot_root), ..r.clone() }),
            ("request_hash", Receipt { request_hash: flip(&r.request_hash), ..r.clone() }),
            ("response_hash", Receipt { response_hash: flip(&r.response_hash), ..r.clone() }),
            ("leaf", Receipt { leaf: flip(&r.leaf), ..r.clone() }),
            ("units", Receipt { units: 41, ..r.clone() }),
            ("time", Receipt { time: r.time + 1, ..r.clone() }),
            ("signature", Receipt { signature: flip(&r.signature), ..r.clone() }),
        ];
        for (field, t) in tampered {
            assert!(t.verify(None).is_err(), "a receipt with its {field} altered verified");
        }
        // Another answer, or the same hits with another score or order, is not this receipt's.
        let mut other_hits = hits.clone();
        other_hits.swap(0, 1);
        assert!(r.check_answer(&other_hits).is_err());
        let mut rescored = hits.clone();
        rescored[0].score = f32::from_bits(rescored[0].score.to_bits() + 1);
        assert!(r.check_answer(&rescored).is_err());
        assert!(r.check_answer(&hits[..1]).is_err());
    }

    #[test]
    fn inclusion_paths_lead_to_the_root_for_every_leaf_and_size() {
        for n in 1..=9usize {
            let leaves: Vec<[u8; 32]> = (0..n as u64).map(|i| answer_leaf(&request(i), &[hit(i as u32)], 10)).collect();
            let root = stack_root(&leaves, 10 * n as u64).unwrap();
            let proof = hex::encode(stack_proof(&root, 2));
            for (i, leaf) in leaves.iter().enumerate() {
                let p = InclusionProof {
                    stack: 7,
                    index: i as u64,
                    leaf: hex::encode(leaf),
                    path: merkle_path(&leaves, i).unwrap(),
                    requests: n as u64,
                    units: 10 * n as u64,
                    root: hex::encode(root),
                };
                p.check(leaf, 2, &proof).unwrap();
                assert!(p.check(leaf, 1, &proof).is_err(), "another K gives another proof");
                let inflated = InclusionProof { units: p.units + 1, ..p.clone() };
                assert!(inflated.check(leaf, 2, &proof).is_err(), "the units are bound into the root");
                let wrong = leaves[(i + 1) % n];
                if wrong != *leaf {
                    assert!(p.check(&wrong, 2, &proof).is_err());
                }
            }
            assert!(merkle_path(&leaves, n).is_none());
        }
        assert_ne!(stack_root(&[[1; 32]], 1), stack_root(&[[1; 32]], 2));
    }

    #[test]
    fn request_and_response_bytes_separate_their_fields() {
        let a = request(0);
        let mut b = a.clone();
        b.collection = "clinic2".into();
        assert_ne!(a.hash(), b.hash());
        let mut c = a.clone();
        c.vector[0] = -0.0;
        let mut d = a.clone();
        d.vector[0] = 0.0;
        assert_ne!(c.hash(), d.hash(), "the vector is committed bit for bit");
        assert_ne!(response_hash(&[hit(1)], 5), response_hash(&[hit(1)], 6));
        assert_eq!(units_of(3, [4, 5]), 12);
    }
}

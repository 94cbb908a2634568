//! Sampling consensus by re-execution: an attester fetches the serving node's log (sealed to it
//! over the cluster protocol), answers every logged request again against its own replica with
//! the same deterministic search, and commits to the root its own answers give. Honest replicas
//! of the same snapshot compute the same bits, so they agree exactly; anything else opens the
//! dispute path of the market contract.
//!
//! The question's vector is taken from the log (nobody re-embeds on other hardware), but it is
//! checked against this node's own embedding of the question: a vector that is not the
//! question's (cosine below [`MIN_QUESTION_COSINE`]) is replaced by this node's, so steering the
//! search with another vector is caught like any other lie.

use std::sync::Arc;

use libp2p::PeerId;
use prag_proto::contracts::market::commitment::{slot, stack_proof};
use prag_proto::ledger::LedgerState;
use prag_proto::verifiable::{leaf_of, response_hash, stack_root};

use super::{LogRecord, Market};
use crate::auth::unix_now;
use crate::error::{Error, ErrorKind, Result};

/// How close a logged vector must be to this node's embedding of its question. Embeddings of
/// one text on two CPUs differ in the last bits, far above this; another text's is far below.
pub(super) const MIN_QUESTION_COSINE: f32 = 0.98;

/// Most requests one log may hold for re-execution.
const MAX_LOG_REQUESTS: usize = 100_000;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return -1.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 { -1.0 } else { dot / (na * nb) }
}

impl Market {
    /// Re-executes stack `id`'s log and submits the attestation (or the dispute). Returns what it
    /// did and how many requests it re-answered, for the log line.
    pub(super) async fn attest(&self, state: &LedgerState, id: u64, my_slot: usize) -> Result<(&'static str, usize)> {
        let m = &state.market;
        let ticket = m.tickets.get(&id).ok_or_else(|| Error::new(ErrorKind::UnknownStack, "no ticket"))?;
        let stack = m.stacks.get(&id).ok_or_else(|| Error::new(ErrorKind::UnknownStack, "no stack"))?;
        let server = m
            .nodes
            .get(&ticket.selected_node_id)
            .ok_or_else(|| Error::new(ErrorKind::UnknownStack, "the serving node is gone"))?;
        let peer: PeerId = server.peer_id.parse().map_err(|_| {
            Error::new(ErrorKind::Unavailable, format!("node {} has no valid peer id", server.node_small_id))
        })?;
        let plain = self.network.ask_stack_log(peer, id).await?;
        let records: Vec<LogRecord> =
            serde_json::from_slice(&plain).map_err(|e| Error::bad_request(format!("the stack log: {e}")))?;
        if records.is_empty() || records.len() > MAX_LOG_REQUESTS {
            return Err(Error::bad_request(format!("a stack log of {} requests", records.len())));
        }
        let window_open = m.epoch_at(unix_now()) < ticket.dispute_settled_at_epoch;
        for (i, r) in records.iter().enumerate() {
            if r.request.stack != id || r.request.index != i as u64 {
                return Err(Error::bad_request("the stack log is out of order"));
            }
        }
        // Every question embedded here at once (the embedder batches them), to check the vectors.
        let questions: Vec<String> = records.iter().map(|r| r.request.question.clone()).collect();
        let mine = self
            .embedder
            .embed_for("attester", questions)
            .await
            .map_err(|e| Error::internal("cannot embed the logged questions", e))?;
        let mut leaves = Vec::with_capacity(records.len());
        let mut units_total = 0u64;
        for (r, own) in records.iter().zip(mine) {
            let q = &r.request;
            let (hits, units) = self.reanswer(r, own, window_open).await?;
            units_total = units_total.saturating_add(units);
            leaves.push(leaf_of(&q.hash(), &response_hash(&hits, units)));
        }
        let root = stack_root(&leaves, units_total)
            .ok_or_else(|| Error::internal("no leaves", std::io::Error::other("empty")))?;
        let k = stack.cross_validation_extra_nodes_count.min(255) as u8;
        let proof = hex::encode(stack_proof(&root, k));
        let leaf = hex::encode(slot((my_slot + 1).min(255) as u8, &root));
        let (msg, verdict) = if proof == ticket.committed_stack_proof || ticket.is_in_dispute {
            let agrees = proof == ticket.committed_stack_proof;
            (
                serde_json::json!({"submit_stack_settlement_attestation": {
                    "stack_small_id": id, "committed_stack_proof": proof, "stack_merkle_leaf": leaf}}),
                if agrees { "agrees" } else { "disagrees (dispute open)" },
            )
        } else {
            (
                serde_json::json!({"start_attestation_dispute": {"stack_small_id": id, "attestation_commitment": proof}}),
                "disagrees: dispute opened",
            )
        };
        self.submit(msg).await?;
        Ok((verdict, records.len()))
    }

    /// This node's own answer to one logged request: (hits, units).
    async fn reanswer(
        &self,
        r: &LogRecord,
        mine: Vec<f32>,
        window_open: bool,
    ) -> Result<(Vec<prag_proto::api::Hit>, u64)> {
        let q = &r.request;
        let Ok(coll) = self.collections.get(&q.collection) else {
            // Nothing here to answer from: an empty answer, which no honest log has.
            return Ok((Vec::new(), self.units(&q.question, &[])));
        };
        let vector = if cosine(&mine, &q.vector) >= MIN_QUESTION_COSINE { q.vector.clone() } else { mine };
        let k = (q.k as usize).clamp(1, prag_proto::api::MAX_K);
        let c = Arc::clone(&coll);
        let (root, hits) = tokio::task::spawn_blocking(move || -> Result<_> {
            let s = c.snapshot()?;
            Ok((s.root, s.search(&c, &vector, k, 1)?))
        })
        .await??;
        if hex::encode(root) != q.snapshot_root && window_open {
            // Replication may not have brought the last documents yet: ask again next round.
            return Err(Error::new(
                ErrorKind::Unavailable,
                "this replica's snapshot differs from the logged one (yet)",
            ));
        }
        let units = self.units(&q.question, &hits);
        Ok((hits, units))
    }
}

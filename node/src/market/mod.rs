//! This node in the compute market: answers paid from stacks (checked, logged, receipted), the
//! settlement of its own stacks from their logs, the claims that pay it, and its part as an
//! attester, re-executing another node's log against its own replica.
//!
//! Everything the node says on the ledger it signs with its storage key (its market
//! registration); operators make it register and subscribe through `POST /v1/operator/market`.

mod agent;
mod log;
mod reexec;

use std::collections::BTreeSet;
use std::sync::Arc;

use k256::ecdsa::VerifyingKey;
use parking_lot::Mutex;
use prag_embedder::Embedder;
use prag_proto::api::Hit;
use prag_proto::contracts::market::StackStatus;
use prag_proto::ledger::{LedgerState, SignedTx};
use prag_proto::verifiable::{
    InclusionProof, LoggedRequest, Receipt, merkle_path, response_hash, stack_root, units_of,
};

pub use agent::run as run_agent;
pub use log::{LogRecord, StackLog, StackLogs};

use crate::auth::unix_now;
use crate::cluster::StorageNet;
use crate::collections::{Collection, Collections};
use crate::error::{Error, ErrorKind, Result};
use crate::identity::StorageIdentity;
use crate::ledger::{LedgerService, Receipt as TxReceipt};

pub use crate::fault::AnswerFault;

/// The market messages an operator may have this node sign.
const NODE_MESSAGES: &[&str] = &[
    "register_node",
    "subscribe_node_to_task",
    "update_node_subscription",
    "unsubscribe_node_from_task",
    "withdraw_fees",
    "permanently_disable_node",
    "destroy_disabled_node",
    "claim_funds",
    "claim_funds_for_stacks",
];

/// What a stack-paid answer needs from the market component.
pub struct Market {
    identity: Arc<StorageIdentity>,
    ledger: LedgerService,
    collections: Arc<Collections>,
    network: Arc<dyn StorageNet>,
    embedder: Embedder,
    logs: StackLogs,
    fault: Option<Arc<dyn AnswerFault>>,
    /// Stacks whose owner asked for settlement.
    settle_asked: Mutex<BTreeSet<u64>>,
}

/// The parts a market component is built from.
pub(crate) struct MarketParts {
    pub identity: Arc<StorageIdentity>,
    pub ledger: LedgerService,
    pub collections: Arc<Collections>,
    pub network: Arc<dyn StorageNet>,
    pub embedder: Embedder,
    pub logs: StackLogs,
    pub fault: Option<Arc<dyn AnswerFault>>,
}

/// A stack-paid answer.
pub struct PaidAnswer {
    pub hits: Vec<Hit>,
    pub receipt: Receipt,
}

impl Market {
    pub(crate) fn new(p: MarketParts) -> Market {
        if let Some(f) = &p.fault {
            tracing::error!(
                fault = f.name(),
                "FAULT INJECTION: this node alters the answers it is paid for (tests only)"
            );
        }
        Market {
            identity: p.identity,
            ledger: p.ledger,
            collections: p.collections,
            network: p.network,
            embedder: p.embedder,
            logs: p.logs,
            fault: p.fault,
            settle_asked: Mutex::new(BTreeSet::new()),
        }
    }

    /// This node's market id, if it registered.
    fn my_node(&self, state: &LedgerState) -> Option<u64> {
        state.market.nodes_by_key.get(&self.identity.signing_key_hex()).copied()
    }

    fn tokens(&self, text: &str) -> u64 {
        self.embedder.tokenizer().count_tokens(text).unwrap_or(0) as u64
    }

    /// The units an answer to `question` with `hits` costs.
    pub(crate) fn units(&self, question: &str, hits: &[Hit]) -> u64 {
        units_of(self.tokens(question), hits.iter().map(|h| self.tokens(&h.text)))
    }

    /// Signs `msg` with the storage key and submits it to the ledger.
    pub async fn submit(&self, msg: serde_json::Value) -> Result<TxReceipt> {
        let nonce = crate::crypto::random_hex::<16>()?;
        let tx = SignedTx::sign(self.identity.signing_key(), &nonce, unix_now(), msg)
            .map_err(|e| Error::internal("cannot sign a market transaction", e))?;
        self.ledger.submit(tx).await
    }

    /// An operator's market message, signed by this node (only the messages a node sends about
    /// itself).
    pub async fn submit_for_operator(&self, msg: serde_json::Value) -> Result<TxReceipt> {
        let name = msg.as_object().filter(|m| m.len() == 1).and_then(|m| m.keys().next().cloned()).unwrap_or_default();
        if !NODE_MESSAGES.contains(&name.as_str()) {
            return Err(Error::bad_request(format!(
                "a node signs only its own market messages ({}); {name:?} is not one",
                NODE_MESSAGES.join(", ")
            )));
        }
        tracing::info!(msg = %name, "an operator had this node sign a market message");
        self.submit(msg).await
    }

    /// Serves one stack-paid question: the checks in order (market node, stack, selected here,
    /// owned by the subscriber, open, a whole snapshot here, units left), then deterministic
    /// exact search over the snapshot, then the log and the receipt. Requests of one stack are
    /// answered one at a time, so their order is the log's.
    pub async fn serve(
        &self,
        subscriber: &str,
        coll: &Arc<Collection>,
        question: String,
        k: usize,
        stack_id: u64,
    ) -> Result<PaidAnswer> {
        crate::retrieval::check_question(&question, k)?;
        let state = self.ledger.state();
        let me = self
            .my_node(&state)
            .ok_or_else(|| Error::new(ErrorKind::NotMarketNode, "this node is not registered in the compute market"))?;
        let stack = state
            .market
            .stacks
            .get(&stack_id)
            .ok_or_else(|| Error::new(ErrorKind::UnknownStack, format!("no stack {stack_id}")))?;
        if stack.selected_node_id != me {
            return Err(Error::new(
                ErrorKind::StackNotSelected,
                format!("stack {stack_id} went to node {}, not this one ({me})", stack.selected_node_id),
            ));
        }
        let key = prag_proto::account::parse_public_key(subscriber)
            .map_err(|e| Error::bad_request(format!("subscriber: {e}")))?;
        if prag_proto::account::address(&key) != stack.owner {
            return Err(Error::new(
                ErrorKind::StackNotOwned,
                format!("stack {stack_id} belongs to {}, not to the subscriber the worker acts for", stack.owner),
            ));
        }
        let epoch = state.market.epoch_at(unix_now());
        if stack.status != StackStatus::Open || epoch > stack.settle_by_epoch {
            return Err(Error::new(
                ErrorKind::StackClosed,
                format!(
                    "stack {stack_id} is {:?} (settle by epoch {}, now {epoch})",
                    stack.status, stack.settle_by_epoch
                ),
            ));
        }
        if self.network.search_sources(coll).is_some() {
            return Err(Error::new(
                ErrorKind::SnapshotIncomplete,
                format!(
                    "this node does not hold every shard of {:?}: a paid answer comes from a whole snapshot",
                    coll.name()
                ),
            ));
        }
        let total = stack.num_compute_units;
        let log = self.logs.get(stack_id)?;
        let mut log = log.lock().await;
        if log.closed {
            return Err(Error::new(ErrorKind::StackClosed, format!("stack {stack_id} is being settled")));
        }
        if log.used >= total {
            return Err(Error::new(ErrorKind::StackExhausted, format!("stack {stack_id} has no units left")));
        }
        let vector = self
            .embedder
            .embed_for(subscriber, vec![question.clone()])
            .await
            .map_err(|e| Error::internal("cannot embed the question", e))?
            .pop()
            .ok_or_else(|| Error::internal("the embedder returned no vector", std::io::Error::other("empty")))?;
        let want = if self.fault.is_some() { k + 1 } else { k };
        let (c, v) = (Arc::clone(coll), vector.clone());
        let (root, mut hits) = tokio::task::spawn_blocking(move || -> Result<_> {
            let snapshot = c.snapshot()?;
            Ok((snapshot.root, snapshot.search(&c, &v, want, 1)?))
        })
        .await??;
        let request = LoggedRequest {
            stack: stack_id,
            index: log.records.len() as u64,
            collection: coll.name().to_string(),
            k: k as u32,
            question,
            vector,
            snapshot_root: hex::encode(root),
        };
        let mut units = self.units(&request.question, &hits[..hits.len().min(k)]);
        if let Some(f) = &self.fault {
            let spare = if hits.len() > k { hits.pop() } else { None };
            f.alter(&mut hits, spare, &mut units);
        }
        if log.used.saturating_add(units) > total {
            return Err(Error::new(
                ErrorKind::StackExhausted,
                format!("the answer costs {units} units; stack {stack_id} has {} left", total - log.used),
            ));
        }
        let now = unix_now();
        let receipt = Receipt::sign(
            self.identity.signing_key(),
            me,
            &request,
            &request.hash(),
            &response_hash(&hits, units),
            units,
            now,
        );
        let record = LogRecord { request, hits: hits.clone(), units, time: now };
        self.logs.append(&mut log, record)?;
        Ok(PaidAnswer { hits, receipt })
    }

    /// The owner of `stack_id` asks this node (its selected node) to settle it now.
    pub async fn owner_asks_settlement(&self, caller: &VerifyingKey, stack_id: u64) -> Result<TxReceipt> {
        let state = self.ledger.state();
        let stack = state
            .market
            .stacks
            .get(&stack_id)
            .ok_or_else(|| Error::new(ErrorKind::UnknownStack, format!("no stack {stack_id}")))?;
        if prag_proto::account::address(caller) != stack.owner {
            return Err(Error::new(ErrorKind::StackNotOwned, format!("only stack {stack_id}'s owner may ask")));
        }
        if self.my_node(&state) != Some(stack.selected_node_id) {
            return Err(Error::new(ErrorKind::StackNotSelected, format!("stack {stack_id} went to another node")));
        }
        self.settle_asked.lock().insert(stack_id);
        self.settle(&state, stack_id).await
    }

    /// Closes the stack's log and commits its root with `try_settle_stack`.
    async fn settle(&self, state: &LedgerState, stack_id: u64) -> Result<TxReceipt> {
        let stack = state
            .market
            .stacks
            .get(&stack_id)
            .ok_or_else(|| Error::new(ErrorKind::UnknownStack, format!("no stack {stack_id}")))?;
        if stack.status != StackStatus::Open {
            return Err(Error::new(ErrorKind::StackClosed, format!("stack {stack_id} is {:?}", stack.status)));
        }
        let log = self.logs.get(stack_id)?;
        let mut log = log.lock().await;
        if log.records.is_empty() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("stack {stack_id} answered nothing: nothing to settle"),
            ));
        }
        self.logs.close(stack_id, &mut log)?;
        let root = stack_root(&log.leaves, log.used)
            .ok_or_else(|| Error::internal("an empty log has no root", std::io::Error::other("empty")))?;
        let k = stack.cross_validation_extra_nodes_count.min(255) as u8;
        let msg = serde_json::json!({"try_settle_stack": {
            "stack_small_id": stack_id,
            "num_claimed_compute_units": log.used,
            "committed_stack_proof": hex::encode(prag_proto::contracts::market::commitment::stack_proof(&root, k)),
            "stack_merkle_leaf": hex::encode(prag_proto::contracts::market::commitment::slot(0, &root)),
        }});
        let (requests, units) = (log.records.len(), log.used);
        drop(log);
        let r = self.submit(msg).await?;
        tracing::info!(stack = stack_id, requests, units, "stack settled from its log");
        Ok(r)
    }

    /// The inclusion proof of answer `index` of a stack this node served.
    pub async fn inclusion(&self, stack_id: u64, index: u64) -> Result<InclusionProof> {
        let log = self
            .logs
            .existing(stack_id)?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("this node served no stack {stack_id}")))?;
        let log = log.lock().await;
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        let path = merkle_path(&log.leaves, i)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("stack {stack_id} has no answer {index} here")))?;
        let root = stack_root(&log.leaves, log.used).unwrap_or_default();
        Ok(InclusionProof {
            stack: stack_id,
            index,
            leaf: hex::encode(log.leaves[i]),
            path,
            requests: log.records.len() as u64,
            units: log.used,
            root: hex::encode(root),
        })
    }

    /// A stack's log for the node signed by `peer_key`, if the contract asked it to attest the
    /// stack (or it is an oracle of the stack's task). JSON of the records.
    pub fn log_for_peer(&self, stack_id: u64, peer_key: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let state = self.ledger.state();
        let m = &state.market;
        let refuse = |why: String| Error::new(ErrorKind::Forbidden, why);
        let ticket = m.tickets.get(&stack_id).ok_or_else(|| refuse(format!("stack {stack_id} is not settling")))?;
        let peer =
            m.nodes_by_key.get(peer_key).copied().ok_or_else(|| refuse("the asker is not a market node".into()))?;
        let oracle = m
            .stacks
            .get(&stack_id)
            .and_then(|s| m.tasks.get(&s.task_small_id))
            .is_some_and(|t| t.oracles.contains(&peer));
        if !ticket.requested_attestation_nodes.contains(&peer) && !oracle {
            return Err(refuse(format!("node {peer} was not asked to attest stack {stack_id}")));
        }
        if self.my_node(&state) != Some(ticket.selected_node_id) {
            return Err(refuse(format!("stack {stack_id} was not served here")));
        }
        let log = self.logs.get(stack_id)?;
        let log = log.blocking_lock_or_try()?;
        let json = serde_json::to_vec(&log.records).map_err(|e| Error::internal("cannot encode a stack log", e))?;
        Ok(zeroize::Zeroizing::new(json))
    }
}

/// `try_lock` for a log read from a synchronous context (a peer's request): a log busy with an
/// answer is busy; the peer asks again.
trait TryLockLog {
    fn blocking_lock_or_try(&self) -> Result<tokio::sync::MutexGuard<'_, StackLog>>;
}

impl TryLockLog for tokio::sync::Mutex<StackLog> {
    fn blocking_lock_or_try(&self) -> Result<tokio::sync::MutexGuard<'_, StackLog>> {
        self.try_lock().map_err(|_| Error::new(ErrorKind::Busy, "the stack's log is busy; ask again"))
    }
}

impl crate::cluster::StackLogSource for Market {
    fn log_for(&self, stack: u64, peer_key: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        self.log_for_peer(stack, peer_key)
    }
}

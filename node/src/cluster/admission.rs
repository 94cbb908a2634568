//! Which peers may hold shards: one verdict per peer (and one for this node), computed in one
//! place ([`Admission::judge`]) and stored once.
//!
//! A peer is admitted when WorkerManager has it as a worker of type `prag-storage` under its peer
//! id, that registration's attestation passes this node's gate (current policy, bound to the
//! registered signing key), and its card — its HPKE key — is signed by that key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use libp2p::PeerId;
use parking_lot::RwLock;

use crate::attest::AttestationGate;
use crate::auth::unix_now;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::{HpkePublicKey, STORAGE_WORKER_TYPE, StorageCard};
use crate::ledger::LedgerService;

#[derive(Clone)]
struct PeerAdmission {
    card: Option<StorageCard>,
    /// The last verdict: the peer's HPKE key, or why it is refused.
    verdict: Option<Result<HpkePublicKey, String>>,
}

/// The admission verdicts.
pub(crate) struct Admission {
    ledger: LedgerService,
    gate: Arc<AttestationGate>,
    peers: RwLock<HashMap<PeerId, PeerAdmission>>,
    /// This node's own verdict (it holds shards of others only when admitted itself).
    own: RwLock<Result<(), String>>,
}

/// Whether a verdict changed from admitted to refused or back (for logging once).
pub(crate) struct Changed(pub bool);

impl Admission {
    pub(crate) fn new(ledger: LedgerService, gate: Arc<AttestationGate>) -> Self {
        Admission { ledger, gate, peers: RwLock::default(), own: RwLock::new(Err("not checked yet".into())) }
    }

    /// The verdict on `peer` showing `card`: the key collection keys are wrapped to, or why not.
    pub(crate) fn judge(&self, peer: &str, card: &StorageCard) -> Result<HpkePublicKey> {
        let refuse = |reason: String| Error::new(ErrorKind::NotAdmitted, reason);
        let state = self.ledger.state();
        let worker = state
            .worker
            .workers
            .get(peer)
            .ok_or_else(|| refuse(format!("peer {peer} is not registered in WorkerManager")))?;
        if worker.worker_type != STORAGE_WORKER_TYPE {
            return Err(refuse(format!(
                "peer {peer} is registered as a {:?} worker, not {STORAGE_WORKER_TYPE}",
                worker.worker_type
            )));
        }
        let key =
            worker.signing_key.as_deref().ok_or_else(|| refuse("its registration names no signing key".into()))?;
        self.gate.check_worker(worker, unix_now()).map_err(|e| refuse(format!("attestation: {e}")))?;
        card.verify(peer, key)
    }

    /// Judges `peer` again and stores the verdict; says whether it changed.
    pub(crate) fn rejudge(&self, peer: PeerId, card: &StorageCard) -> (Result<HpkePublicKey>, Changed) {
        let verdict = self.judge(&peer.to_string(), card);
        let stored = verdict.as_ref().map(|k| k.clone()).map_err(|e| e.to_string());
        let mut peers = self.peers.write();
        let rec = peers.entry(peer).or_insert(PeerAdmission { card: None, verdict: None });
        let changed = rec.verdict.as_ref().map(|v| v.is_ok()) != Some(stored.is_ok());
        rec.card = Some(card.clone());
        rec.verdict = Some(stored);
        (verdict, Changed(changed))
    }

    /// The stored verdict, if `peer` was judged.
    pub(crate) fn verdict(&self, peer: &PeerId) -> Option<Result<HpkePublicKey>> {
        let peers = self.peers.read();
        let v = peers.get(peer)?.verdict.clone()?;
        Some(v.map_err(|reason| Error::new(ErrorKind::NotAdmitted, reason)))
    }

    /// `peer`'s card, if it was fetched.
    pub(crate) fn card(&self, peer: &PeerId) -> Option<StorageCard> {
        self.peers.read().get(peer).and_then(|p| p.card.clone())
    }

    pub(crate) fn is_admitted(&self, peer: &PeerId) -> bool {
        self.peers.read().get(peer).is_some_and(|p| matches!(p.verdict, Some(Ok(_))))
    }

    /// Every peer refused: peer id → reason.
    pub(crate) fn refused(&self) -> BTreeMap<String, String> {
        self.peers
            .read()
            .iter()
            .filter_map(|(p, a)| match &a.verdict {
                Some(Err(reason)) => Some((p.to_string(), reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// The admitted peers.
    pub(crate) fn admitted(&self) -> Vec<PeerId> {
        self.peers.read().iter().filter(|(_, a)| matches!(a.verdict, Some(Ok(_)))).map(|(p, _)| *p).collect()
    }

    /// Judges this node (`me`, showing `card`); stores the verdict and says whether it changed.
    pub(crate) fn judge_self(&self, me: &str, card: &StorageCard) -> (Result<(), String>, Changed) {
        let verdict = self.judge(me, card).map(|_| ()).map_err(|e| e.to_string());
        let mut own = self.own.write();
        let changed = Changed(*own != verdict);
        *own = verdict.clone();
        (verdict, changed)
    }

    /// This node's own verdict, as last judged.
    pub(crate) fn own(&self) -> Result<(), String> {
        self.own.read().clone()
    }
}

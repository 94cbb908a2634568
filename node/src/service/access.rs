//! The worker's retrieval path and the rules around it: grants by collection owners, the
//! attestation gate at registration and on policy change, the audit log, usage metering.

use std::sync::Weak;
use std::time::{Duration, Instant};

use k256::ecdsa::VerifyingKey;
use prag_proto::api::{AuditEntry, GrantsResponse, SealedAnswer, WorkerAnswer, WorkerQueryRequest};
use prag_proto::contracts::worker::Worker;

use super::{Node, NodeError, internal};
use crate::access::Refusal;
use crate::auth::unix_now;

/// How often the policy file is checked for changes.
const POLICY_POLL: Duration = Duration::from_secs(2);

/// What a worker's request was, as far as the audit log may say.
#[derive(Default)]
struct Subject {
    actor: String,
    worker: String,
    subscriber: String,
    collection: String,
}

/// Longest text kept of an audit field: the log must not grow with what a caller sends.
const MAX_AUDIT_FIELD: usize = 128;

fn bounded(s: &str) -> String {
    if s.len() <= MAX_AUDIT_FIELD {
        return s.to_string();
    }
    let mut end = MAX_AUDIT_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Node {
    fn audit(&self, event: &str, reason: &str, s: &Subject, detail: String) {
        self.audit.record(AuditEntry {
            time: unix_now(),
            event: event.to_string(),
            reason: reason.to_string(),
            actor: bounded(&s.actor),
            worker: bounded(&s.worker),
            subscriber: bounded(&s.subscriber),
            collection: bounded(&s.collection),
            detail: bounded(&detail),
        });
    }

    /// Serves an authenticated worker's retrieval request, or says which check failed. Only
    /// callers whose signature verified get here (on the owner's channel), so every refusal
    /// audited names a real key: nobody can write to the audit log without one.
    pub async fn worker_query(&self, caller: &VerifyingKey, body: &[u8]) -> Result<SealedAnswer, Refusal> {
        let mut subject = Subject::default();
        let started = Instant::now();
        let result = self.decide_and_serve(caller, body, &mut subject).await;
        match &result {
            Ok(_) => {
                self.metrics.worker_queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.metrics.worker_query_seconds.observe(started.elapsed().as_secs_f64());
                self.audit("served", "", &subject, String::new());
            }
            Err(r) => {
                self.metrics.refuse(r.code());
                tracing::warn!(reason = r.code(), worker = %subject.worker, "worker request refused");
                self.audit("refused", r.code(), &subject, r.to_string());
            }
        }
        result
    }

    async fn decide_and_serve(
        &self,
        caller: &VerifyingKey,
        body: &[u8],
        subject: &mut Subject,
    ) -> Result<SealedAnswer, Refusal> {
        let now = unix_now();
        // 1. Who signed, when, and only once: checked by the channel before the request got here.
        let signer = prag_proto::account::public_key_hex(caller);
        subject.actor = signer.clone();

        // 2. The request itself.
        let req: WorkerQueryRequest =
            serde_json::from_slice(body).map_err(|e| Refusal::BadRequest(format!("invalid request body: {e}")))?;
        subject.collection = req.collection.clone();
        if req.audience != self.node_id {
            return Err(Refusal::WrongAudience(req.audience));
        }
        crate::sealed::check_public_key(&req.ephemeral_public_key).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        if req.request_id.is_empty() || req.request_id.len() > 128 {
            return Err(Refusal::BadRequest("request_id must be 1 to 128 characters".into()));
        }
        let subscriber = prag_proto::account::parse_public_key(&req.subscriber)
            .map(|k| prag_proto::account::public_key_hex(&k))
            .map_err(|e| Refusal::BadRequest(format!("subscriber: {e}")))?;
        subject.subscriber = subscriber.clone();

        // 3. The worker and whom it acts for, from the contracts' state.
        let (worker, subscriber_active, api_key_valid) = self.ledger.with_state(|s| {
            let worker: Option<Worker> =
                s.worker.workers.values().find(|w| w.signing_key.as_deref() == Some(signer.as_str())).cloned();
            let active = s.subscription.is_active(&subscriber);
            let key_ok = req.api_key.as_deref().map(|k| s.subscription.api_key_valid(k));
            (worker, active, key_ok)
        });
        let worker = worker.ok_or(Refusal::UnregisteredWorker)?;
        subject.worker = worker.ip_address.clone();
        self.gate.check_worker(&worker, now)?;
        let max_age = self.gate.max_liveliness_age();
        match worker.last_seen {
            None => {
                return Err(Refusal::StaleLiveliness(
                    "missing: the worker never answered a liveliness challenge".into(),
                ));
            }
            Some(t) if now.saturating_sub(t) > max_age => {
                return Err(Refusal::StaleLiveliness(format!("{} s old (at most {max_age} s)", now - t)));
            }
            Some(_) => {}
        }
        match api_key_valid {
            Some(false) => return Err(Refusal::RevokedApiKey),
            Some(true) => {}
            None if !subscriber_active => return Err(Refusal::InactiveSubscriber),
            None => {}
        }

        // 4. The collection and its owner's grant.
        let coll = self.collection(&req.collection).map_err(|_| Refusal::UnknownCollection(req.collection.clone()))?;
        if !coll.grants.lock().contains(&subscriber) {
            return Err(Refusal::NoGrant);
        }

        // Allowed: retrieve, meter, seal to the worker's ephemeral key.
        let found = self.retrieve(&signer, &coll, req.text, req.k, false).await.map_err(|e| match e {
            NodeError::BadRequest(m) => Refusal::BadRequest(m),
            other => Refusal::BadRequest(format!("retrieval failed: {other}")),
        })?;
        let (hits, unreadable, missing_shards) = (found.hits, found.unreadable, found.missing_shards);
        let tokens: u64 =
            hits.iter().map(|h| self.embedder.tokenizer().count_tokens(&h.text).unwrap_or(0) as u64).sum();
        self.usage.record(&worker.ip_address, &subscriber, hits.len() as u64, tokens);
        let answer = WorkerAnswer {
            collection: req.collection.clone(),
            hits,
            unreadable,
            partial: !missing_shards.is_empty(),
            missing_shards,
        };
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&answer).map_err(|e| Refusal::BadRequest(format!("cannot encode the answer: {e}")))?,
        );
        crate::sealed::seal(&req.ephemeral_public_key, &self.node_id, &req.request_id, &plain)
            .map_err(|e| Refusal::BadRequest(e.to_string()))
    }

    /// Allows (`allow`) or stops allowing a subscriber's workers to query a collection. Owner only.
    pub async fn set_grant(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        subscriber: &str,
        allow: bool,
    ) -> Result<GrantsResponse, NodeError> {
        let coll = self.collection(collection)?;
        coll.check_owner(caller)?;
        let subscriber = prag_proto::account::parse_public_key(subscriber)
            .map(|k| prag_proto::account::public_key_hex(&k))
            .map_err(|e| NodeError::BadRequest(format!("subscriber: {e}")))?;
        let _commit = coll.commit.lock().await;
        let mut next = coll.grants.lock().clone();
        let changed = if allow { next.insert(subscriber.clone()) } else { next.remove(&subscriber) };
        if changed {
            let (store, g) = (coll.store.clone(), next.clone());
            tokio::task::spawn_blocking(move || store.write_grants(&g)).await.map_err(internal)?.map_err(internal)?;
            *coll.grants.lock() = next.clone();
            // Peers take the newest grants (by this version) when they next sync.
            let version = crate::store::document::new_version(Some(coll.live_meta.lock().grants_version));
            coll.update_meta(|m| m.grants_version = version)?;
        }
        let subject = Subject {
            actor: prag_proto::account::public_key_hex(caller),
            subscriber,
            collection: collection.to_string(),
            ..Default::default()
        };
        self.audit(
            if allow { "grant" } else { "revoke" },
            "",
            &subject,
            if changed { String::new() } else { "no change".into() },
        );
        Ok(GrantsResponse { collection: collection.to_string(), subscribers: next.into_iter().collect() })
    }

    pub fn grants(&self, caller: &VerifyingKey, collection: &str) -> Result<GrantsResponse, NodeError> {
        let coll = self.collection(collection)?;
        coll.check_owner(caller)?;
        let subscribers = coll.grants.lock().iter().cloned().collect();
        Ok(GrantsResponse { collection: collection.to_string(), subscribers })
    }

    /// The attestation gate on a transaction this node orders: a `register_worker` whose report
    /// does not verify, is not allowed by the policy, or does not bind the worker's signing key is
    /// refused before it reaches the ledger.
    pub fn check_transaction(&self, tx: &prag_proto::ledger::SignedTx) -> Result<(), NodeError> {
        use prag_proto::contracts::worker::ExecuteMsg;
        let Some(body) = tx.body.msg.get("register_worker") else { return Ok(()) };
        // Only the admin may register workers: anyone else gets the contract's own refusal.
        let from_admin = prag_proto::account::parse_public_key(&tx.body.sender)
            .map(|k| prag_proto::account::address(&k))
            .is_ok_and(|a| self.ledger.with_state(|s| s.admin() == a));
        if !from_admin {
            return Ok(());
        }
        let Ok(ExecuteMsg::RegisterWorker { attestation_report, signing_key, ip_address, .. }) =
            serde_json::from_value::<ExecuteMsg>(serde_json::json!({ "register_worker": body }))
        else {
            return Ok(()); // malformed: the contract itself refuses it with its own message
        };
        match self.gate.check_registration(&attestation_report, signing_key.as_deref(), unix_now()) {
            Ok(v) => {
                tracing::info!(worker = %ip_address, kind = %v.kind, tcb = %v.tcb_status, "worker attestation verified at registration");
                Ok(())
            }
            Err(r) => {
                let subject = Subject { actor: tx.body.sender.clone(), worker: ip_address, ..Default::default() };
                self.metrics.refuse(r.code());
                self.audit("register_refused", r.code(), &subject, r.to_string());
                Err(NodeError::Forbidden(format!("register_worker refused: {r}")))
            }
        }
    }

    /// Before judging a `register_worker`: TDX collateral from the PCCS if the report lacks it.
    pub async fn fetch_collateral_for(&self, tx: &prag_proto::ledger::SignedTx) {
        if let Some(report) =
            tx.body.msg.get("register_worker").and_then(|b| b.get("attestation_report")).and_then(|r| r.as_str())
        {
            self.gate.ensure_collateral(report, unix_now()).await;
        }
    }

    /// Fetches missing TDX collateral for registered workers; re-judges them if any came.
    async fn fetch_missing_collateral(&self) {
        if !self.gate.has_pccs() {
            return; // runs every poll tick: do not copy every report for nothing
        }
        let reports: Vec<String> =
            self.ledger.with_state(|s| s.worker.workers.values().map(|w| w.attestation_report.clone()).collect());
        let mut fetched = false;
        for r in reports {
            fetched |= self.gate.ensure_collateral(&r, unix_now()).await;
        }
        if fetched {
            self.log_worker_verdicts("after fetching collateral");
        }
    }

    /// Re-judges every registered worker and logs each verdict.
    pub(crate) fn log_worker_verdicts(&self, when: &str) {
        let now = unix_now();
        let workers: Vec<Worker> = self.ledger.with_state(|s| s.worker.workers.values().cloned().collect());
        for w in workers {
            match self.gate.check_worker(&w, now) {
                Ok(v) => {
                    tracing::info!(worker = %w.ip_address, kind = %v.kind, tcb = %v.tcb_status, when, "worker attestation accepted")
                }
                Err(r) => {
                    tracing::warn!(worker = %w.ip_address, reason = r.code(), detail = %r, when, "worker attestation refused")
                }
            }
        }
    }

    /// Whether `key` may read operator endpoints: the contracts' admin or a configured operator.
    pub fn is_operator(&self, key: &VerifyingKey) -> bool {
        let hex = prag_proto::account::public_key_hex(key);
        let admin = self.ledger.with_state(|s| s.admin().to_string());
        admin == prag_proto::account::address(key) || self.config.access.operators.contains(&hex)
    }

    /// The audit log, newest first (operators only).
    pub fn audit_entries(&self, caller: &VerifyingKey, limit: usize) -> Result<Vec<AuditEntry>, NodeError> {
        if !self.is_operator(caller) {
            return Err(NodeError::Forbidden(
                "only the contracts' admin or a node operator may read the audit log".into(),
            ));
        }
        Ok(self.audit.recent(limit))
    }

    /// One worker's metered usage, for its own `report_work` (signed by the worker's key).
    pub fn worker_usage(&self, caller: &VerifyingKey) -> Result<Vec<prag_proto::api::WorkerUsage>, NodeError> {
        let me = prag_proto::account::public_key_hex(caller);
        let ip = self
            .ledger
            .with_state(|s| {
                s.worker
                    .workers
                    .values()
                    .find(|w| w.signing_key.as_deref() == Some(me.as_str()))
                    .map(|w| w.ip_address.clone())
            })
            .ok_or_else(|| NodeError::Forbidden("the signing key is not a registered worker's key".into()))?;
        Ok(self.usage.for_worker(&ip))
    }
}

/// Watches the policy file; on a change, installs the new policy and re-judges every worker.
pub(crate) async fn policy_watch(node: Weak<Node>) {
    loop {
        tokio::time::sleep(POLICY_POLL).await;
        let Some(node) = node.upgrade() else { return };
        node.fetch_missing_collateral().await;
        match node.gate.reload_if_changed() {
            None => {}
            Some(Ok(())) => {
                tracing::info!("attestation policy changed: re-checking every registered worker");
                node.audit("policy", "", &Subject::default(), "attestation policy reloaded".into());
                node.log_worker_verdicts("after policy change");
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "attestation policy file changed but is invalid; keeping the previous policy")
            }
        }
    }
}

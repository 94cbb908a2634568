//! The worker's retrieval path: the decision table, then retrieval, metering and sealing.

use std::time::Instant;

use k256::ecdsa::VerifyingKey;
use prag_proto::api::{SealedAnswer, WorkerAnswer, WorkerQueryRequest};

use super::{Access, Subject};
use crate::auth::unix_now;
use crate::error::{Error, ErrorKind, Result};

/// Who may be served, once every check passed.
struct Allowed {
    worker_ip: String,
    subscriber: String,
    collection: std::sync::Arc<crate::collections::Collection>,
}

impl Access {
    /// Serves an authenticated worker's retrieval request, or says which check failed. Only
    /// callers whose signature verified get here (on the owner's channel), so every refusal
    /// audited names a real key: nobody can write to the audit log without one.
    pub async fn worker_query(&self, caller: &VerifyingKey, body: &[u8]) -> Result<SealedAnswer> {
        let mut subject = Subject { actor: prag_proto::account::public_key_hex(caller), ..Default::default() };
        let started = Instant::now();
        let result = self.serve_worker(&mut subject, body).await;
        match &result {
            Ok(_) => {
                self.metrics.worker_queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.metrics.worker_query_seconds.observe(started.elapsed().as_secs_f64());
                self.audit("served", "", &subject, String::new());
            }
            Err(e) => {
                tracing::warn!(reason = e.code(), worker = %subject.worker, "worker request refused");
                self.audit("refused", e.code(), &subject, e.public_message().to_string());
            }
        }
        result
    }

    async fn serve_worker(&self, subject: &mut Subject, body: &[u8]) -> Result<SealedAnswer> {
        let mut req: WorkerQueryRequest =
            serde_json::from_slice(body).map_err(|e| Error::bad_request(format!("invalid request body: {e}")))?;
        let allowed = self.decide(subject, &req, unix_now())?;
        if let Some(stack) = req.stack {
            let paid = self
                .market
                .serve(&allowed.subscriber, &allowed.collection, std::mem::take(&mut req.text), req.k, stack)
                .await?;
            let tokens: u64 = paid.hits.iter().map(|h| self.retrieval.count_tokens(&h.text)).sum();
            self.usage.record(&allowed.worker_ip, &allowed.subscriber, paid.hits.len() as u64, tokens);
            let answer = WorkerAnswer {
                collection: req.collection.clone(),
                hits: paid.hits,
                unreadable: Vec::new(),
                partial: false,
                missing_shards: Vec::new(),
                receipt: Some(paid.receipt),
            };
            return self.seal_answer(&req, &answer);
        }
        let found = self
            .retrieval
            .retrieve(
                &subject.actor,
                &allowed.collection,
                std::mem::take(&mut req.text),
                req.k,
                false,
                req.mode.unwrap_or_default(),
            )
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::BadRequest => e,
                _ => Error::new(e.kind(), format!("retrieval failed: {}", e.public_message())),
            })?;
        let tokens: u64 = found.hits.iter().map(|h| self.retrieval.count_tokens(&h.text)).sum();
        self.usage.record(&allowed.worker_ip, &allowed.subscriber, found.hits.len() as u64, tokens);
        let answer = WorkerAnswer {
            collection: req.collection.clone(),
            hits: found.hits,
            unreadable: found.unreadable,
            partial: !found.missing_shards.is_empty(),
            missing_shards: found.missing_shards,
            receipt: None,
        };
        self.seal_answer(&req, &answer)
    }

    fn seal_answer(&self, req: &WorkerQueryRequest, answer: &WorkerAnswer) -> Result<SealedAnswer> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(answer).map_err(|e| Error::internal("cannot encode the answer", e))?,
        );
        Ok(crate::sealed::seal(&req.ephemeral_public_key, &self.node_id, &req.request_id, &plain)?)
    }

    /// The decision table, in the order the README gives it: the request, the worker, whom it acts
    /// for, the collection. Each refusal has its own kind.
    fn decide(&self, subject: &mut Subject, req: &WorkerQueryRequest, now: u64) -> Result<Allowed> {
        let refuse = |kind: ErrorKind, message: String| Err(Error::new(kind, message));
        // 1. The request itself.
        subject.collection = req.collection.clone();
        if req.audience != self.node_id {
            return refuse(
                ErrorKind::WrongAudience,
                format!("the request is addressed to node {:?}, not this one", req.audience),
            );
        }
        crate::sealed::check_public_key(&req.ephemeral_public_key)?;
        if req.request_id.is_empty() || req.request_id.len() > 128 {
            return refuse(ErrorKind::BadRequest, "request_id must be 1 to 128 characters".into());
        }
        let subscriber = prag_proto::account::canonical_public_key(&req.subscriber)
            .map_err(|e| Error::bad_request(format!("subscriber: {e}")))?;
        subject.subscriber = subscriber.clone();

        // 2. The worker, from the contracts' state.
        let state = self.ledger.state();
        let worker = state.worker.by_signing_key(&subject.actor).cloned().ok_or_else(|| {
            Error::new(ErrorKind::UnregisteredWorker, "the signing key is not a registered worker's key")
        })?;
        subject.worker = worker.ip_address.clone();
        self.gate.check_worker(&worker, now)?;
        let max_age = self.gate.max_liveliness_age();
        match worker.last_seen {
            None => {
                return refuse(
                    ErrorKind::StaleLiveliness,
                    "the worker's last liveliness answer is missing: it never answered a liveliness challenge".into(),
                );
            }
            Some(t) if now.saturating_sub(t) > max_age => {
                return refuse(
                    ErrorKind::StaleLiveliness,
                    format!("the worker's last liveliness answer is {} s old (at most {max_age} s)", now - t),
                );
            }
            Some(_) => {}
        }

        // 3. Whom it acts for.
        match req.api_key.as_deref().map(|k| state.subscription.api_key_valid(k)) {
            Some(false) => {
                return refuse(
                    ErrorKind::RevokedApiKey,
                    "the API key is not (or no longer) stored in SubscriptionManager".into(),
                );
            }
            Some(true) => {}
            None if !state.subscription.is_active(&subscriber) => {
                return refuse(
                    ErrorKind::InactiveSubscriber,
                    "the subscriber is not active and no valid API key was given".into(),
                );
            }
            None => {}
        }

        // 4. The collection and its owner's grant.
        let collection = self.collections.get(&req.collection).map_err(|_| {
            Error::new(ErrorKind::UnknownCollection, format!("no collection {:?} on this node", req.collection))
        })?;
        if !collection.is_granted(&subscriber) {
            return refuse(ErrorKind::NoGrant, "the collection's owner has not granted this subscriber access".into());
        }
        Ok(Allowed { worker_ip: worker.ip_address, subscriber, collection })
    }
}

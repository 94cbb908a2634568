//! The sync round, every `--sync-interval-ms`: this node's own admission, every connected peer's,
//! their catalogs (new collections adopted with their keys unwrapped, newer grants, tombstones,
//! what each peer holds); then the round's replication plan goes to the replicator.

use std::sync::Arc;

use libp2p::PeerId;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::peers;
use super::plan::{newer_tombstones, plan_round, takes_grants, tombstone_removes};
use super::replicator::CollectionWork;
use crate::collections::{Collection, NewCollection};
use crate::error::{Error, Result};
use crate::net::protocol::cluster::{ClusterRequest, ClusterResponse, CollectionRecord, Framed};
use crate::store::CollectionMeta;

/// Runs a round every sync interval until `cancel` fires.
pub(crate) async fn run(cx: Arc<Context>, cancel: CancellationToken) {
    let mut timer = tokio::time::interval(cx.config.sync_interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = timer.tick() => round(&cx).await,
        }
    }
}

async fn round(cx: &Arc<Context>) {
    let me = cx.me.to_string();
    let (verdict, changed) = cx.admission.judge_self(&me, &cx.identity.card(&me));
    if changed.0 {
        match &verdict {
            Ok(()) => tracing::info!("this node is admitted as a storage node"),
            Err(reason) => {
                tracing::warn!(%reason, "this node is not admitted as a storage node: it holds no shards of others")
            }
        }
    }
    let admitted_self = verdict.is_ok();
    futures::future::join_all(cx.net.connected().into_iter().map(|peer| sync_with(cx, peer, admitted_self))).await;
    if admitted_self {
        replicate(cx).await;
    }
}

/// Judges `peer` again and, when both are admitted, takes in its catalog.
async fn sync_with(cx: &Arc<Context>, peer: PeerId, admitted_self: bool) {
    let card = match peers::card_of(cx, peer).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "no storage card from peer");
            return;
        }
    };
    let (verdict, changed) = cx.admission.rejudge(peer, &card);
    match (&verdict, changed.0) {
        (Ok(_), true) => tracing::info!(peer = %peer, "peer admitted as a storage node"),
        (Err(reason), true) => {
            tracing::warn!(peer = %peer, %reason, "peer refused as a storage node: it gets no shards and no keys")
        }
        _ => {}
    }
    if verdict.is_err() || !admitted_self {
        return;
    }
    match cx.net.ask_cluster(peer, Framed::new(ClusterRequest::Sync)).await.map(|f| f.head) {
        Ok(ClusterResponse::Sync(records)) => merge_records(cx, peer, records).await,
        Ok(ClusterResponse::Refused(e)) => tracing::debug!(peer = %peer, reason = %e.message, "peer refused to sync"),
        Ok(other) => tracing::debug!(peer = %peer, answer = ?other, "unexpected sync answer"),
        Err(e) => tracing::debug!(peer = %peer, error = %e, "sync failed"),
    }
}

/// Takes in a peer's catalog: new collections, newer grants, tombstones, and what it holds.
async fn merge_records(cx: &Arc<Context>, peer: PeerId, records: Vec<CollectionRecord>) {
    let mut report = Vec::with_capacity(records.len());
    for r in records {
        let coll = match cx.collections.by_id(&r.cid) {
            Some(c) => c,
            None => match adopt(cx, &r).await {
                Ok(c) => {
                    tracing::info!(collection = %r.name, peer = %peer, "collection joined from a peer (key unwrapped with this node's attested key)");
                    c
                }
                Err(e) => {
                    tracing::warn!(collection = %r.name, peer = %peer, error = %e.chain(), "cannot take in a peer's collection");
                    continue;
                }
            },
        };
        if let Err(e) = take_in(&coll, &r).await {
            tracing::error!(collection = %coll.name(), error = %e.chain(), "cannot take in a peer's grants or deletions");
        }
        report.push((r.cid, r.holdings));
    }
    cx.catalog.record(peer, report);
}

/// Newer grants replace these; newer tombstones are recorded first, then the versions they delete
/// are dropped here (a version uploaded after the delete stays).
async fn take_in(coll: &Arc<Collection>, r: &CollectionRecord) -> Result<()> {
    let _commit = coll.commit.lock().await;
    let live = coll.live();
    let grants = takes_grants(live.grants_version, r.grants_version);
    let deleted = newer_tombstones(&live.tombstones, &r.tombstones);
    if !grants && deleted.is_empty() {
        return Ok(());
    }
    coll.update_live(|l| {
        if grants {
            l.grants = r.grants.clone();
            l.grants_version = r.grants_version;
        }
        l.tombstones.extend(deleted.iter().cloned());
    })
    .await?;
    if grants {
        tracing::info!(collection = %coll.name(), "access grants updated from a peer");
    }
    for (doc, v) in deleted {
        if coll.entry(&doc).is_some_and(|held| tombstone_removes(held.version, v)) {
            coll.remove_document(&doc, Some(v)).await?;
        }
    }
    Ok(())
}

/// Creates the local side of a collection first made on a peer (same id, same key).
async fn adopt(cx: &Arc<Context>, r: &CollectionRecord) -> Result<Arc<Collection>> {
    if let Ok(existing) = cx.collections.get(&r.name) {
        return Err(Error::conflict(format!(
            "a different collection named {:?} exists here ({})",
            r.name,
            existing.id()
        )));
    }
    // Within the bounds of the flags: a peer's numbers never size a loop beyond them.
    if !(1..=1024).contains(&r.shards) || !(1..=16).contains(&r.replicas) {
        return Err(Error::bad_request(format!(
            "the peer's collection has {} shards and {} replicas (at most 1024 and 16)",
            r.shards, r.replicas
        )));
    }
    let wrapped = hex::decode(&r.wrapped_key).map_err(|_| Error::bad_request("the wrapped key is not hex"))?;
    let key = super::keywrap::unwrap(&wrapped, &r.cid, &cx.me.to_string(), cx.identity.hpke_private())?;
    let meta = CollectionMeta {
        name: r.name.clone(),
        owner: r.owner.clone(),
        created_at: r.created_at,
        shards: r.shards,
        replicas: r.replicas,
        grants_version: r.grants_version,
        tombstones: r.tombstones.clone(),
    };
    cx.collections
        .install(NewCollection { cid: r.cid.clone(), key, meta, grants: r.grants.clone(), quota_owner: None })
        .await
}

/// The round's plan for every shareable collection, for the replicator.
async fn replicate(cx: &Arc<Context>) {
    let me = cx.me.to_string();
    let work = cx
        .collections
        .all()
        .into_iter()
        .filter(|c| c.shareable())
        .map(|c| {
            let plan = plan_round(&me, &cx.owners(&c), &cx.view(&c));
            CollectionWork { cid: c.id().to_string(), fetch: plan.fetch, hand_off: plan.hand_off }
        })
        .collect();
    cx.replicator.round(work).await;
}

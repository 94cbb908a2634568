//! The ledger's side of the peer network, on its own task: the orderer gossips each new entry;
//! every node checks and appends what it receives (through the writer thread), asks a peer for the
//! entries it lacks when it connects, sees a gap, or every `--catch-up-ms`, and answers peers'
//! requests (entries, and transactions forwarded to the orderer).

use std::time::Duration;

use libp2p::PeerId;
use prag_proto::ledger::Entry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::service::LedgerService;
use crate::net::protocol::ledger::{CATCH_UP_BATCH, LedgerRequest, LedgerResponse};
use crate::net::{LedgerEvent, Net};

/// Runs until `cancel` fires or the network stops.
pub(crate) async fn run(
    ledger: LedgerService,
    net: Net,
    mut events: mpsc::Receiver<LedgerEvent>,
    catch_up: Duration,
    cancel: CancellationToken,
) {
    let mut heights = ledger.subscribe();
    let mut published = ledger.height();
    let mut timer = tokio::time::interval(catch_up);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => match event {
                Some(LedgerEvent::Connected(peer)) => ask_for_entries(&ledger, &net, peer),
                Some(LedgerEvent::Gossip { from, data }) => match serde_json::from_slice::<Entry>(&data) {
                    Ok(entry) => apply_from(&ledger, &net, from, vec![entry]),
                    Err(e) => tracing::warn!(peer = %from, error = %e, "unreadable ledger gossip"),
                },
                Some(LedgerEvent::Request { peer, request, reply }) => {
                    tracing::trace!(peer = %peer, "ledger request from a peer");
                    let ledger = ledger.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(ledger.answer(request).await);
                    });
                }
                None => return,
            },
            changed = heights.changed() => {
                if changed.is_err() {
                    return;
                }
                if ledger.is_orderer() {
                    published = publish_new_entries(&ledger, &net, published).await;
                }
            }
            _ = timer.tick() => {
                for peer in net.connected() {
                    ask_for_entries(&ledger, &net, peer);
                }
            }
        }
    }
}

/// Gossips the entries after `published`; returns the new published height.
async fn publish_new_entries(ledger: &LedgerService, net: &Net, published: u64) -> u64 {
    let height = ledger.height();
    for entry in ledger.entries(published, height.saturating_sub(published) as usize) {
        match serde_json::to_vec(&entry) {
            Ok(bytes) => {
                if let Err(e) = net.publish_ledger(bytes).await {
                    tracing::debug!(height = entry.height, error = %e, "ledger entry not gossiped");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a ledger entry"),
        }
    }
    height
}

/// Asks `peer` for the entries after this log's height (on a task of its own).
fn ask_for_entries(ledger: &LedgerService, net: &Net, peer: PeerId) {
    let (ledger, net) = (ledger.clone(), net.clone());
    tokio::spawn(async move {
        let from = ledger.height();
        match net.ask_ledger(peer, LedgerRequest::Entries { from }).await {
            Ok(LedgerResponse::Entries(entries)) => apply_from(&ledger, &net, peer, entries),
            Ok(other) => tracing::debug!(peer = %peer, answer = ?other, "unexpected answer to a catch-up request"),
            Err(e) => tracing::debug!(peer = %peer, error = %e, "catch-up request failed"),
        }
    });
}

/// Appends entries from `from` (on a task of its own); asks for more when still behind.
fn apply_from(ledger: &LedgerService, net: &Net, from: PeerId, entries: Vec<Entry>) {
    let (ledger, net) = (ledger.clone(), net.clone());
    let full = entries.len() as u64 == CATCH_UP_BATCH;
    tokio::spawn(async move {
        match ledger.replicate(entries).await {
            Ok(outcome) => {
                if let Some(reason) = &outcome.refused {
                    tracing::error!(peer = %from, %reason, "replicated ledger entry refused");
                } else if outcome.gap || full {
                    ask_for_entries(&ledger, &net, from);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot append replicated ledger entries"),
        }
    });
}

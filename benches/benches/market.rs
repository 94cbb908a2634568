//! What one compute-market transaction costs the ledger to apply (`LedgerState::apply`: verify the
//! signature, run the contract on a copy of the state, keep the copy), as the market grows: a
//! bank transfer and a stack purchase with 0, 1,000 and 10,000 stacks already in the state.
//!
//! There is no peer to run beside it here (Atoma's contract runs in Sui's Move VM); what the
//! numbers show is how the whole-state copy per transaction grows with the market, which every
//! node pays once per ledger entry on replay and replication.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k256::ecdsa::{SigningKey, VerifyingKey};
use prag_proto::contracts::{Env, Sender};
use prag_proto::ledger::{LedgerState, SignedTx};
use serde_json::json;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("key")
}

fn address(seed: u8) -> String {
    prag_proto::account::address(&VerifyingKey::from(&key(seed)))
}

fn env(height: u64) -> Env {
    let mut random = [0u8; 32];
    random[..8].copy_from_slice(&height.to_le_bytes());
    Env {
        time: 1_800_000_000,
        random,
        contract_address: "secret1c".into(),
        chain_id: "bench".into(),
        next_random_sha256: None,
    }
}

struct Ledger {
    state: LedgerState,
    height: u64,
}

impl Ledger {
    fn apply(&mut self, who: u8, msg: serde_json::Value) -> serde_json::Value {
        let tx =
            SignedTx::sign(&key(who), &format!("benchnonce{:012}", self.height), 1_800_000_000, msg).expect("sign");
        let out = self.state.apply(&env(self.height), &tx, self.height).expect("apply");
        self.height += 1;
        out.unwrap_or_default()
    }
}

/// A market with three nodes on a retrieval task, an owner with money, and `stacks` stacks bought.
fn market(stacks: usize) -> Ledger {
    let mut l = Ledger { state: LedgerState::default(), height: 0 };
    let admin = address(1);
    l.apply(
        1,
        json!({"genesis": {"admin": admin, "chain_id": "bench", "contract_address": "secret1c",
        "accounts": [{"address": admin, "amount": "1000000000000000"}]}}),
    );
    for n in 10..13u8 {
        let pk = prag_proto::account::public_key_hex(&VerifyingKey::from(&key(n)));
        l.apply(
            1,
            json!({"register_worker": {"ip_address": format!("peer-{n}"), "payment_wallet": address(n),
            "attestation_report": "dev", "worker_type": "prag-storage", "signing_key": pk}}),
        );
        l.apply(1, json!({"transfer": {"to": address(n), "amount": "10000"}}));
        l.apply(n, json!({"register_node": {"collateral": "10000"}}));
    }
    l.apply(1, json!({"create_task": {"role": 8, "security_level": 2, "is_public": true}}));
    for n in 10..13u8 {
        l.apply(
            n,
            json!({"subscribe_node_to_task": {"task_small_id": 1, "price_per_one_million_compute_units": 1000000}}),
        );
    }
    l.apply(1, json!({"transfer": {"to": address(2), "amount": "100000000000000"}}));
    // Bought straight through the contract, not `apply`, so the set-up does not pay a copy each.
    let owner = Sender::new(VerifyingKey::from(&key(2)));
    let LedgerState { worker, bank, market, .. } = &mut l.state;
    let workers = &*worker;
    let storage = |k: &str| workers.by_signing_key(k).map(|w| w.ip_address.clone());
    for i in 0..stacks {
        let e = env(1_000_000 + i as u64);
        let mut ctx = prag_proto::contracts::market::Ctx {
            env: &e,
            sender: &owner,
            seed: [i as u8; 32],
            bank,
            storage_node: &storage,
        };
        let m = serde_json::from_value(
            json!({"acquire_new_stack": {"task_small_id": 1, "num_compute_units": 1000, "price": 1000000}}),
        )
        .expect("msg");
        market.execute(&mut ctx, m).expect("buy");
    }
    l
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("market_apply");
    g.sample_size(20);
    for stacks in [0usize, 1_000, 10_000] {
        let l = market(stacks);
        let transfer = SignedTx::sign(
            &key(2),
            "benchnoncetransfer0",
            1_800_000_000,
            json!({"transfer": {"to": address(3), "amount": "5"}}),
        )
        .expect("sign");
        let buy = SignedTx::sign(
            &key(2),
            "benchnoncebuy0000000",
            1_800_000_000,
            json!({"acquire_new_stack": {"task_small_id": 1, "num_compute_units": 1000, "price": 1000000}}),
        )
        .expect("sign");
        let h = l.height;
        g.bench_function(format!("transfer/{stacks}_stacks"), |b| {
            b.iter_batched(
                || l.state.clone(),
                |mut s| s.apply(&env(h), &transfer, h).expect("apply"),
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("acquire_new_stack/{stacks}_stacks"), |b| {
            b.iter_batched(|| l.state.clone(), |mut s| s.apply(&env(h), &buy, h).expect("apply"), BatchSize::LargeInput)
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

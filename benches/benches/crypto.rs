//! AES-256-GCM seal and open of 16 KiB chunks on one core: `ring` (what the node uses, raw and
//! through the node's envelope with its random nonce and key derivation) against the pure-Rust
//! `aes-gcm` crate. Compare with `openssl speed -bytes 16384 -evp aes-256-gcm` on the same machine.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aes_gcm::aead::{Aead, KeyInit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prag_node::crypto::{KeyContext, MasterKey, Purpose};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const SIZE: usize = 16 * 1024;

fn bench(c: &mut Criterion) {
    let data = vec![0x5au8; SIZE];
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    let mut g = c.benchmark_group("aes256gcm-16KiB");
    g.throughput(Throughput::Bytes(SIZE as u64));

    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("key"));
    let mut buf = data.clone();
    g.bench_function("ring/seal", |b| {
        b.iter(|| {
            buf.truncate(SIZE);
            ring_key
                .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
                .expect("seal");
        })
    });
    let mut sealed = data.clone();
    ring_key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut sealed).expect("seal");
    g.bench_function("ring/open", |b| {
        b.iter(|| {
            let mut t = sealed.clone();
            ring_key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut t)
                .map(|p| p.len())
                .expect("open")
        })
    });

    let rc = aes_gcm::Aes256Gcm::new_from_slice(&key).expect("key");
    let n = aes_gcm::Nonce::from_slice(&nonce);
    g.bench_function("aes-gcm/seal", |b| b.iter(|| rc.encrypt(n, data.as_slice()).expect("seal")));
    let ct = rc.encrypt(n, data.as_slice()).expect("seal");
    g.bench_function("aes-gcm/open", |b| b.iter(|| rc.decrypt(n, ct.as_slice()).expect("open")));

    // The node's real path: derive the chunk key (HKDF), random nonce, seal / open.
    let master = MasterKey::from_bytes([3; 32]);
    let ctx = KeyContext::new(Purpose::ChunkText, "collection", "document", 7, 1);
    g.bench_function("node-envelope/derive+seal", |b| b.iter(|| master.derive(&ctx).seal(&data).expect("seal")));
    let env = master.derive(&ctx).seal(&data).expect("seal");
    g.bench_function("node-envelope/derive+open", |b| b.iter(|| master.derive(&ctx).open(&env).expect("open")));
    g.finish();
}

criterion_group!(crypto, bench);
criterion_main!(crypto);

//! AES-256-GCM on one core.
//!
//! - `aes256gcm-16KiB`: seal and open of a 16 KiB chunk, in place: `ring` (what the store uses,
//!   raw and through the node's envelope with its HKDF key derivation and random nonce) against
//!   the pure-Rust `aes-gcm` crate (what `hpke` uses). Compare with
//!   `openssl speed -bytes 16384 -evp aes-256-gcm` on the same machine.
//! - `hkdf-sha256-expand`: deriving one 32-byte chunk key from the master key's PRK, as the store
//!   does for every chunk it seals or opens: `ring` against the `hkdf` crate (what `hpke` uses).
//! - `owner-channel-4MiB`: a 4 MiB upload on the owner's channel, sealed by the client and opened
//!   by the node (HPKE set-up, then `aes-gcm` over the body), through the node's own code, so it
//!   measures the code `prag` runs.
//!
//! This package builds with one codegen unit (the workspace's `Cargo.toml`): with sixteen, LLVM
//! places `aes-gcm`'s generic GHASH closure apart from the `generic-array` helpers it calls,
//! cannot inline them, and `aes-gcm` measures 3 to 5 times slower than it is.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prag_node::channel::{ChannelKeys, ClientRequest, NodeRequest};
use prag_node::crypto::{KeyContext, MasterKey, Purpose};
use prag_proto::api::ChannelHead;
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

    // In place, as `ring` above: sealing allocates in neither; opening works on a fresh copy of the
    // sealed chunk in both, so both open numbers include the same 16 KiB copy.
    let rc = aes_gcm::Aes256Gcm::new_from_slice(&key).expect("key");
    let n = aes_gcm::Nonce::from_slice(&nonce);
    let mut buf = data.clone();
    g.bench_function("aes-gcm/seal", |b| {
        b.iter(|| {
            buf.truncate(SIZE);
            rc.encrypt_in_place(n, b"", &mut buf).expect("seal");
        })
    });
    let mut ct = data.clone();
    rc.encrypt_in_place(n, b"", &mut ct).expect("seal");
    g.bench_function("aes-gcm/open", |b| {
        b.iter(|| {
            let mut t = ct.clone();
            rc.decrypt_in_place(n, b"", &mut t).map(|_| t.len()).expect("open")
        })
    });

    // The node's real path: derive the chunk key (HKDF), random nonce, seal / open.
    let master = MasterKey::from_bytes([3; 32]);
    let ctx = KeyContext::new(Purpose::ChunkText, "collection", "document", 7, 1);
    g.bench_function("node-envelope/derive+seal", |b| b.iter(|| master.derive(&ctx).seal(&data).expect("seal")));
    let env = master.derive(&ctx).seal(&data).expect("seal");
    g.bench_function("node-envelope/derive+open", |b| b.iter(|| master.derive(&ctx).open(&env).expect("open")));
    g.finish();
}

fn hkdf_expand(c: &mut Criterion) {
    let ikm = [3u8; 32];
    // The length of the store's key context for a chunk (keyed ids of collection and document).
    let info = [0x42u8; 7 + 3 * 4 + 10 + 64 + 64 + 8];
    let mut g = c.benchmark_group("hkdf-sha256-expand");
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"PRAG").extract(&ikm);
    g.bench_function("ring", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            prk.expand(&[&info], ring::hkdf::HKDF_SHA256).and_then(|okm| okm.fill(&mut out)).expect("expand");
            out
        })
    });
    let crate_prk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"PRAG"), &ikm);
    g.bench_function("hkdf-crate", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            crate_prk.expand(&info, &mut out).expect("expand");
            out
        })
    });
    g.finish();
}

const UPLOAD: usize = 4 << 20;

fn owner_channel(c: &mut Criterion) {
    let keys = ChannelKeys::derive(&MasterKey::from_bytes([4; 32]));
    let owner = k256::ecdsa::SigningKey::from_slice(&[5; 32]).expect("key");
    let node_id = "bench-node";
    let body = vec![0x5au8; UPLOAD];
    let path = "/v1/collections/bench/documents?path=records/a.md";
    let head = ChannelHead {
        method: "POST".into(),
        path: path.into(),
        content_type: Some("application/octet-stream".into()),
        body_len: UPLOAD as u64,
        auth: prag_proto::auth::sign_request(
            &owner,
            "POST",
            path,
            &body,
            prag_node::unix_now(),
            "benchnonce0001",
            node_id,
        ),
    };
    let seal = || ClientRequest::seal(keys.public(), node_id, &head, &body).expect("seal");
    let mut g = c.benchmark_group("owner-channel-4MiB");
    g.throughput(Throughput::Bytes(UPLOAD as u64));
    g.sample_size(30);
    g.bench_function("client-seal", |b| b.iter(seal));
    g.bench_function("node-open", |b| {
        b.iter_batched(
            seal,
            |sealed| {
                let (_, opener, _) =
                    NodeRequest::open(&sealed.header, keys.private(), node_id).expect("head").into_parts();
                opener.open(sealed.body).expect("body").len()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(crypto, bench, hkdf_expand, owner_channel);
criterion_main!(crypto);

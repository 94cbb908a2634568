//! The node's key tree and authenticated encryption.
//!
//! One 32-byte master key per node (`master.key`, mode 0600). Every piece of data at rest is sealed
//! with AES-256-GCM under its own key, derived with HKDF-SHA256 from the master key with the
//! purpose, collection id, document id, chunk index and key version in the `info`; the same ids go
//! into the AAD, so a ciphertext moved to another place fails to open. Nonces are 96 random bits;
//! each derived key seals a handful of messages, far below GCM's random-nonce limits.
//!
//! AES-GCM and HKDF come from `ring` (BoringSSL's assembly): on the benchmark machine it ran
//! AES-256-GCM at OpenSSL's speed, where the pure-Rust `aes-gcm` crate did not (see benches/).

use std::io::Write;
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

const HKDF_SALT: &[u8] = b"prag/node-master/v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("integrity check failed: the ciphertext was altered, truncated or moved")]
    Integrity,
    #[error("the system random number generator failed")]
    Random,
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// What a derived key protects. Part of the HKDF info and the AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    CollectionMeta,
    DocumentMeta,
    ChunkText,
    ChunkVector,
    /// A chunk's sparse (keyword) vector.
    ChunkSparse,
    /// Keyed hashes of paths (document ids) and contents (change detection).
    Mac,
    /// The secret rotation of vectors sent to a remote index.
    Rotation,
    /// Lines of the audit log.
    Audit,
    /// Collection access grants.
    Grants,
    /// A collection's own key, sealed under the node's master key (`key.sealed`).
    CollectionKey,
    /// Questions and answers of a search one node asks of another, sealed under the collection key.
    RemoteSearch,
    /// A market stack's request log (`market/stacks/`).
    StackLog,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::CollectionMeta => b"collection-meta",
            Purpose::DocumentMeta => b"document-meta",
            Purpose::ChunkText => b"chunk-text",
            Purpose::ChunkVector => b"chunk-vector",
            Purpose::ChunkSparse => b"chunk-sparse",
            Purpose::Mac => b"mac",
            Purpose::Rotation => b"rotation",
            Purpose::Audit => b"audit",
            Purpose::Grants => b"grants",
            Purpose::CollectionKey => b"collection-key",
            Purpose::RemoteSearch => b"remote-search",
            Purpose::StackLog => b"stack-log",
        }
    }
}

/// Where a key is used: every field is bound into both the derivation and the AAD.
#[derive(Debug, Clone, Copy)]
pub struct KeyContext<'a> {
    pub purpose: Purpose,
    pub collection: &'a str,
    pub document: &'a str,
    pub chunk: u32,
    pub version: u32,
}

impl<'a> KeyContext<'a> {
    pub fn new(purpose: Purpose, collection: &'a str, document: &'a str, chunk: u32, version: u32) -> Self {
        KeyContext { purpose, collection, document, chunk, version }
    }

    /// Unambiguous encoding: length-prefixed fields.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.collection.len() + self.document.len());
        out.extend_from_slice(b"prag/v1");
        for field in [self.purpose.label(), self.collection.as_bytes(), self.document.as_bytes()] {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.chunk.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }
}

/// A root of the key tree: the node's master key, or a collection's key (every node holding a
/// replica of the collection has the same one). Zeroized on drop; never printed.
pub struct MasterKey {
    prk: hkdf::Prk,
    // Kept only so it can be zeroized; ring's Prk holds its own copy inside an HMAC key.
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// An HKDF output length, for ring's `expand`.
pub(crate) struct Len(pub usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&bytes[..]);
        MasterKey { prk, bytes }
    }

    pub fn generate() -> Result<Self, CryptoError> {
        let mut b = random_bytes::<32>()?;
        let key = MasterKey::from_bytes(b);
        b.zeroize();
        Ok(key)
    }

    /// Reads the key file, or creates it (mode 0600) when absent. Refuses a key file that other
    /// users can read. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), CryptoError> {
        let err = |reason: String| CryptoError::KeyFile { path: path.display().to_string(), reason };
        if path.exists() {
            private_file_mode(path).map_err(err)?;
            let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(e.to_string()))?);
            if bytes.len() != 32 {
                let n = bytes.len();
                bytes.zeroize();
                return Err(err(format!("expected 32 bytes, found {n}: the file is damaged")));
            }
            let mut arr = [0u8; 32];
            arr.copy_from_slice(&bytes);
            let key = MasterKey::from_bytes(arr);
            arr.zeroize();
            Ok((key, false))
        } else {
            let key = MasterKey::generate()?;
            write_private_file(path, &key.bytes[..]).map_err(|e| err(e.to_string()))?;
            Ok((key, true))
        }
    }

    /// The raw key, for wrapping it to a peer (HPKE) or sealing it under another key.
    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// A second handle on the same key.
    pub(crate) fn duplicate(&self) -> Self {
        MasterKey::from_bytes(*self.bytes)
    }

    /// Derives the 32-byte key for `ctx`.
    pub fn derive(&self, ctx: &KeyContext<'_>) -> DataKey {
        let info = ctx.encode();
        let mut out = Zeroizing::new([0u8; 32]);
        // expand/fill fail only for an output longer than 255 × 32 bytes; 32 never is.
        if let Ok(okm) = self.prk.expand(&[&info], Len(32)) {
            let _ = okm.fill(&mut out[..]);
        }
        DataKey { key: out, aad: info }
    }
}

/// A derived key and the AAD it seals with.
pub struct DataKey {
    key: Zeroizing<[u8; 32]>,
    aad: Vec<u8>,
}

impl DataKey {
    fn aead(&self) -> Result<LessSafeKey, CryptoError> {
        UnboundKey::new(&AES_256_GCM, &self.key[..]).map(LessSafeKey::new).map_err(|_| CryptoError::Integrity)
    }

    /// `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(NONCE_LEN);
        self.aead()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&self.aad), &mut body)
            .map_err(|_| CryptoError::Integrity)?;
        // `body` held the plaintext only until it was encrypted in place: it is ciphertext now,
        // nothing to wipe.
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`DataKey::seal`] produced. The plaintext is zeroized when dropped.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Integrity);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let mut body = Zeroizing::new(sealed[NONCE_LEN..].to_vec());
        let len = self
            .aead()?
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&self.aad), &mut body)
            .map_err(|_| CryptoError::Integrity)?
            .len();
        body.truncate(len);
        Ok(body)
    }

    /// Opens `sealed` into `buf`, a buffer reused across many calls: whatever of an earlier
    /// plaintext the new one does not overwrite is wiped first, so the caller wipes `buf` once at
    /// the end instead of once per message. Returns the plaintext's length.
    pub fn open_into(&self, sealed: &[u8], buf: &mut Vec<u8>) -> Result<usize, CryptoError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Integrity);
        }
        let body = &sealed[NONCE_LEN..];
        if buf.len() > body.len() {
            buf[body.len()..].zeroize();
        }
        buf.clear();
        buf.extend_from_slice(body);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        self.aead()?
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&self.aad), &mut buf[..])
            .map(|p| p.len())
            .map_err(|_| CryptoError::Integrity)
    }

    /// HMAC-SHA256 under this key (for keyed ids and content fingerprints).
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key[..]);
        let tag = ring::hmac::sign(&key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The HMAC-SHA256 key, prepared once for many MACs (keyed term ids).
    pub(crate) fn hmac_key(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key[..])
    }

    /// The raw key bytes, for seeding derived secrets (e.g. the remote-index rotation).
    pub fn expose(&self) -> &[u8; 32] {
        &self.key
    }
}

/// `N` random bytes from the system generator: keys, nonces, randomness of ledger entries.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut raw = [0u8; N];
    SystemRandom::new().fill(&mut raw).map_err(|_| CryptoError::Random)?;
    Ok(raw)
}

/// `N` random bytes from the system generator, as hex: ids, nonces, temporary names.
pub fn random_hex<const N: usize>() -> Result<String, CryptoError> {
    Ok(hex::encode(random_bytes::<N>()?))
}

/// Refuses a file that group or others may read or write (like ssh does for private keys).
pub fn check_private_file(path: &Path) -> Result<(), crate::error::Error> {
    private_file_mode(path).map_err(|reason| crate::error::Error::config(format!("{}: {reason}", path.display())))
}

fn private_file_mode(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("permissions {:o} are too open; run `chmod 600 {}`", mode & 0o777, path.display()));
    }
    Ok(())
}

impl From<CryptoError> for crate::error::Error {
    fn from(e: CryptoError) -> Self {
        match &e {
            CryptoError::KeyFile { .. } => crate::error::Error::config(e.to_string()),
            _ => crate::error::Error::internal("a cryptographic operation failed", e),
        }
    }
}

/// Creates `path` with mode 0600 (never wider, even briefly) and writes `bytes`, durably.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(purpose: Purpose, chunk: u32) -> KeyContext<'static> {
        KeyContext::new(purpose, "col", "doc", chunk, 1)
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let m = MasterKey::from_bytes([9; 32]);
        let k = m.derive(&ctx(Purpose::ChunkText, 3));
        let sealed = k.seal(b"patient: Jane Roe").expect("seal");
        assert!(!sealed.windows(4).any(|w| w == b"Jane"));
        assert_eq!(&k.open(&sealed).expect("open")[..], b"patient: Jane Roe");
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(matches!(k.open(&t), Err(CryptoError::Integrity)), "flip at {i} not detected");
        }
        assert!(k.open(&sealed[..sealed.len() - 1]).is_err());
        assert!(k.open(&[]).is_err());
    }

    #[test]
    fn open_into_reuses_a_buffer_and_leaves_no_old_plaintext() {
        let k = MasterKey::from_bytes([4; 32]).derive(&ctx(Purpose::ChunkText, 0));
        let long = k.seal(b"a much longer secret message").expect("seal");
        let short = k.seal(b"short").expect("seal");
        let mut buf = Vec::new();
        assert_eq!(k.open_into(&long, &mut buf).expect("open"), 28);
        assert_eq!(&buf[..28], b"a much longer secret message");
        assert_eq!(k.open_into(&short, &mut buf).expect("open"), 5);
        assert_eq!(&buf[..5], b"short");
        assert!(!buf.windows(6).any(|w| w == b"secret"), "old plaintext left in the buffer");
        let mut bad = short.clone();
        bad[14] ^= 1;
        assert!(k.open_into(&bad, &mut buf).is_err());
        assert!(k.open_into(&short[..10], &mut buf).is_err());
    }

    #[test]
    fn keys_differ_by_every_context_field() {
        let m = MasterKey::from_bytes([1; 32]);
        let base = m.derive(&KeyContext::new(Purpose::ChunkText, "c", "d", 0, 1));
        let sealed = base.seal(b"x").expect("seal");
        for other in [
            KeyContext::new(Purpose::ChunkVector, "c", "d", 0, 1),
            KeyContext::new(Purpose::ChunkText, "c2", "d", 0, 1),
            KeyContext::new(Purpose::ChunkText, "c", "d2", 0, 1),
            KeyContext::new(Purpose::ChunkText, "c", "d", 1, 1),
            KeyContext::new(Purpose::ChunkText, "c", "d", 0, 2),
            // Field boundaries are unambiguous: "c"+"d" ≠ "cd"+"".
            KeyContext::new(Purpose::ChunkText, "cd", "", 0, 1),
        ] {
            let k = m.derive(&other);
            assert_ne!(k.expose(), base.expose());
            assert!(k.open(&sealed).is_err());
        }
        let other_master = MasterKey::from_bytes([2; 32]);
        assert!(other_master.derive(&KeyContext::new(Purpose::ChunkText, "c", "d", 0, 1)).open(&sealed).is_err());
    }

    #[test]
    fn key_file_is_0600_and_reloads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("master.key");
        let (k1, created) = MasterKey::load_or_create(&p).expect("create");
        assert!(created);
        assert_eq!(std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        let (k2, created) = MasterKey::load_or_create(&p).expect("load");
        assert!(!created);
        let c = ctx(Purpose::Mac, 0);
        assert_eq!(k1.derive(&c).expose(), k2.derive(&c).expose());
        assert_eq!(format!("{k1:?}"), "MasterKey(..)");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = MasterKey::load_or_create(&p).expect_err("too open").to_string();
        assert!(e.contains("too open"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&p, b"short").expect("write");
        assert!(MasterKey::load_or_create(&p).expect_err("damaged").to_string().contains("damaged"));
    }
}

//! Sealing and opening requests and answers of the owner's channel (format in `mod.rs`).
//! Pure: no I/O, the same code on the client and on the node.

use base64::Engine as _;
use hpke::aead::{AeadCtxR, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use prag_proto::api::ChannelHead;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use zeroize::Zeroizing;

use crate::crypto::Len;
use crate::identity::{HpkePrivateKey, HpkePublicKey};

/// The request header that carries `base64(enc ‖ sealed head)`.
pub const HEADER_CHANNEL: &str = "x-prag-channel";
/// Largest head accepted, in bytes of JSON (a signed head is about 600).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// AES-GCM tag bytes added to a sealed body.
pub const TAG_LEN: usize = 16;
const ENC_LEN: usize = 32;
const RESPONSE_NONCE_LEN: usize = 32;
const AAD_HEAD: &[u8] = b"PRAG-CHANNEL-V1 head";
const AAD_BODY: &[u8] = b"PRAG-CHANNEL-V1 body";
const AAD_RESPONSE: &[u8] = b"PRAG-CHANNEL-V1 response";
const EXPORT_RESPONSE: &[u8] = b"PRAG-CHANNEL-V1 response";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error("the channel header is malformed: {0}")]
    Malformed(String),
    #[error("the sealed request does not open with this node's channel key")]
    NotForThisNode,
    #[error("the sealed body does not open (altered, cut short, or sealed for another request)")]
    Body,
    #[error("the sealed answer does not open (altered, or not the answer to this request)")]
    Answer,
    #[error("the system random number generator failed")]
    Random,
}

fn info(node_id: &str) -> Vec<u8> {
    format!("PRAG-CHANNEL-V1\n{node_id}").into_bytes()
}

/// What seals (node) and opens (client) the answer to one request: exported from the request's
/// HPKE context, so only its two ends know it.
pub struct ResponseKey {
    secret: Zeroizing<[u8; 32]>,
    enc: [u8; ENC_LEN],
}

impl std::fmt::Debug for ResponseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseKey(..)")
    }
}

impl ResponseKey {
    /// The AEAD key and nonce for an answer with `response_nonce`.
    fn aead(&self, response_nonce: &[u8]) -> Result<(LessSafeKey, [u8; NONCE_LEN]), ChannelError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &[&self.enc[..], response_nonce].concat());
        let prk = salt.extract(&self.secret[..]);
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; NONCE_LEN];
        prk.expand(&[b"key"], Len(32))
            .and_then(|okm| okm.fill(&mut key[..]))
            .and_then(|_| prk.expand(&[b"nonce"], Len(NONCE_LEN)))
            .and_then(|okm| okm.fill(&mut nonce))
            .map_err(|_| ChannelError::Answer)?;
        let key = UnboundKey::new(&AES_256_GCM, &key[..]).map_err(|_| ChannelError::Answer)?;
        Ok((LessSafeKey::new(key), nonce))
    }
}

/// A request sealed by a client: the channel header's value, the sealed body, and the key that
/// opens the answer.
pub struct SealedRequest {
    pub header: String,
    pub body: Vec<u8>,
    pub response_key: ResponseKey,
}

/// The client's side.
pub struct ClientRequest;

impl ClientRequest {
    /// Seals `head` and `body` (whose length `head.body_len` must give) to the node's channel key.
    pub fn seal(
        channel_key: &HpkePublicKey,
        node_id: &str,
        head: &ChannelHead,
        body: &[u8],
    ) -> Result<SealedRequest, ChannelError> {
        let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
        let (enc, mut ctx) = hpke::setup_sender::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
            &OpModeS::Base,
            channel_key,
            &info(node_id),
            &mut rng,
        )
        .map_err(|e| ChannelError::Malformed(format!("HPKE: {e}")))?;
        let head_json = Zeroizing::new(serde_json::to_vec(head).map_err(|e| ChannelError::Malformed(e.to_string()))?);
        let sealed_head = ctx.seal(&head_json, AAD_HEAD).map_err(|e| ChannelError::Malformed(format!("HPKE: {e}")))?;
        let mut sealed_body = Vec::with_capacity(body.len() + TAG_LEN);
        sealed_body.extend_from_slice(body);
        let tag = ctx
            .seal_in_place_detached(&mut sealed_body, AAD_BODY)
            .map_err(|e| ChannelError::Malformed(format!("HPKE: {e}")))?;
        sealed_body.extend_from_slice(&tag.to_bytes());
        let enc_bytes: [u8; ENC_LEN] =
            enc.to_bytes().as_slice().try_into().map_err(|_| ChannelError::Malformed("enc length".into()))?;
        let mut secret = Zeroizing::new([0u8; 32]);
        ctx.export(EXPORT_RESPONSE, &mut secret[..]).map_err(|e| ChannelError::Malformed(format!("HPKE: {e}")))?;
        let mut header = enc_bytes.to_vec();
        header.extend_from_slice(&sealed_head);
        Ok(SealedRequest {
            header: base64::engine::general_purpose::STANDARD.encode(header),
            body: sealed_body,
            response_key: ResponseKey { secret, enc: enc_bytes },
        })
    }
}

/// The node's side of one request: the opened head, the context that opens the body, and the key
/// that seals the answer.
pub struct NodeRequest {
    pub head: ChannelHead,
    pub response_key: ResponseKey,
    body: BodyOpener,
}

/// Opens the body of one request, once.
pub struct BodyOpener {
    ctx: AeadCtxR<AesGcm256, HkdfSha256, X25519HkdfSha256>,
    len: u64,
}

impl NodeRequest {
    /// Opens the channel header's value with the node's channel key.
    pub fn open(header: &str, private: &HpkePrivateKey, node_id: &str) -> Result<NodeRequest, ChannelError> {
        // base64 of enc + head + tag: refuse anything longer before decoding it.
        if header.len() > (ENC_LEN + MAX_HEAD_BYTES + TAG_LEN) * 4 / 3 + 4 {
            return Err(ChannelError::Malformed(format!("the head is longer than {MAX_HEAD_BYTES} bytes")));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(header.trim())
            .map_err(|_| ChannelError::Malformed("not base64".into()))?;
        if raw.len() < ENC_LEN + TAG_LEN {
            return Err(ChannelError::Malformed("too short".into()));
        }
        let enc_bytes: [u8; ENC_LEN] =
            raw[..ENC_LEN].try_into().map_err(|_| ChannelError::Malformed("enc length".into()))?;
        let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&enc_bytes)
            .map_err(|_| ChannelError::Malformed("bad encapsulated key".into()))?;
        let mut ctx = hpke::setup_receiver::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            private,
            &enc,
            &info(node_id),
        )
        .map_err(|_| ChannelError::NotForThisNode)?;
        let head_json = Zeroizing::new(ctx.open(&raw[ENC_LEN..], AAD_HEAD).map_err(|_| ChannelError::NotForThisNode)?);
        let head: ChannelHead =
            serde_json::from_slice(&head_json).map_err(|e| ChannelError::Malformed(format!("head: {e}")))?;
        let mut secret = Zeroizing::new([0u8; 32]);
        ctx.export(EXPORT_RESPONSE, &mut secret[..]).map_err(|_| ChannelError::NotForThisNode)?;
        let len = head.body_len;
        Ok(NodeRequest { head, response_key: ResponseKey { secret, enc: enc_bytes }, body: BodyOpener { ctx, len } })
    }

    /// Splits into the head, the body opener and the answer's key.
    pub fn into_parts(self) -> (ChannelHead, BodyOpener, ResponseKey) {
        (self.head, self.body, self.response_key)
    }
}

impl BodyOpener {
    /// Bytes of the body, as the head declares.
    pub fn body_len(&self) -> u64 {
        self.len
    }

    /// Bytes the sealed body must have.
    pub fn sealed_len(&self) -> u64 {
        self.len.saturating_add(TAG_LEN as u64)
    }

    /// Opens the sealed body in place; it must be exactly [`sealed_len`](Self::sealed_len) bytes.
    pub fn open(mut self, mut sealed: Vec<u8>) -> Result<Vec<u8>, ChannelError> {
        if sealed.len() as u64 != self.sealed_len() {
            return Err(ChannelError::Body);
        }
        let split = sealed.len() - TAG_LEN;
        let tag = hpke::aead::AeadTag::<AesGcm256>::from_bytes(&sealed[split..]).map_err(|_| ChannelError::Body)?;
        sealed.truncate(split);
        self.ctx.open_in_place_detached(&mut sealed, AAD_BODY, &tag).map_err(|_| {
            zeroize::Zeroize::zeroize(&mut sealed);
            ChannelError::Body
        })?;
        Ok(sealed)
    }
}

/// Seals the answer to a request: `response nonce ‖ AES-GCM(status ‖ body)`.
pub fn seal_response(key: &ResponseKey, status: u16, body: &[u8]) -> Result<Vec<u8>, ChannelError> {
    let response_nonce = crate::crypto::random_bytes::<RESPONSE_NONCE_LEN>().map_err(|_| ChannelError::Random)?;
    let (aead, nonce) = key.aead(&response_nonce)?;
    let mut buf = Vec::with_capacity(RESPONSE_NONCE_LEN + 2 + body.len() + TAG_LEN);
    buf.extend_from_slice(&status.to_be_bytes());
    buf.extend_from_slice(body);
    aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD_RESPONSE), &mut buf)
        .map_err(|_| ChannelError::Answer)?;
    let mut out = response_nonce.to_vec();
    out.append(&mut buf);
    Ok(out)
}

/// Opens an answer sealed by [`seal_response`]: (status, body).
pub fn open_response(key: &ResponseKey, sealed: &[u8]) -> Result<(u16, Zeroizing<Vec<u8>>), ChannelError> {
    if sealed.len() < RESPONSE_NONCE_LEN + 2 + TAG_LEN {
        return Err(ChannelError::Answer);
    }
    let (response_nonce, ct) = sealed.split_at(RESPONSE_NONCE_LEN);
    let (aead, nonce) = key.aead(response_nonce)?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let plain = aead
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(AAD_RESPONSE), &mut buf[..])
        .map_err(|_| ChannelError::Answer)?;
    let status = u16::from_be_bytes([plain[0], plain[1]]);
    Ok((status, Zeroizing::new(plain[2..].to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelKeys;
    use crate::crypto::MasterKey;

    fn head(len: usize) -> ChannelHead {
        let key = k256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
        ChannelHead {
            method: "POST".into(),
            path: "/v1/collections/clinic/query".into(),
            content_type: Some("application/json".into()),
            body_len: len as u64,
            auth: prag_proto::auth::sign_request(&key, "POST", "/x", b"{}", 1, "0123456789abcdef", "n"),
        }
    }

    #[test]
    fn a_request_and_its_answer_round_trip_and_nothing_is_in_clear() {
        let node = ChannelKeys::derive(&MasterKey::from_bytes([1; 32]));
        let body = b"{\"text\":\"Ottoline takes ziprasidone\"}";
        let sealed = ClientRequest::seal(node.public(), "node-a", &head(body.len()), body).unwrap();
        assert!(!String::from_utf8_lossy(&sealed.body).contains("Ottoline"));
        let raw = base64::engine::general_purpose::STANDARD.decode(&sealed.header).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("clinic"), "the path is sealed");

        let opened = NodeRequest::open(&sealed.header, node.private(), "node-a").unwrap();
        let (h, opener, key) = opened.into_parts();
        assert_eq!(h, head(body.len()));
        assert_eq!(opener.open(sealed.body.clone()).unwrap(), body);

        let answer = seal_response(&key, 200, b"{\"hits\":[\"secret text\"]}").unwrap();
        assert!(!String::from_utf8_lossy(&answer).contains("secret"));
        let (status, plain) = open_response(&sealed.response_key, &answer).unwrap();
        assert_eq!((status, plain.as_slice()), (200, &b"{\"hits\":[\"secret text\"]}"[..]));
    }

    #[test]
    fn another_node_another_audience_or_a_changed_byte_does_not_open() {
        let node = ChannelKeys::derive(&MasterKey::from_bytes([1; 32]));
        let other = ChannelKeys::derive(&MasterKey::from_bytes([2; 32]));
        let sealed = ClientRequest::seal(node.public(), "node-a", &head(3), b"abc").unwrap();
        assert_eq!(
            NodeRequest::open(&sealed.header, other.private(), "node-a").err(),
            Some(ChannelError::NotForThisNode)
        );
        assert_eq!(
            NodeRequest::open(&sealed.header, node.private(), "node-b").err(),
            Some(ChannelError::NotForThisNode)
        );

        let (_, opener, key) = NodeRequest::open(&sealed.header, node.private(), "node-a").unwrap().into_parts();
        let mut body = sealed.body.clone();
        body[1] ^= 1;
        assert_eq!(opener.open(body).err(), Some(ChannelError::Body));
        let (_, opener, _) = NodeRequest::open(&sealed.header, node.private(), "node-a").unwrap().into_parts();
        assert_eq!(opener.open(sealed.body[..sealed.body.len() - 1].to_vec()).err(), Some(ChannelError::Body));

        // An answer sealed for one request does not open with another's key.
        let second = ClientRequest::seal(node.public(), "node-a", &head(3), b"abc").unwrap();
        let answer = seal_response(&key, 200, b"x").unwrap();
        assert_eq!(open_response(&second.response_key, &answer).err(), Some(ChannelError::Answer));
        let mut tampered = answer.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(open_response(&sealed.response_key, &tampered).err(), Some(ChannelError::Answer));
        assert!(NodeRequest::open("not base64!", node.private(), "node-a").is_err());
        assert!(NodeRequest::open(&"A".repeat(20_000), node.private(), "node-a").is_err());
    }
}

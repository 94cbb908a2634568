//! Requests built by hand on the owner's channel (to replay, re-spell or age them), and a
//! collection filled in one call.

use prag_node::NodeClient;

/// A request on the owner's channel with full control over what is signed: `timestamp`, `nonce`,
/// and `tweak`, which may change the head (its signature headers included) after signing and
/// before sealing. The sealed request is returned so a test can send it again, byte for byte.
pub fn sealed_request(
    client: &NodeClient,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
    tweak: impl FnOnce(&mut prag_proto::api::ChannelHead),
) -> prag_node::channel::SealedRequest {
    let rt = crate::rt();
    let node = rt.block_on(client.node()).expect("verified node");
    sealed_for(node, client.key(), method, path, body, timestamp, nonce, tweak)
}

/// [`sealed_request`] for a node already verified (no runtime needed: for async tests).
#[allow(clippy::too_many_arguments)]
pub fn sealed_for(
    node: &prag_node::VerifiedNode,
    key: &k256::ecdsa::SigningKey,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
    tweak: impl FnOnce(&mut prag_proto::api::ChannelHead),
) -> prag_node::channel::SealedRequest {
    let auth = prag_proto::auth::sign_request(key, method, path, body, timestamp, nonce, &node.node_id);
    let mut head = prag_proto::api::ChannelHead {
        method: method.into(),
        path: path.into(),
        content_type: Some("application/json".into()),
        body_len: body.len() as u64,
        auth,
    };
    tweak(&mut head);
    prag_node::channel::ClientRequest::seal(&node.channel_key, &node.node_id, &head, body).expect("seal")
}

/// Sends a sealed request; (status, error code or "", body).
pub fn send_sealed(client: &NodeClient, sealed: &prag_node::channel::SealedRequest) -> prag_node::client::Answer {
    crate::rt().block_on(client.send_sealed(sealed)).expect("send")
}

/// Creates collection `name` with `client`'s key as owner, and uploads `docs` (path, text) into it.
pub fn collection_with(client: &NodeClient, name: &str, docs: &[(&str, &str)]) {
    let rt = crate::rt();
    let _: serde_json::Value = rt
        .block_on(client.post("/v1/collections", &prag_proto::api::CreateCollectionRequest { name: name.into() }))
        .expect("create");
    for (path, text) in docs {
        rt.block_on(client.upload(name, path, text.as_bytes())).expect("upload");
    }
}

//! A client for the node the command names (`--node`, `--key`, `--node-policy`,
//! `--allow-dev-node`), and the runtime commands run it on.

use prag_node::NodeClient;
use prag_node::attest::Policy;
use prag_node::channel::NodeTrust;

use crate::args::ClientArgs;

/// A multi-threaded tokio runtime for commands that need one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// What the node must prove before it is sent anything.
pub fn trust(args: &ClientArgs) -> anyhow::Result<NodeTrust> {
    let policy = match &args.node_policy {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--node-policy {}: {e}", p.display()))?;
            Policy::from_toml(&text).map_err(|e| anyhow::anyhow!("--node-policy {}: {e}", p.display()))?
        }
        None => Policy::default(),
    };
    Ok(NodeTrust { policy, allow_dev: args.allow_dev_node })
}

/// The signing key (`--key`), loaded.
pub fn key(args: &ClientArgs) -> anyhow::Result<k256::ecdsa::SigningKey> {
    let path = args.key.as_ref().ok_or_else(|| anyhow::anyhow!("no key: pass --key FILE or set PRAG_KEY"))?;
    Ok(prag_node::account::load(path)?)
}

/// A client of the node, signing with `--key`.
pub fn client(args: &ClientArgs) -> anyhow::Result<NodeClient> {
    Ok(NodeClient::new(&args.node, key(args)?, trust(args)?)?)
}

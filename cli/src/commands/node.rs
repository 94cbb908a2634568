//! `prag node`: run a storage node until interrupted.

use anyhow::Context;

use crate::args::NodeArgs;
use crate::connect::runtime;

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let config = crate::config::node_config(&args)?;
    let embedder = crate::config::embedder(&args.model, false)?;
    let admin_key = args.admin_key.as_deref().map(prag_node::account::load).transpose()?;
    runtime()?.block_on(async move {
        let node = prag_node::Node::open(config, embedder, admin_key.as_ref()).await.context("cannot open the node")?;
        prag_node::api::server::run(node, shutdown_signal()).await?;
        tracing::info!("node stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

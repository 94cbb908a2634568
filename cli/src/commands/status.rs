//! `prag status`: with `--key` (an operator's), the detailed status over the owner's channel;
//! without, what the node tells anyone.

use prag_proto::api::{NodeStatus, PublicStatus};

use crate::args::StatusArgs;
use crate::connect::{client, runtime};

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    if args.client.key.is_some() {
        let status: NodeStatus = rt.block_on(client(&args.client)?.get("/v1/status"))?;
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let url = format!("{}/v1/status", args.client.node.trim_end_matches('/'));
    let status: PublicStatus = rt.block_on(async {
        let resp = reqwest::get(&url).await.map_err(|e| anyhow::anyhow!("cannot reach the node at {url}: {e}"))?;
        resp.json::<PublicStatus>().await.map_err(|e| anyhow::anyhow!("unexpected answer from {url}: {e}"))
    })?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

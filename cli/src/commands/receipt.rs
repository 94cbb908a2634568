//! `prag receipt verify`: a stack-paid answer's receipt checked offline (format, leaf, the
//! node's signature, the answer it came with), then, with `--node`, against the market: the
//! signer is the registered key of the node the receipt names, and once the stack settled, the
//! answer's leaf is included in the root whose proof the node committed.

use anyhow::{Context, bail};
use prag_proto::api::WorkerAnswer;
use prag_proto::verifiable::{InclusionProof, Receipt};
use serde_json::{Value, json};

use super::worker::Session;
use crate::args::{ClientArgs, ReceiptCommand};

pub fn run(cmd: ReceiptCommand) -> anyhow::Result<()> {
    let ReceiptCommand::Verify { receipt, answer, node_key, node, json } = cmd;
    let text = std::fs::read(&receipt).with_context(|| format!("cannot read {}", receipt.display()))?;
    let r: Receipt =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a receipt", receipt.display()))?;
    let mut checked = vec!["format, leaf and signature"];
    let fail = |why: String| -> anyhow::Result<()> { bail!("receipt {} does not verify: {why}", receipt.display()) };
    if let Err(e) = r.verify(node_key.as_deref()) {
        return fail(e.to_string());
    }
    if node_key.is_some() {
        checked.push("signed by the given node key");
    }
    if let Some(path) = &answer {
        let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let a: WorkerAnswer =
            serde_json::from_slice(&text).with_context(|| format!("{} is not a worker answer", path.display()))?;
        if let Err(e) = r.check_answer(&a.hits) {
            return fail(e.to_string());
        }
        checked.push("it is this answer's");
    }
    let mut settled = Value::Null;
    if let Some(url) = node {
        let args = ClientArgs { node: url, key: None, node_policy: None, allow_dev_node: true };
        let s = Session::maybe_signed(&args, json)?;
        let n = s.query(json!({"get_node": {"node_small_id": r.node}})).context("the receipt's node")?;
        let registered = n["public_key"].as_str().unwrap_or_default().to_string();
        if let Err(e) = r.verify(Some(&registered)) {
            return fail(format!("node {}: {e}", r.node));
        }
        checked.push("signed by the node's registered key");
        let st = s.query(json!({"get_stack": {"stack_small_id": r.stack}})).context("the receipt's stack")?;
        if st["stack"]["selected_node_id"].as_u64() != Some(r.node) {
            return fail(format!("stack {} went to node {}, not {}", r.stack, st["stack"]["selected_node_id"], r.node));
        }
        if let Some(proof) = st["ticket"]["committed_stack_proof"].as_str() {
            let k = st["stack"]["cross_validation_extra_nodes_count"].as_u64().unwrap_or(0).min(255) as u8;
            let p: InclusionProof =
                s.rt.block_on(s.client.public::<(), _>(
                    "GET",
                    &format!("/v1/market/stacks/{}/proof/{}", r.stack, r.index),
                    None,
                ))
                .context("the inclusion proof")?;
            if let Err(e) = p.check(&r.leaf_bytes()?, k, proof) {
                return fail(e.to_string());
            }
            checked.push("included in the stack's committed root");
            settled = json!({"requests": p.requests, "units": p.units, "root": p.root});
        }
    }
    if json {
        return crate::output::json(&json!({"valid": true, "stack": r.stack, "index": r.index, "node": r.node,
            "units": r.units, "checked": checked, "settled": settled}));
    }
    println!("receipt valid: stack {} answer {} by node {}, {} units", r.stack, r.index, r.node, r.units);
    for c in checked {
        println!("  ✓ {c}");
    }
    Ok(())
}

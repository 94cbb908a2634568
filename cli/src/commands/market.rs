//! `prag market …`: the compute market's messages and queries, signed by `--key`.
//!
//! Refusals come back from the orderer naming Atoma's error and its number, e.g.
//! `ENoNodesEligibleForTask (312012022): …`.

use anyhow::{Context, bail};
use prag_node::Receipt;
use prag_proto::contracts::market::commitment::{self, parse32};
use prag_proto::contracts::market::{role, security};
use serde_json::{Value, json};

use super::worker::{Session, parse_json_arg};
use crate::args::{MarketArgs, MarketCommand, MarketNodeCommand, StackCommand, TaskCommand};

fn root_arg(text: &str) -> anyhow::Result<[u8; 32]> {
    parse32(text.trim()).with_context(|| format!("--root {text:?} is not 32 bytes of hex"))
}

impl Session {
    fn address(&self) -> String {
        prag_node::account::address(&self.key)
    }

    fn public_key(&self) -> String {
        prag_proto::account::public_key_hex(self.key.verifying_key())
    }

    /// Prints a committed market transaction: one line per event, or the receipt as JSON.
    fn report_events(&self, what: &str, r: &Receipt) -> anyhow::Result<()> {
        if self.json {
            return crate::output::json(r);
        }
        println!("{what}: committed at ledger height {}", r.height);
        let events = r.answer.as_ref().and_then(|a| a.get("events")).and_then(Value::as_array);
        for e in events.into_iter().flatten() {
            let mut fields = e.clone();
            let kind = fields.get("type").and_then(Value::as_str).unwrap_or("event").to_string();
            if let Some(m) = fields.as_object_mut() {
                m.remove("type");
            }
            println!("  {kind} {}", serde_json::to_string(&fields)?);
        }
        Ok(())
    }

    /// Sends a market message: signed by --key, or (with --via-node) by the node itself.
    fn send(&self, msg: Value) -> anyhow::Result<Receipt> {
        if !self.via_node {
            return self.exec(msg);
        }
        self.require_key()?;
        Ok(self.rt.block_on(self.client.post("/v1/operator/market", &json!({ "msg": msg })))?)
    }

    /// The stack and its ticket, as `get_stack` answers.
    fn stack_info(&self, id: u64) -> anyhow::Result<Value> {
        self.query(json!({"get_stack": {"stack_small_id": id}}))
    }
}

pub fn run(args: MarketArgs) -> anyhow::Result<()> {
    if let MarketCommand::Commitment { leaves, extra_nodes } = &args.command {
        return commitment_offline(leaves, *extra_nodes, args.output.json);
    }
    let mut s = Session::maybe_signed(&args.client, args.output.json)?;
    s.via_node = args.via_node;
    match args.command {
        MarketCommand::Exec { msg } => {
            let r = s.send(parse_json_arg("MSG", &msg)?)?;
            s.report_events("transaction", &r)
        }
        MarketCommand::Query { query } => s.print(&s.query(parse_json_arg("QUERY", &query)?)?),
        MarketCommand::Balance { address } => {
            let address = match address {
                Some(a) => a,
                None => {
                    s.require_key()?;
                    s.address()
                }
            };
            let v = s.query(json!({"balance": {"address": address}}))?;
            if s.json {
                return s.print(&v);
            }
            println!(
                "{} {} {}",
                v["address"].as_str().unwrap_or(""),
                v["amount"].as_str().unwrap_or("0"),
                v["denom"].as_str().unwrap_or("")
            );
            Ok(())
        }
        MarketCommand::Transfer { to, amount } => {
            let r = s.send(json!({"transfer": {"to": to, "amount": amount.to_string()}}))?;
            s.report_events("transferred", &r)
        }
        MarketCommand::Mint { to, amount } => {
            let r = s.send(json!({"mint": {"to": to, "amount": amount.to_string()}}))?;
            s.report_events("minted", &r)
        }
        MarketCommand::Supply => s.print(&s.query(json!({"supply": {}}))?),
        MarketCommand::Params => s.print(&s.query(json!({"get_market_params": {}}))?),
        MarketCommand::Node(cmd) => node(&s, cmd),
        MarketCommand::Task(cmd) => task(&s, cmd),
        MarketCommand::Subscribe { task, price, update } => {
            let name = if update { "update_node_subscription" } else { "subscribe_node_to_task" };
            let r = s.send(json!({ name: {"task_small_id": task, "price_per_one_million_compute_units": price}}))?;
            s.report_events("subscribed", &r)
        }
        MarketCommand::Unsubscribe { task } => {
            let r = s.send(json!({"unsubscribe_node_from_task": {"task_small_id": task}}))?;
            s.report_events("unsubscribed", &r)
        }
        MarketCommand::Stack(cmd) => stack(&s, cmd),
        MarketCommand::Settle { stack, units, root } => {
            let root = root_arg(&root)?;
            let info = s.stack_info(stack)?;
            let k = info["stack"]["cross_validation_extra_nodes_count"].as_u64().unwrap_or(1);
            let k = u8::try_from(k).context("the stack's extra-nodes count does not fit a slot index")?;
            let r = s.send(json!({"try_settle_stack": {
                "stack_small_id": stack, "num_claimed_compute_units": units,
                "committed_stack_proof": hex::encode(commitment::stack_proof(&root, k)),
                "stack_merkle_leaf": hex::encode(commitment::slot(0, &root)),
            }}))?;
            s.report_events("settlement submitted", &r)
        }
        MarketCommand::Attest { stack, root } => attest(&s, stack, &root, false),
        MarketCommand::Dispute { stack, root } => attest(&s, stack, &root, true),
        MarketCommand::Resolve { stack, root } => {
            let root = root_arg(&root)?;
            let r = s.send(json!({"settle_dispute": {"stack_small_id": stack, "stack_root": hex::encode(root)}}))?;
            s.report_events("dispute resolved", &r)
        }
        MarketCommand::Claim { stacks, units } => {
            let msg = if units.is_empty() {
                json!({"claim_funds": {"settled_ticket_ids": stacks}})
            } else {
                if units.len() != stacks.len() {
                    bail!("give one --units per stack ({} stacks, {} counts)", stacks.len(), units.len());
                }
                json!({"claim_funds_for_stacks": {"stack_small_ids": stacks, "num_compute_units_per_stack_to_claim": units}})
            };
            let r = s.send(msg)?;
            s.report_events("claimed", &r)
        }
        MarketCommand::Commitment { leaves, extra_nodes } => commitment_offline(&leaves, extra_nodes, s.json),
    }
}

/// An attester's commitment for the root it recomputed: an attestation, or a dispute.
fn attest(s: &Session, stack: u64, root: &str, dispute: bool) -> anyhow::Result<()> {
    s.require_key()?;
    let root = root_arg(root)?;
    let info = s.stack_info(stack)?;
    let ticket = &info["ticket"];
    if ticket.is_null() {
        bail!("stack {stack} has no settlement ticket yet");
    }
    let requested: Vec<u64> = serde_json::from_value(ticket["requested_attestation_nodes"].clone())?;
    let me = s.query(json!({"get_node_by_key": {"public_key": s.public_key()}}))?;
    let my_id = me["node_small_id"].as_u64().context("the --key is not a market node")?;
    let index = requested.iter().position(|n| *n == my_id).with_context(|| {
        format!("node {my_id} is not a requested attester of stack {stack} (requested: {requested:?})")
    })?;
    let k = u8::try_from(requested.len()).context("too many attesters")?;
    let proof = hex::encode(commitment::stack_proof(&root, k));
    let msg = if dispute {
        json!({"start_attestation_dispute": {"stack_small_id": stack, "attestation_commitment": proof}})
    } else {
        let slot = u8::try_from(index + 1).context("slot index")?;
        json!({"submit_stack_settlement_attestation": {"stack_small_id": stack,
            "committed_stack_proof": proof, "stack_merkle_leaf": hex::encode(commitment::slot(slot, &root))}})
    };
    let r = s.send(msg)?;
    s.report_events(if dispute { "dispute opened" } else { "attested" }, &r)
}

/// `prag market commitment --leaves FILE`: root, proof and slots of a request log.
pub fn commitment_offline(leaves: &std::path::Path, extra_nodes: u8, json_out: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(leaves).with_context(|| format!("cannot read {}", leaves.display()))?;
    let mut parsed = Vec::new();
    for (i, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        parsed.push(parse32(line).with_context(|| format!("line {}: not 32 bytes of hex", i + 1))?);
    }
    let root = commitment::merkle_root(&parsed).context("no leaves: a stack with no requests has no root")?;
    let slots: Vec<String> = (0..=extra_nodes).map(|i| hex::encode(commitment::slot(i, &root))).collect();
    let v = json!({
        "leaves": parsed.len(),
        "root": hex::encode(root),
        "committed_stack_proof": hex::encode(commitment::stack_proof(&root, extra_nodes)),
        "slots": slots,
    });
    println!("{}", if json_out { serde_json::to_string(&v)? } else { serde_json::to_string_pretty(&v)? });
    Ok(())
}

fn node(s: &Session, cmd: MarketNodeCommand) -> anyhow::Result<()> {
    match cmd {
        MarketNodeCommand::Register { collateral } => {
            let r = s.send(json!({"register_node": {"collateral": collateral.to_string()}}))?;
            s.report_events("market node registered", &r)
        }
        MarketNodeCommand::Show { id } => {
            let q = match id {
                Some(id) => json!({"get_node": {"node_small_id": id}}),
                None => {
                    s.require_key()?;
                    json!({"get_node_by_key": {"public_key": s.public_key()}})
                }
            };
            s.print(&s.query(q)?)
        }
        MarketNodeCommand::List => s.print(&s.query(json!({"get_nodes": {}}))?),
        MarketNodeCommand::Disable => {
            let r = s.send(json!({"permanently_disable_node": {}}))?;
            s.report_events("node disabled", &r)
        }
        MarketNodeCommand::Destroy => {
            let r = s.send(json!({"destroy_disabled_node": {}}))?;
            s.report_events("node destroyed", &r)
        }
        MarketNodeCommand::Withdraw => {
            let r = s.send(json!({"withdraw_fees": {}}))?;
            s.report_events("fees withdrawn", &r)
        }
    }
}

fn task(s: &Session, cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::Create { role: r, security: level, model, min_reputation, private } => {
            let role = role::parse(&r).with_context(|| format!("--role {r:?}: one of retrieval, embedding, chat-completion, vision, image-gen, text-to-speech, speech-to-text, fine-tuning, training, or 0-8"))?;
            let level = security::parse(&level).with_context(|| {
                format!("--security {level:?}: no-security, confidential-compute or sampling-consensus")
            })?;
            let mut fields = json!({"role": role, "security_level": level, "is_public": !private});
            if let Some(m) = model {
                fields["model_name"] = json!(m);
            }
            if let Some(m) = min_reputation {
                fields["minimum_reputation_score"] = json!(m);
            }
            let r = s.send(json!({ "create_task": fields }))?;
            s.report_events("task created", &r)
        }
        TaskCommand::List => s.print(&s.query(json!({"get_tasks": {}}))?),
        TaskCommand::Show { id } => s.print(&s.query(json!({"get_task": {"task_small_id": id}}))?),
        TaskCommand::Deprecate { id } => {
            let r = s.send(json!({"deprecate_task": {"task_small_id": id}}))?;
            s.report_events("task deprecated", &r)
        }
        TaskCommand::Remove { id } => {
            let r = s.send(json!({"remove_deprecated_task": {"task_small_id": id}}))?;
            s.report_events("task removed", &r)
        }
        TaskCommand::Whitelist { id, nodes } => {
            let r = s.send(json!({"whitelist_nodes_for_task": {"task_small_id": id, "nodes": nodes}}))?;
            s.report_events("nodes whitelisted", &r)
        }
        TaskCommand::AddOracle { id, node_id } => {
            let r = s.send(json!({"add_task_oracle": {"task_small_id": id, "node_small_id": node_id}}))?;
            s.report_events("oracle appointed", &r)
        }
    }
}

fn stack(s: &Session, cmd: StackCommand) -> anyhow::Result<()> {
    match cmd {
        StackCommand::Buy { task, units, price } => {
            let r = s.send(
                json!({"acquire_new_stack": {"task_small_id": task, "num_compute_units": units, "price": price}}),
            )?;
            s.report_events("stack bought", &r)
        }
        StackCommand::Show { id } => s.print(&s.stack_info(id)?),
        StackCommand::List { all } => {
            let q = if all {
                json!({"get_stacks": {}})
            } else {
                s.require_key()?;
                json!({"get_stacks": {"owner": s.address()}})
            };
            s.print(&s.query(q)?)
        }
        StackCommand::Settle { id } => {
            s.require_key()?;
            let r: Receipt = s.rt.block_on(s.client.post(&format!("/v1/market/stacks/{id}/settle"), &json!({})))?;
            s.report_events("settlement committed", &r)
        }
        StackCommand::Proof { id, index } => {
            let p: prag_proto::verifiable::InclusionProof =
                s.rt.block_on(s.client.public::<(), _>("GET", &format!("/v1/market/stacks/{id}/proof/{index}"), None))?;
            crate::output::json(&p)
        }
        StackCommand::Reclaim { id } => {
            let r = s.send(json!({"reclaim_stack": {"stack_small_id": id}}))?;
            s.report_events("stack reclaimed", &r)
        }
    }
}

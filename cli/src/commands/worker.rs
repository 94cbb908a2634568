//! `prag worker …`: a worker's own contract messages (signed by `--key`) and its retrieval for a
//! subscriber; and the session both `admin` and `worker` commands send through.

use anyhow::Context;
use k256::ecdsa::SigningKey;
use prag_node::{LedgerStatus, NodeClient, Receipt};
use prag_proto::ledger::SignedTx;
use serde_json::{Value, json};

use crate::args::{ClientArgs, WorkerArgs, WorkerCommand};
use crate::connect::runtime;

/// A signing key, a client of the node and a runtime, for one command.
pub struct Session {
    pub client: NodeClient,
    pub key: SigningKey,
    pub rt: tokio::runtime::Runtime,
    pub json: bool,
    /// Whether `key` is the user's `--key` (false: a throwaway key, for queries only).
    signer: bool,
    /// `prag market --via-node`: the node signs market messages, not --key.
    pub via_node: bool,
}

impl Session {
    pub fn new(args: &ClientArgs, json: bool) -> anyhow::Result<Self> {
        Self::with_key(args, json, crate::connect::key(args)?, true)
    }

    fn with_key(args: &ClientArgs, json: bool, key: SigningKey, signer: bool) -> anyhow::Result<Self> {
        let client = NodeClient::new(&args.node, key.clone(), crate::connect::trust(args)?)?;
        Ok(Session { client, key, rt: runtime()?, json, signer, via_node: false })
    }

    /// A session that may run without `--key`: queries are not signed, so a throwaway key stands
    /// in until something has to be signed, which then asks for `--key`.
    pub fn maybe_signed(args: &ClientArgs, json: bool) -> anyhow::Result<Self> {
        if args.key.is_some() {
            return Self::new(args, json);
        }
        let key = SigningKey::from_slice(&prag_node::crypto::random_bytes::<32>()?)
            .map_err(|e| anyhow::anyhow!("cannot make a throwaway key: {e}"))?;
        Self::with_key(args, json, key, false)
    }

    /// The `--key`, or why there is none.
    pub fn require_key(&self) -> anyhow::Result<()> {
        if self.signer { Ok(()) } else { anyhow::bail!("no key: pass --key FILE or set PRAG_KEY") }
    }

    /// Signs `msg` as a transaction and submits it.
    pub fn exec(&self, msg: Value) -> anyhow::Result<Receipt> {
        self.require_key()?;
        let nonce = prag_node::crypto::random_hex::<16>()?;
        let tx = SignedTx::sign(&self.key, &nonce, prag_node::unix_now(), msg)
            .map_err(|e| anyhow::anyhow!("cannot sign the transaction: {e}"))?;
        Ok(self.rt.block_on(self.client.public("POST", "/v1/ledger/tx", Some(&tx)))?)
    }

    pub fn query(&self, q: Value) -> anyhow::Result<Value> {
        Ok(self.rt.block_on(self.client.public("POST", "/v1/ledger/query", Some(&q)))?)
    }

    pub fn status(&self) -> anyhow::Result<LedgerStatus> {
        Ok(self.rt.block_on(self.client.public::<(), _>("GET", "/v1/ledger/status", None))?)
    }

    pub fn report_tx(&self, what: &str, r: &Receipt) -> anyhow::Result<()> {
        if self.json {
            return crate::output::json(r);
        }
        println!("{what}: committed at ledger height {} ({})", r.height, &r.hash[..16.min(r.hash.len())]);
        Ok(())
    }

    pub fn print(&self, v: &Value) -> anyhow::Result<()> {
        println!("{}", if self.json { serde_json::to_string(v)? } else { serde_json::to_string_pretty(v)? });
        Ok(())
    }
}

pub fn parse_json_arg(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))
}

pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let s = Session::new(&args.client, args.output.json)?;
    match args.command {
        WorkerCommand::Query { collection, for_subscriber, api_key, k, stack, receipt_out, answer_out, text } => {
            let q = prag_node::WorkerQuery {
                collection,
                text: text.join(" "),
                k,
                subscriber: for_subscriber,
                api_key,
                stack,
            };
            let answer = s.rt.block_on(async {
                let audience = s.client.node_id().await?;
                s.client.worker_query(&audience, &q).await
            })?;
            if let Some(path) = &answer_out {
                std::fs::write(path, serde_json::to_vec_pretty(&answer)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if let Some(path) = &receipt_out {
                let receipt = answer.receipt.as_ref().context("the node sent no receipt with a stack-paid answer")?;
                std::fs::write(path, serde_json::to_vec_pretty(receipt)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if s.json {
                return crate::output::json(&answer);
            }
            crate::output::hits(&answer.hits, &answer.unreadable);
            Ok(())
        }
        WorkerCommand::Usage => {
            let usage: Vec<prag_proto::api::WorkerUsage> = s.rt.block_on(s.client.get("/v1/worker/usage"))?;
            if s.json {
                return crate::output::json(&usage);
            }
            println!("{:<24} {:<68} {:>9} {:>9} {:>10}", "WORKER", "SUBSCRIBER", "REQUESTS", "CHUNKS", "TOKENS");
            for u in usage {
                println!("{:<24} {:<68} {:>9} {:>9} {:>10}", u.worker, u.subscriber, u.requests, u.chunks, u.tokens);
            }
            Ok(())
        }
        WorkerCommand::DevReport => {
            let key = prag_proto::account::public_key_hex(s.key.verifying_key());
            println!("{}", prag_node::attest::AttestationReport::development(&key));
            Ok(())
        }
        WorkerCommand::SetWallet { ip, wallet } => {
            let r = s.exec(json!({"set_worker_wallet": {"ip_address": ip, "payment_wallet": wallet}}))?;
            s.report_tx("wallet changed", &r)
        }
        WorkerCommand::SetAddress { ip, new_ip } => {
            let r = s.exec(json!({"set_worker_address": {"new_ip_address": new_ip, "old_ip_address": ip}}))?;
            s.report_tx("address changed", &r)
        }
        WorkerCommand::SetType { ip, worker_type } => {
            let r = s.exec(json!({"set_worker_type": {"ip_address": ip, "worker_type": worker_type}}))?;
            s.report_tx("type changed", &r)
        }
        WorkerCommand::Remove { ip } => {
            let r = s.exec(json!({"remove_worker": {"ip_address": ip}}))?;
            s.report_tx("worker removed", &r)
        }
        WorkerCommand::Liveliness { ip } => {
            let issued = s.exec(json!({"get_liveliness_challenge": {}}))?;
            let challenge = issued
                .answer
                .as_ref()
                .and_then(|a| a["challenge"].as_str())
                .ok_or_else(|| anyhow::anyhow!("the node issued no challenge"))?
                .to_string();
            use k256::ecdsa::signature::Signer;
            let sig: k256::ecdsa::Signature =
                s.key.sign(prag_proto::contracts::worker::liveliness_message(&ip, &challenge).as_bytes());
            let r = s.exec(json!({"report_liveliness": {
                "ip_address": ip, "challenge": challenge, "signature": hex::encode(sig.to_bytes())
            }}))?;
            s.report_tx("liveliness reported", &r)
        }
        WorkerCommand::ReportWork { ip, report_id, epoch, requests, input_tokens, output_tokens } => {
            let r = s.exec(json!({"report_work": {
                "ip_address": ip, "report_id": report_id, "epoch": epoch, "requests": requests,
                "input_tokens": input_tokens, "output_tokens": output_tokens
            }}))?;
            s.report_tx("work reported", &r)
        }
        WorkerCommand::Claim { epoch } => {
            let r = s.exec(json!({"claim": {"epoch": epoch}}))?;
            s.report_tx("share claimed", &r)
        }
        WorkerCommand::Share { epoch } => {
            let wallet = prag_node::account::address(&s.key);
            let v = s.query(json!({"share": {"epoch": epoch, "wallet": wallet}}))?;
            s.print(&v)
        }
    }
}

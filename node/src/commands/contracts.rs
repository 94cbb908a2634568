//! `prag admin …` and `prag worker …`: contract transactions and queries, signed by `--key`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use k256::ecdsa::SigningKey;
use prag_proto::contracts::permit::{self, PermitParams};
use prag_proto::ledger::SignedTx;
use serde_json::{Value, json};

use crate::cli::{NodeConn, runtime};
use crate::ledger::{LedgerStatus, Receipt};

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    pub conn: NodeConn,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Make a public key an active subscriber.
    RegisterSubscriber { public_key: String },
    /// Remove a subscriber.
    RemoveSubscriber { public_key: String },
    /// Hand the admin role (of all three contracts) to another account.
    SetAdmin {
        #[arg(long, conflicts_with = "address", required_unless_present = "address")]
        public_key: Option<String>,
        #[arg(long)]
        address: Option<String>,
    },
    /// Store an API key's hash. Without KEY, generates one ("sk-" + 72 characters) and prints it once.
    AddApiKey { api_key: Option<String> },
    /// Remove an API key's hash.
    RevokeApiKey { api_key: String },
    /// List the stored API key hashes (signs a SNIP-24 permit with --key).
    ListApiKeys,
    /// Register a worker (or a PRAG storage node, `--type prag-storage`).
    RegisterWorker {
        #[arg(long)]
        ip: String,
        /// The worker's payment wallet (secret1… address).
        #[arg(long)]
        wallet: String,
        #[arg(long = "type")]
        worker_type: String,
        /// File holding the attestation report (text: hex, base64 or JSON).
        #[arg(long, conflicts_with = "report_text", required_unless_present = "report_text")]
        report: Option<PathBuf>,
        #[arg(long)]
        report_text: Option<String>,
        /// Public key that signs the worker's requests and reports.
        #[arg(long)]
        signing_key: Option<String>,
    },
    /// Remove a worker.
    RemoveWorker { ip: String },
    /// Add funds to a rewards epoch.
    FundEpoch { epoch: u64, amount: u128 },
    /// Split a rewards epoch's funds by reported work.
    CloseEpoch { epoch: u64 },
    /// Send any execute message in the contracts' JSON shape.
    Exec {
        #[arg(long = "json", value_name = "MSG")]
        msg: String,
    },
    /// Send any query in the contracts' JSON shape.
    Query {
        #[arg(long = "json", value_name = "QUERY")]
        query: String,
    },
    /// Sign a SNIP-24 permit for this network's contracts with --key and print it.
    Permit {
        #[arg(long, default_value = "prag-admin")]
        name: String,
        #[arg(long = "permission", default_value = "owner")]
        permissions: Vec<String>,
    },
    /// Ledger height, admin and orderer.
    Status,
}

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub conn: NodeConn,
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: WorkerCommand,
}

#[derive(Subcommand, Debug)]
pub enum WorkerCommand {
    /// Change the worker's payment wallet (signed by the current wallet).
    SetWallet {
        #[arg(long)]
        ip: String,
        wallet: String,
    },
    /// Move the worker to a new address (signed by its wallet).
    SetAddress {
        #[arg(long)]
        ip: String,
        new_ip: String,
    },
    /// Change the worker's type (signed by its wallet).
    SetType {
        #[arg(long)]
        ip: String,
        worker_type: String,
    },
    /// Remove the worker (signed by its wallet).
    Remove {
        #[arg(long)]
        ip: String,
    },
    /// Retrieve from a collection for a subscriber (signed by the worker's registered key). The
    /// node checks the worker's attestation, liveliness, the subscriber and the owner's grant, and
    /// seals the answer to a fresh X25519 key that only this command holds.
    Query {
        #[arg(long, short)]
        collection: String,
        /// Public key (hex) of the subscriber the worker acts for.
        #[arg(long = "for", value_name = "SUBSCRIBER_PUBKEY")]
        for_subscriber: String,
        /// The subscriber's API key, when it authorises by key.
        #[arg(long, env = "PRAG_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        #[arg(short = 'k', long, default_value_t = 5)]
        k: usize,
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// What the node served this worker, per subscriber (requests, chunks, tokens): the numbers
    /// for `report-work`.
    Usage,
    /// Print a development attestation report binding this --key (for nodes in
    /// `--attestation dev` mode only; it proves nothing about hardware).
    DevReport,
    /// Ask for a liveliness challenge and answer it (signed by the worker's key).
    Liveliness {
        #[arg(long)]
        ip: String,
    },
    /// Report work done (signed by the worker's key), once per report id.
    ReportWork {
        #[arg(long)]
        ip: String,
        #[arg(long)]
        report_id: String,
        #[arg(long)]
        epoch: u64,
        #[arg(long, default_value_t = 1)]
        requests: u64,
        #[arg(long)]
        input_tokens: u64,
        #[arg(long)]
        output_tokens: u64,
    },
    /// Claim this wallet's share of a closed rewards epoch.
    Claim { epoch: u64 },
    /// This wallet's share of a rewards epoch.
    Share { epoch: u64 },
}

fn nonce() -> anyhow::Result<String> {
    Ok(crate::crypto::random_hex::<16>()?)
}

struct Session {
    client: crate::client::NodeClient,
    key: SigningKey,
    rt: tokio::runtime::Runtime,
    json: bool,
}

impl Session {
    fn new(conn: &NodeConn, json: bool) -> anyhow::Result<Self> {
        let path = conn.key.as_ref().ok_or_else(|| anyhow::anyhow!("no key: pass --key FILE or set PRAG_KEY"))?;
        let key = crate::account::load(path)?;
        Ok(Session { client: conn.client()?, key, rt: runtime()?, json })
    }

    fn exec(&self, msg: Value) -> anyhow::Result<Receipt> {
        let tx = SignedTx::sign(&self.key, &nonce()?, crate::auth::unix_now(), msg)
            .map_err(|e| anyhow::anyhow!("cannot sign the transaction: {e}"))?;
        self.rt.block_on(self.client.public("POST", "/v1/ledger/tx", Some(&tx)))
    }

    fn query(&self, q: Value) -> anyhow::Result<Value> {
        self.rt.block_on(self.client.public("POST", "/v1/ledger/query", Some(&q)))
    }

    fn status(&self) -> anyhow::Result<LedgerStatus> {
        self.rt.block_on(self.client.public::<(), _>("GET", "/v1/ledger/status", None))
    }

    fn report_tx(&self, what: &str, r: &Receipt) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!("{what}: committed at ledger height {} ({})", r.height, &r.hash[..16.min(r.hash.len())]);
        }
        Ok(())
    }

    fn print(&self, v: &Value) -> anyhow::Result<()> {
        println!("{}", if self.json { serde_json::to_string(v)? } else { serde_json::to_string_pretty(v)? });
        Ok(())
    }
}

fn parse_json_arg(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))
}

/// Generates an API key the way newer published contracts do: "sk-" and 72 random characters.
fn generate_api_key() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 72];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    // 248 is the largest multiple of 62 below 256; rejection keeps the characters uniform.
    let mut out = String::from("sk-");
    let mut pool = bytes.to_vec();
    while out.len() < 75 {
        if pool.is_empty() {
            let mut more = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut more)
                .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
            pool.extend_from_slice(&more);
        }
        let b = pool.remove(0);
        if b < 248 {
            out.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    Ok(out)
}

pub fn run_admin(args: AdminArgs) -> anyhow::Result<()> {
    let s = Session::new(&args.conn, args.json)?;
    match args.command {
        AdminCommand::RegisterSubscriber { public_key } => {
            let r = s.exec(json!({"register_subscriber": {"public_key": public_key}}))?;
            s.report_tx("subscriber registered", &r)
        }
        AdminCommand::RemoveSubscriber { public_key } => {
            let r = s.exec(json!({"remove_subscriber": {"public_key": public_key}}))?;
            s.report_tx("subscriber removed", &r)
        }
        AdminCommand::SetAdmin { public_key, address } => {
            let msg = match (public_key, address) {
                (Some(k), _) => json!({"set_admin": {"public_key": k}}),
                (None, Some(a)) => json!({"set_admin": {"public_address": a}}),
                (None, None) => bail!("give --public-key or --address"),
            };
            let r = s.exec(msg)?;
            s.report_tx("admin changed", &r)
        }
        AdminCommand::AddApiKey { api_key } => {
            let generated = api_key.is_none();
            let key = match api_key {
                Some(k) => k,
                None => generate_api_key()?,
            };
            let r = s.exec(json!({"add_api_key": {"api_key": key}}))?;
            if generated {
                // Shown once: only its hash is kept anywhere.
                if s.json {
                    println!("{}", json!({"api_key": key, "height": r.height, "hash": r.hash}));
                } else {
                    println!("API key (shown once, store it now): {key}");
                }
                Ok(())
            } else {
                s.report_tx("API key added (only its SHA-256 is stored)", &r)
            }
        }
        AdminCommand::RevokeApiKey { api_key } => {
            let r = s.exec(json!({"revoke_api_key": {"api_key": api_key}}))?;
            s.report_tx("API key revoked", &r)
        }
        AdminCommand::ListApiKeys => {
            let status = s.status()?;
            let permit = permit::sign(
                &s.key,
                PermitParams {
                    permit_name: format!("prag-list-keys-{}", nonce()?),
                    allowed_tokens: vec![status.contract_address],
                    chain_id: status.chain_id,
                    permissions: vec!["owner".into()],
                },
            );
            let v = s.query(json!({"api_keys_with_permit": {"permit": permit}}))?;
            s.print(&v)
        }
        AdminCommand::RegisterWorker { ip, wallet, worker_type, report, report_text, signing_key } => {
            let report = match (report, report_text) {
                (Some(p), _) => std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read attestation report {}", p.display()))?
                    .trim()
                    .to_string(),
                (None, Some(t)) => t,
                (None, None) => bail!("give --report FILE or --report-text TEXT"),
            };
            let mut fields = json!({"ip_address": ip, "payment_wallet": wallet, "attestation_report": report, "worker_type": worker_type});
            if let Some(k) = signing_key {
                fields["signing_key"] = json!(k);
            }
            let r = s.exec(json!({ "register_worker": fields }))?;
            s.report_tx("worker registered", &r)
        }
        AdminCommand::RemoveWorker { ip } => {
            let r = s.exec(json!({"remove_worker": {"ip_address": ip}}))?;
            s.report_tx("worker removed", &r)
        }
        AdminCommand::FundEpoch { epoch, amount } => {
            let r = s.exec(json!({"fund_epoch": {"epoch": epoch, "amount": amount.to_string()}}))?;
            s.report_tx("epoch funded", &r)
        }
        AdminCommand::CloseEpoch { epoch } => {
            let r = s.exec(json!({"close_epoch": {"epoch": epoch}}))?;
            s.report_tx("epoch closed", &r)
        }
        AdminCommand::Exec { msg } => {
            let r = s.exec(parse_json_arg("--json", &msg)?)?;
            s.report_tx("transaction", &r)
        }
        AdminCommand::Query { query } => {
            let v = s.query(parse_json_arg("--json", &query)?)?;
            s.print(&v)
        }
        AdminCommand::Permit { name, permissions } => {
            let status = s.status()?;
            let p = permit::sign(
                &s.key,
                PermitParams {
                    permit_name: name,
                    allowed_tokens: vec![status.contract_address],
                    chain_id: status.chain_id,
                    permissions,
                },
            );
            println!("{}", serde_json::to_string(&p)?);
            Ok(())
        }
        AdminCommand::Status => {
            let st = s.status()?;
            s.print(&serde_json::to_value(st)?)
        }
    }
}

pub fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let s = Session::new(&args.conn, args.json)?;
    match args.command {
        WorkerCommand::Query { collection, for_subscriber, api_key, k, text } => {
            let q =
                crate::client::WorkerQuery { collection, text: text.join(" "), k, subscriber: for_subscriber, api_key };
            let answer = s.rt.block_on(async {
                let audience = s.client.node_id().await?;
                s.client.worker_query(&audience, &q).await
            })?;
            if s.json {
                println!("{}", serde_json::to_string(&answer)?);
                return Ok(());
            }
            crate::commands::query::print_hits(&answer.hits, &answer.unreadable);
            Ok(())
        }
        WorkerCommand::Usage => {
            let usage: Vec<prag_proto::api::WorkerUsage> = s.rt.block_on(s.client.get("/v1/worker/usage"))?;
            if s.json {
                println!("{}", serde_json::to_string(&usage)?);
            } else {
                println!("{:<24} {:<68} {:>9} {:>9} {:>10}", "WORKER", "SUBSCRIBER", "REQUESTS", "CHUNKS", "TOKENS");
                for u in usage {
                    println!(
                        "{:<24} {:<68} {:>9} {:>9} {:>10}",
                        u.worker, u.subscriber, u.requests, u.chunks, u.tokens
                    );
                }
            }
            Ok(())
        }
        WorkerCommand::DevReport => {
            let key = prag_proto::account::public_key_hex(s.key.verifying_key());
            println!("{}", crate::attest::AttestationReport::development(&key));
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
            let wallet = crate::account::address(&s.key);
            let v = s.query(json!({"share": {"epoch": epoch, "wallet": wallet}}))?;
            s.print(&v)
        }
    }
}

//! `prag admin …`: contract transactions and queries of the contracts' admin, signed by `--key`.

use anyhow::{Context, bail};
use prag_proto::contracts::permit::{self, PermitParams};
use serde_json::{Value, json};

use super::worker::{Session, parse_json_arg};
use crate::args::{AdminArgs, AdminCommand};

/// Generates an API key the way newer published contracts do: "sk-" and 72 random characters.
fn generate_api_key() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 248 is the largest multiple of 62 below 256; rejection keeps the characters uniform.
    let mut out = String::from("sk-");
    while out.len() < 75 {
        for b in prag_node::crypto::random_bytes::<32>()? {
            if b < 248 && out.len() < 75 {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let s = Session::new(&args.client, args.output.json)?;
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
            if !generated {
                return s.report_tx("API key added (only its SHA-256 is stored)", &r);
            }
            // Shown once: only its hash is kept anywhere.
            if s.json {
                println!("{}", json!({"api_key": key, "height": r.height, "hash": r.hash}));
            } else {
                println!("API key (shown once, store it now): {key}");
            }
            Ok(())
        }
        AdminCommand::RevokeApiKey { api_key } => {
            let r = s.exec(json!({"revoke_api_key": {"api_key": api_key}}))?;
            s.report_tx("API key revoked", &r)
        }
        AdminCommand::ListApiKeys => {
            let permit =
                s.permit(format!("prag-list-keys-{}", prag_node::crypto::random_hex::<16>()?), vec!["owner".into()])?;
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
            let r = s.exec(parse_json_arg("MSG", &msg)?)?;
            s.report_tx("transaction", &r)
        }
        AdminCommand::Query { query } => {
            let v: Value = s.query(parse_json_arg("QUERY", &query)?)?;
            s.print(&v)
        }
        AdminCommand::Permit { name, permissions } => {
            let p = s.permit(name, permissions)?;
            println!("{}", serde_json::to_string(&p)?);
            Ok(())
        }
        AdminCommand::Status => {
            let st = s.status()?;
            s.print(&serde_json::to_value(st)?)
        }
    }
}

impl Session {
    /// A SNIP-24 permit for this network's contracts, signed with `--key`.
    fn permit(
        &self,
        permit_name: String,
        permissions: Vec<String>,
    ) -> anyhow::Result<prag_proto::contracts::permit::Permit> {
        let status = self.status()?;
        Ok(permit::sign(
            &self.key,
            PermitParams {
                permit_name,
                allowed_tokens: vec![status.contract_address],
                chain_id: status.chain_id,
                permissions,
            },
        ))
    }
}

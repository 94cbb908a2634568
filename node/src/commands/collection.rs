//! `prag collection create | list | grant | revoke | grants`, `prag doc delete`, `prag status`.

use prag_proto::api::{
    CollectionInfo, CreateCollectionRequest, DeleteDocumentRequest, DocumentInfo, DocumentOutcome, GrantRequest,
    GrantsResponse, NodeStatus, PublicStatus,
};

use crate::cli::{CollectionCommand, DocCommand, NodeConn, runtime};
use crate::client::segment;

pub fn run(cmd: CollectionCommand) -> anyhow::Result<()> {
    let rt = runtime()?;
    match cmd {
        CollectionCommand::Create { conn, name, json } => {
            let info: Option<CollectionInfo> =
                rt.block_on(conn.client()?.post("/v1/collections", &CreateCollectionRequest { name: name.clone() }))?;
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!("collection {name} created; owner {}", info.map(|i| i.owner_address).unwrap_or_default());
            }
        }
        CollectionCommand::Grant { conn, collection, subscriber, json } => {
            let path = format!("/v1/collections/{}/grants", segment(&collection));
            let r: GrantsResponse =
                rt.block_on(conn.client()?.post(&path, &GrantRequest { subscriber: subscriber.clone() }))?;
            print_grants(&r, json, &format!("granted {subscriber} access to {collection}"))?;
        }
        CollectionCommand::Revoke { conn, collection, subscriber, json } => {
            let path = format!("/v1/collections/{}/grants/revoke", segment(&collection));
            let r: GrantsResponse =
                rt.block_on(conn.client()?.post(&path, &GrantRequest { subscriber: subscriber.clone() }))?;
            print_grants(&r, json, &format!("revoked {subscriber}'s access to {collection}"))?;
        }
        CollectionCommand::Grants { conn, collection, json } => {
            let path = format!("/v1/collections/{}/grants", segment(&collection));
            let r: GrantsResponse = rt.block_on(conn.client()?.get(&path))?;
            print_grants(&r, json, &format!("subscribers granted access to {collection}"))?;
        }
        CollectionCommand::List { conn, json } => {
            let list: Vec<CollectionInfo> = rt.block_on(conn.client()?.get("/v1/collections"))?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no collections owned by this key");
            } else {
                println!("{:<24} {:>10} {:>10} {:>12}", "NAME", "DOCUMENTS", "CHUNKS", "INDEXED");
                for c in list {
                    println!(
                        "{:<24} {:>10} {:>10} {:>5}/{:<6}",
                        c.name, c.documents, c.chunks, c.indexed_points, c.total_points
                    );
                }
            }
        }
    }
    Ok(())
}

pub fn run_doc(cmd: DocCommand) -> anyhow::Result<()> {
    let (conn, collection, target, id, json) = match cmd {
        DocCommand::List { conn, collection, json } => {
            let path = format!("/v1/collections/{}/documents", segment(&collection));
            let docs: Vec<DocumentInfo> = runtime()?.block_on(conn.client()?.get(&path))?;
            if json {
                println!("{}", serde_json::to_string(&docs)?);
            } else {
                for d in docs {
                    println!("{}  {:>5} chunks  {}", d.doc_id, d.chunks, d.path);
                }
            }
            return Ok(());
        }
        DocCommand::Delete { conn, collection, target, id, json } => (conn, collection, target, id, json),
    };
    let req = if id {
        DeleteDocumentRequest { doc_id: Some(target), path: None }
    } else {
        DeleteDocumentRequest { doc_id: None, path: Some(target) }
    };
    let path = format!("/v1/collections/{}/documents/delete", segment(&collection));
    let out: DocumentOutcome = runtime()?.block_on(conn.client()?.post(&path, &req))?;
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("deleted {} ({} chunks) from {collection}", out.path, out.chunks);
    }
    Ok(())
}

pub fn status(conn: NodeConn) -> anyhow::Result<()> {
    let rt = runtime()?;
    if conn.key.is_some() {
        let status: NodeStatus = rt.block_on(conn.client()?.get("/v1/status"))?;
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let url = format!("{}/v1/status", conn.node.trim_end_matches('/'));
    let status: PublicStatus = rt.block_on(async {
        let resp = reqwest::get(&url).await.map_err(|e| anyhow::anyhow!("cannot reach the node at {url}: {e}"))?;
        resp.json::<PublicStatus>().await.map_err(|e| anyhow::anyhow!("unexpected answer from {url}: {e}"))
    })?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

fn print_grants(r: &GrantsResponse, json: bool, headline: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!("{headline}");
        if r.subscribers.is_empty() {
            println!("  (no subscriber is granted access)");
        }
        for s in &r.subscribers {
            println!("  {s}");
        }
    }
    Ok(())
}

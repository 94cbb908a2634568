//! `prag doc list | delete`.

use prag_node::client::segment;
use prag_proto::api::{DeleteDocumentRequest, DocumentInfo, DocumentOutcome};

use crate::args::{DocArgs, DocCommand};
use crate::connect::{client, runtime};

pub fn run(args: DocArgs) -> anyhow::Result<()> {
    let (rt, client, json) = (runtime()?, client(&args.client)?, args.output.json);
    match args.command {
        DocCommand::List { collection } => {
            let path = format!("/v1/collections/{}/documents", segment(&collection));
            let docs: Vec<DocumentInfo> = rt.block_on(client.get(&path))?;
            if json {
                return crate::output::json(&docs);
            }
            for d in docs {
                println!("{}  {:>5} chunks  {}", d.doc_id, d.chunks, d.path);
            }
        }
        DocCommand::Delete { collection, target, id } => {
            let req = if id {
                DeleteDocumentRequest { doc_id: Some(target), path: None }
            } else {
                DeleteDocumentRequest { doc_id: None, path: Some(target) }
            };
            let path = format!("/v1/collections/{}/documents/delete", segment(&collection));
            let out: DocumentOutcome = rt.block_on(client.post(&path, &req))?;
            if json {
                return crate::output::json(&out);
            }
            println!("deleted {} ({} chunks) from {collection}", out.path, out.chunks);
        }
    }
    Ok(())
}

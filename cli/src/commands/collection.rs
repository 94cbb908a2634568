//! `prag collection create | list | grant | revoke | grants`.

use prag_node::client::segment;
use prag_proto::api::{CollectionInfo, CreateCollectionRequest, GrantRequest, GrantsResponse};

use crate::args::{CollectionArgs, CollectionCommand};
use crate::connect::{client, runtime};

pub fn run(args: CollectionArgs) -> anyhow::Result<()> {
    let (rt, client, json) = (runtime()?, client(&args.client)?, args.output.json);
    match args.command {
        CollectionCommand::Create { name } => {
            let info: Option<CollectionInfo> =
                rt.block_on(client.post("/v1/collections", &CreateCollectionRequest { name: name.clone() }))?;
            if json {
                return crate::output::json(&info);
            }
            println!("collection {name} created; owner {}", info.map(|i| i.owner_address).unwrap_or_default());
        }
        CollectionCommand::Grant { collection, subscriber } => {
            let path = format!("/v1/collections/{}/grants", segment(&collection));
            let r: GrantsResponse =
                rt.block_on(client.post(&path, &GrantRequest { subscriber: subscriber.clone() }))?;
            print_grants(&r, json, &format!("granted {subscriber} access to {collection}"))?;
        }
        CollectionCommand::Revoke { collection, subscriber } => {
            let path = format!("/v1/collections/{}/grants/revoke", segment(&collection));
            let r: GrantsResponse =
                rt.block_on(client.post(&path, &GrantRequest { subscriber: subscriber.clone() }))?;
            print_grants(&r, json, &format!("revoked {subscriber}'s access to {collection}"))?;
        }
        CollectionCommand::Grants { collection } => {
            let path = format!("/v1/collections/{}/grants", segment(&collection));
            let r: GrantsResponse = rt.block_on(client.get(&path))?;
            print_grants(&r, json, &format!("subscribers granted access to {collection}"))?;
        }
        CollectionCommand::List => {
            let list: Vec<CollectionInfo> = rt.block_on(client.get("/v1/collections"))?;
            if json {
                return crate::output::json(&list);
            }
            if list.is_empty() {
                println!("no collections owned by this key");
                return Ok(());
            }
            println!("{:<24} {:>10} {:>10} {:>12}", "NAME", "DOCUMENTS", "CHUNKS", "INDEXED");
            for c in list {
                println!(
                    "{:<24} {:>10} {:>10} {:>5}/{:<6}",
                    c.name, c.documents, c.chunks, c.indexed_points, c.total_points
                );
            }
        }
    }
    Ok(())
}

fn print_grants(r: &GrantsResponse, json: bool, headline: &str) -> anyhow::Result<()> {
    if json {
        return crate::output::json(r);
    }
    println!("{headline}");
    if r.subscribers.is_empty() {
        println!("  (no subscriber is granted access)");
    }
    for s in &r.subscribers {
        println!("  {s}");
    }
    Ok(())
}

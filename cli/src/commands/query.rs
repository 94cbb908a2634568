//! `prag query`: top-k chunks of a collection for a question.

use prag_node::client::segment;
use prag_proto::api::{QueryRequest, QueryResponse};

use crate::args::QueryArgs;
use crate::connect::{client, runtime};

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let req = QueryRequest { text: args.text.join(" "), k: args.k, exact: args.exact, mode: args.mode };
    let path = format!("/v1/collections/{}/query", segment(&args.collection));
    let resp: QueryResponse = runtime()?.block_on(client(&args.client)?.post(&path, &req))?;
    if args.output.json {
        return crate::output::json(&resp);
    }
    crate::output::hits(&resp.hits, &resp.unreadable);
    Ok(())
}

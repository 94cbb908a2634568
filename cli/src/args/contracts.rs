//! `prag admin …` and `prag worker …`.

use std::path::PathBuf;

use clap::Subcommand;

use super::{ClientArgs, OutputArgs};

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Make a public key an active subscriber.
    RegisterSubscriber {
        /// The subscriber's public key (hex).
        public_key: String,
    },
    /// Remove a subscriber.
    RemoveSubscriber {
        /// The subscriber's public key (hex).
        public_key: String,
    },
    /// Hand the admin role (of all three contracts) to another account.
    SetAdmin {
        /// The new admin's public key (hex).
        #[arg(long, conflicts_with = "address", required_unless_present = "address")]
        public_key: Option<String>,
        /// The new admin's address (secret1…).
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
        /// The worker's address as registered (for a storage node: its peer id).
        #[arg(long)]
        ip: String,
        /// The worker's payment wallet (secret1… address).
        #[arg(long)]
        wallet: String,
        /// The worker's type, e.g. a model name, or `prag-storage` for a storage node.
        #[arg(long = "type")]
        worker_type: String,
        /// File holding the attestation report (text: hex, base64 or JSON).
        #[arg(long, conflicts_with = "report_text", required_unless_present = "report_text")]
        report: Option<PathBuf>,
        /// The attestation report itself, instead of a file.
        #[arg(long)]
        report_text: Option<String>,
        /// Public key that signs the worker's requests and reports.
        #[arg(long)]
        signing_key: Option<String>,
    },
    /// Remove a worker.
    RemoveWorker {
        /// The worker's address as registered (for a storage node: its peer id).
        ip: String,
    },
    /// Add funds to a rewards epoch.
    FundEpoch {
        /// The rewards epoch.
        epoch: u64,
        /// Units to add.
        amount: u128,
    },
    /// Split a rewards epoch's funds by reported work.
    CloseEpoch {
        /// The rewards epoch.
        epoch: u64,
    },
    /// Send any execute message in the contracts' JSON shape, e.g.
    /// `prag admin exec '{"remove_subscriber":{"public_key":"02…"}}'`.
    Exec {
        /// The message (JSON).
        #[arg(value_name = "MSG")]
        msg: String,
    },
    /// Send any query in the contracts' JSON shape, e.g. `prag admin query '{"get_models":{}}'`.
    Query {
        /// The query (JSON).
        #[arg(value_name = "QUERY")]
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
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(subcommand)]
    pub command: WorkerCommand,
}

#[derive(Subcommand, Debug)]
pub enum WorkerCommand {
    /// Change the worker's payment wallet (signed by the current wallet).
    SetWallet {
        /// The worker's address as registered (for a storage node: its peer id).
        #[arg(long)]
        ip: String,
        /// The new wallet's address (secret1…).
        wallet: String,
    },
    /// Move the worker to a new address (signed by its wallet).
    SetAddress {
        /// The worker's address as registered (for a storage node: its peer id).
        #[arg(long)]
        ip: String,
        /// The new address.
        new_ip: String,
    },
    /// Change the worker's type (signed by its wallet).
    SetType {
        /// The worker's address as registered (for a storage node: its peer id).
        #[arg(long)]
        ip: String,
        /// The new type.
        worker_type: String,
    },
    /// Remove the worker (signed by its wallet).
    Remove {
        /// The worker's address as registered (for a storage node: its peer id).
        #[arg(long)]
        ip: String,
    },
    /// Retrieve from a collection for a subscriber (signed by the worker's registered key). The
    /// node checks the worker's attestation, liveliness, the subscriber and the owner's grant, and
    /// seals the answer to a fresh X25519 key that only this command holds.
    Query {
        /// The collection's name.
        #[arg(long, short)]
        collection: String,
        /// Public key (hex) of the subscriber the worker acts for.
        #[arg(long = "for", value_name = "SUBSCRIBER_PUBKEY")]
        for_subscriber: String,
        /// The subscriber's API key, when it authorises by key.
        #[arg(long, env = "PRAG_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Number of chunks to return (1-100).
        #[arg(short = 'k', long, default_value_t = 5)]
        k: usize,
        /// Pay from this market stack (the subscriber's; the node must be its selected node).
        /// The answer then comes with the node's signed receipt.
        #[arg(long)]
        stack: Option<u64>,
        /// Write the node's receipt here (JSON), for `prag receipt verify`.
        #[arg(long, value_name = "FILE", requires = "stack")]
        receipt_out: Option<std::path::PathBuf>,
        /// Write the answer here (JSON), for `prag receipt verify --answer`.
        #[arg(long, value_name = "FILE")]
        answer_out: Option<std::path::PathBuf>,
        /// The question (words are joined with spaces).
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
        /// The worker's address as registered (for a storage node: its peer id).
        #[arg(long)]
        ip: String,
    },
    /// Report work done (signed by the worker's key), once per report id.
    ReportWork {
        /// The worker's address as registered (for a storage node: its peer id).
        #[arg(long)]
        ip: String,
        /// An id of this report, unique for the worker (a second report with it is refused).
        #[arg(long)]
        report_id: String,
        /// The rewards epoch the work counts towards.
        #[arg(long)]
        epoch: u64,
        #[arg(long, default_value_t = 1)]
        requests: u64,
        /// Prompt tokens processed.
        #[arg(long)]
        input_tokens: u64,
        /// Tokens generated.
        #[arg(long)]
        output_tokens: u64,
    },
    /// Claim this wallet's share of a closed rewards epoch.
    Claim {
        /// The rewards epoch.
        epoch: u64,
    },
    /// This wallet's share of a rewards epoch.
    Share {
        /// The rewards epoch.
        epoch: u64,
    },
}

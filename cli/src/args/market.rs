//! `prag market …`: the compute market (Atoma's contract) and the bank.

use clap::Subcommand;

use super::{ClientArgs, OutputArgs};

#[derive(clap::Args, Debug)]
pub struct MarketArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Have the node at --node sign the message with its own storage key (its market identity)
    /// instead of signing it with --key; --key must be one of that node's operators. For the
    /// messages a node sends about itself: node register/disable, subscribe, claim, withdraw.
    #[arg(long, global = true)]
    pub via_node: bool,
    #[command(subcommand)]
    pub command: MarketCommand,
}

#[derive(Subcommand, Debug)]
pub enum MarketCommand {
    /// Send any market or bank message in its JSON shape, e.g.
    /// `prag market exec '{"acquire_new_stack":{"task_small_id":1,"num_compute_units":1000,"price":5}}'`.
    Exec {
        /// The message (JSON).
        #[arg(value_name = "MSG")]
        msg: String,
    },
    /// Send any market or bank query, e.g. `prag market query '{"get_tasks":{}}'`.
    Query {
        /// The query (JSON).
        #[arg(value_name = "QUERY")]
        query: String,
    },
    /// An account's balance (default: the --key's account).
    Balance {
        /// A secret1… address.
        address: Option<String>,
    },
    /// Move money from the --key's account.
    Transfer {
        /// The recipient (secret1… address).
        to: String,
        /// Amount in uprag.
        amount: u128,
    },
    /// Create money (the admin, on a network whose genesis allowed minting).
    Mint {
        /// The recipient (secret1… address).
        to: String,
        /// Amount in uprag.
        amount: u128,
    },
    /// Total supply and the contracts' own accounts.
    Supply,
    /// The market's parameters.
    Params,
    /// Market nodes (signed by the node's storage key: `prag storage identity` prints it).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Tasks (created and managed by the admin).
    #[command(subcommand)]
    Task(TaskCommand),
    /// Offer the --key's node for a task at a price per million compute units.
    Subscribe {
        #[arg(long)]
        task: u64,
        /// Price per one million compute units (uprag).
        #[arg(long)]
        price: u64,
        /// Change the price of an existing subscription instead.
        #[arg(long)]
        update: bool,
    },
    /// Withdraw the --key's node from a task.
    Unsubscribe {
        #[arg(long)]
        task: u64,
    },
    /// Stacks: buy compute units of a task, look at them, take back an abandoned one.
    #[command(subcommand)]
    Stack(StackCommand),
    /// As the serving node: commit a stack's used units and the root of its request log.
    Settle {
        #[arg(long)]
        stack: u64,
        /// Compute units used.
        #[arg(long)]
        units: u64,
        /// The Merkle root of the stack's request leaves (hex, 32 bytes).
        #[arg(long)]
        root: String,
    },
    /// As a requested attester: commit the root you recomputed (a different root opens a dispute).
    Attest {
        #[arg(long)]
        stack: u64,
        /// The Merkle root you recomputed (hex, 32 bytes).
        #[arg(long)]
        root: String,
    },
    /// As a requested attester: dispute the node's commitment with your own root.
    Dispute {
        #[arg(long)]
        stack: u64,
        /// The Merkle root you recomputed (hex, 32 bytes).
        #[arg(long)]
        root: String,
    },
    /// As one of the task's oracles: resolve a dispute with the root you recomputed.
    Resolve {
        #[arg(long)]
        stack: u64,
        #[arg(long)]
        root: String,
    },
    /// As the serving node: claim settled stacks (fee to the node, refund to the owner), or with
    /// --units, confidential-compute stacks at once.
    Claim {
        /// Stack ids.
        #[arg(required = true, num_args = 1..)]
        stacks: Vec<u64>,
        /// Units used per stack (confidential compute: claim without a ticket).
        #[arg(long, num_args = 1..)]
        units: Vec<u64>,
    },
    /// Compute a stack's root, proof and slots from its request leaves (offline).
    Commitment {
        /// A file of request leaves, hex, one per line, in request order.
        #[arg(long)]
        leaves: std::path::PathBuf,
        /// Attester slots (the stack's extra-nodes count).
        #[arg(long, default_value_t = 1)]
        extra_nodes: u8,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Register the --key (an admitted prag-storage worker's signing key) as a market node.
    Register {
        /// Collateral to lock (uprag), at least the market's requirement.
        #[arg(long)]
        collateral: u128,
    },
    /// A node (default: the --key's).
    Show { id: Option<u64> },
    /// Every node.
    List,
    /// Stop being sampled, for good (collateral comes back 4 epochs later with `destroy`).
    Disable,
    /// Remove a node disabled 4 epochs ago: fees and collateral go back to its account.
    Destroy,
    /// Move the node's earned fees to its account.
    Withdraw,
}

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Create a task (admin).
    Create {
        /// retrieval, embedding, chat-completion, … or Atoma's number.
        #[arg(long, default_value = "retrieval")]
        role: String,
        /// no-security, confidential-compute or sampling-consensus.
        #[arg(long, default_value = "no-security")]
        security: String,
        #[arg(long)]
        model: Option<String>,
        /// Nodes below this reputation are neither subscribed nor sampled (0-100).
        #[arg(long)]
        min_reputation: Option<u8>,
        /// Only whitelisted nodes may subscribe.
        #[arg(long)]
        private: bool,
    },
    List,
    Show {
        id: u64,
    },
    /// Stop new stacks and subscriptions (admin).
    Deprecate {
        id: u64,
    },
    /// Remove a task deprecated at least one epoch ago (admin).
    Remove {
        id: u64,
    },
    /// Let nodes subscribe to a private task (admin).
    Whitelist {
        id: u64,
        #[arg(required = true, num_args = 1..)]
        nodes: Vec<u64>,
    },
    /// Appoint a node as one of the task's dispute oracles (admin).
    AddOracle {
        id: u64,
        /// The node's small id.
        #[arg(value_name = "NODE")]
        node_id: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum StackCommand {
    /// Buy compute units of a task at a price cap (per million units); the escrow is taken now.
    Buy {
        #[arg(long)]
        task: u64,
        #[arg(long)]
        units: u64,
        /// Highest price per one million compute units you accept (the stack is charged at it).
        #[arg(long)]
        price: u64,
    },
    /// A stack and its settlement ticket.
    Show { id: u64 },
    /// Stacks (default: the --key's).
    List {
        /// Every owner's.
        #[arg(long)]
        all: bool,
    },
    /// Take back an abandoned stack's escrow after its deadline (owner).
    Reclaim { id: u64 },
    /// Ask the stack's serving node (--node) to settle it now from its request log (owner).
    Settle { id: u64 },
    /// The Merkle inclusion proof of one answer of a stack, from its serving node (--node).
    Proof {
        id: u64,
        /// The answer's index in the stack (its receipt's `index`).
        index: u64,
    },
}

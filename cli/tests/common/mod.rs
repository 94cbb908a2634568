//! What the process tests share: the testkit (keys, ports, the model, the corpus, the `prag
//! node` process fixture) and requests built by hand on the owner's channel.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod hostile;

pub use prag_node::NodeClient;
pub use prag_testkit::process::NodeProcess;
pub use prag_testkit::requests::{collection_with, sealed_request, send_sealed};
pub use prag_testkit::{CLINIC_DOCS, CLINIC_QUESTIONS, all_files, free_port, key, model_dir, rt, storage_registration};

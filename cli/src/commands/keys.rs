//! `prag keys new | show`.

use prag_node::account;

use crate::args::{KeysArgs, KeysCommand};

pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let (key, path) = match args.command {
        KeysCommand::New { out } => (account::create(&out)?, out),
        KeysCommand::Show { key } => (account::load(&key)?, key),
    };
    let (public_key, address) = (account::public_key_hex(&key), account::address(&key));
    if args.output.json {
        return crate::output::json(&serde_json::json!({ "file": path, "public_key": public_key, "address": address }));
    }
    println!("key file:   {}", path.display());
    println!("public key: {public_key}");
    println!("address:    {address}");
    Ok(())
}

//! `prag keys new | show`.

use crate::account;
use crate::cli::KeysCommand;

pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (key, path, json) = match cmd {
        KeysCommand::New { out, json } => (account::create(&out)?, out, json),
        KeysCommand::Show { key, json } => (account::load(&key)?, key, json),
    };
    let (public_key, address) = (account::public_key_hex(&key), account::address(&key));
    if json {
        println!("{}", serde_json::json!({ "file": path, "public_key": public_key, "address": address }));
    } else {
        println!("key file:   {}", path.display());
        println!("public key: {public_key}");
        println!("address:    {address}");
    }
    Ok(())
}

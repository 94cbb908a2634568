//! The bank: balances per `secret1…` address in one denomination, in the same ledger as the
//! contracts, so that escrow, collateral, fees and rewards are money that exists somewhere.
//!
//! - Money enters only at genesis (allocations) and by `mint`, which the admin may send only on a
//!   network whose genesis allowed it (development networks). Every other movement is a transfer
//!   between two accounts, so the sum over all accounts changes only by what is minted.
//! - The contracts' own accounts (market escrow, node collateral, fee treasury, communal
//!   treasury, rewards pool) are ordinary accounts at addresses derived from their names
//!   ([`module_address`]): anyone can query them; no key can sign for them; only contract code
//!   moves their money.
//! - Amounts are u128 with checked arithmetic: nothing wraps, no balance goes negative.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rewards::Uint128;
use super::{ContractError, Sender, check_address, require_admin};

/// The one denomination of PRAG networks (micro-units, as Cosmos chains count).
pub const DENOM: &str = "uprag";

/// Most genesis allocations (each one an account).
pub const MAX_GENESIS_ACCOUNTS: usize = 10_000;

/// The address of a contract's own account: `bech32("secret", SHA-256("prag/module/" ‖ name)[..20])`,
/// the way Cosmos derives module accounts. No key hashes to it, so nobody can sign for it.
pub fn module_address(name: &str) -> String {
    let digest = Sha256::digest(format!("prag/module/{name}").as_bytes());
    let hrp = bech32::Hrp::parse_unchecked(crate::account::ADDRESS_PREFIX);
    bech32::encode::<bech32::Bech32>(hrp, &digest[..20]).unwrap_or_default()
}

/// The accounts contract code moves money through.
pub mod accounts {
    /// Stacks' escrow, from purchase to settlement.
    pub const MARKET_ESCROW: &str = "market/escrow";
    /// Market nodes' collateral.
    pub const MARKET_COLLATERAL: &str = "market/collateral";
    /// Fees owed to nodes (epoch-locked until withdrawn) and the protocol's rounding dust.
    pub const MARKET_FEE_TREASURY: &str = "market/fee_treasury";
    /// Slashed collateral not paid out.
    pub const MARKET_COMMUNAL_TREASURY: &str = "market/communal_treasury";
    /// RewardsManager's funded, not yet claimed epochs.
    pub const REWARDS_POOL: &str = "rewards/pool";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub address: String,
    pub amount: Uint128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecuteMsg {
    /// Moves `amount` from the sender's account to `to`.
    Transfer { to: String, amount: Uint128 },
    /// Creates `amount` in `to` (the admin, and only where the genesis allowed minting).
    Mint { to: String, amount: Uint128 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryMsg {
    Balance {
        address: String,
    },
    /// Total supply, what was minted, and the contracts' accounts.
    Supply {},
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceResponse {
    pub address: String,
    pub denom: String,
    pub amount: Uint128,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    pub admin: String,
    /// Address → amount; accounts at zero are removed.
    pub balances: BTreeMap<String, u128>,
    /// Whether `mint` is accepted (fixed at genesis).
    pub mint_allowed: bool,
    /// Everything that exists: genesis allocations plus what was minted.
    pub supply: u128,
    /// What `mint` created.
    pub minted: u128,
}

fn overflow() -> ContractError {
    ContractError::Rule("arithmetic overflow: amount too large".into())
}

fn positive(amount: Uint128) -> Result<u128, ContractError> {
    if amount.0 == 0 { Err(ContractError::invalid("amount", "must be positive")) } else { Ok(amount.0) }
}

impl State {
    /// The bank at genesis: `allocations` exist, nothing else.
    pub fn new(admin: String, allocations: &[Allocation], mint_allowed: bool) -> Result<Self, ContractError> {
        if allocations.len() > MAX_GENESIS_ACCOUNTS {
            return Err(ContractError::invalid("allocations", format!("more than {MAX_GENESIS_ACCOUNTS} accounts")));
        }
        let mut s = State { admin, mint_allowed, ..State::default() };
        for a in allocations {
            check_address("allocations.address", &a.address)?;
            s.credit(&a.address, a.amount.0)?;
            s.supply = s.supply.checked_add(a.amount.0).ok_or_else(overflow)?;
        }
        Ok(s)
    }

    pub fn balance(&self, address: &str) -> u128 {
        self.balances.get(address).copied().unwrap_or(0)
    }

    /// The balance of a contract account by name (see [`accounts`]).
    pub fn module_balance(&self, name: &str) -> u128 {
        self.balance(&module_address(name))
    }

    fn credit(&mut self, address: &str, amount: u128) -> Result<(), ContractError> {
        if amount == 0 {
            return Ok(());
        }
        let b = self.balances.entry(address.to_string()).or_insert(0);
        *b = b.checked_add(amount).ok_or_else(overflow)?;
        Ok(())
    }

    /// Moves `amount` from `from` to `to`; refuses (changing nothing) if `from` has less.
    pub fn transfer(&mut self, from: &str, to: &str, amount: u128) -> Result<(), ContractError> {
        if amount == 0 {
            return Ok(());
        }
        let have = self.balance(from);
        let left = have.checked_sub(amount).ok_or_else(|| ContractError::InsufficientFunds {
            account: from.to_string(),
            have: have.to_string(),
            need: amount.to_string(),
        })?;
        if from == to {
            return Ok(()); // covered, and nothing moves
        }
        // Credit first: if it overflowed, nothing has moved yet.
        self.credit(to, amount)?;
        if left == 0 {
            self.balances.remove(from);
        } else {
            self.balances.insert(from.to_string(), left);
        }
        Ok(())
    }

    /// Moves money between two contract accounts (by name).
    pub fn move_between(&mut self, from: &str, to: &str, amount: u128) -> Result<(), ContractError> {
        self.transfer(&module_address(from), &module_address(to), amount)
    }

    /// The sum over every account (what the invariant compares with `supply`).
    pub fn total(&self) -> Option<u128> {
        self.balances.values().try_fold(0u128, |a, b| a.checked_add(*b))
    }

    pub fn execute(&mut self, sender: &Sender, msg: ExecuteMsg) -> Result<(), ContractError> {
        match msg {
            ExecuteMsg::Transfer { to, amount } => {
                check_address("to", &to)?;
                let amount = positive(amount)?;
                self.transfer(&sender.address(), &to, amount)
            }
            ExecuteMsg::Mint { to, amount } => {
                require_admin(&self.admin, sender, "mint")?;
                if !self.mint_allowed {
                    return Err(ContractError::unauthorized(
                        "minting is off: this network's genesis did not allow it (development networks only)",
                    ));
                }
                check_address("to", &to)?;
                let amount = positive(amount)?;
                let supply = self.supply.checked_add(amount).ok_or_else(overflow)?;
                let minted = self.minted.checked_add(amount).ok_or_else(overflow)?;
                self.credit(&to, amount)?;
                self.supply = supply;
                self.minted = minted;
                Ok(())
            }
        }
    }

    pub fn query(&self, msg: &QueryMsg) -> Result<serde_json::Value, ContractError> {
        let v = match msg {
            QueryMsg::Balance { address } => {
                check_address("address", address)?;
                serde_json::to_value(BalanceResponse {
                    address: address.clone(),
                    denom: DENOM.into(),
                    amount: Uint128(self.balance(address)),
                })
            }
            QueryMsg::Supply {} => {
                let mut modules = serde_json::Map::new();
                for name in [
                    accounts::MARKET_ESCROW,
                    accounts::MARKET_COLLATERAL,
                    accounts::MARKET_FEE_TREASURY,
                    accounts::MARKET_COMMUNAL_TREASURY,
                    accounts::REWARDS_POOL,
                ] {
                    modules.insert(
                        name.into(),
                        serde_json::json!({"address": module_address(name), "amount": self.module_balance(name).to_string()}),
                    );
                }
                Ok(serde_json::json!({
                    "denom": DENOM,
                    "supply": self.supply.to_string(),
                    "minted": self.minted.to_string(),
                    "mint_allowed": self.mint_allowed,
                    "accounts": modules,
                }))
            }
        };
        v.map_err(|e| ContractError::Rule(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::testing::sender;

    #[test]
    fn transfers_move_money_and_refuse_overdrafts_without_change() {
        let (a, b) = (sender(1), sender(2));
        let mut s = State::new(a.address(), &[Allocation { address: a.address(), amount: Uint128(100) }], false)
            .expect("genesis");
        s.execute(&a, ExecuteMsg::Transfer { to: b.address(), amount: Uint128(40) }).expect("transfer");
        assert_eq!((s.balance(&a.address()), s.balance(&b.address())), (60, 40));
        let before = s.clone();
        let e = s.execute(&b, ExecuteMsg::Transfer { to: a.address(), amount: Uint128(41) }).expect_err("overdraft");
        assert!(matches!(e, ContractError::InsufficientFunds { .. }), "{e}");
        assert_eq!(s, before);
        assert!(s.execute(&b, ExecuteMsg::Transfer { to: "secret1nope".into(), amount: Uint128(1) }).is_err());
        assert!(s.execute(&b, ExecuteMsg::Transfer { to: a.address(), amount: Uint128(0) }).is_err());
        // To oneself: still only what one has.
        assert!(s.execute(&b, ExecuteMsg::Transfer { to: b.address(), amount: Uint128(41) }).is_err());
        s.execute(&b, ExecuteMsg::Transfer { to: b.address(), amount: Uint128(40) }).expect("self");
        assert_eq!(s.balance(&b.address()), 40);
        assert_eq!(s.total(), Some(100));
    }

    #[test]
    fn mint_needs_the_admin_and_a_genesis_that_allows_it() {
        let (admin, other) = (sender(1), sender(2));
        let mut off = State::new(admin.address(), &[], false).expect("genesis");
        let e = off.execute(&admin, ExecuteMsg::Mint { to: other.address(), amount: Uint128(5) }).expect_err("off");
        assert!(e.to_string().contains("minting is off"), "{e}");
        let mut on = State::new(admin.address(), &[], true).expect("genesis");
        assert!(on.execute(&other, ExecuteMsg::Mint { to: other.address(), amount: Uint128(5) }).is_err());
        on.execute(&admin, ExecuteMsg::Mint { to: other.address(), amount: Uint128(5) }).expect("mint");
        assert_eq!((on.supply, on.minted, on.balance(&other.address())), (5, 5, 5));
        let e = on
            .execute(&admin, ExecuteMsg::Mint { to: other.address(), amount: Uint128(u128::MAX) })
            .expect_err("overflow");
        assert!(e.to_string().contains("overflow"), "{e}");
        assert_eq!(on.supply, 5);
    }

    #[test]
    fn module_accounts_are_addresses_nobody_holds() {
        let escrow = module_address(accounts::MARKET_ESCROW);
        check_address("x", &escrow).expect("a valid address");
        assert_ne!(escrow, module_address(accounts::MARKET_COLLATERAL));
    }
}

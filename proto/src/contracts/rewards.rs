//! RewardsManager: epochs are funded, workers' reported work accumulates, and closing an epoch
//! splits its funds between payment wallets in proportion to work, exactly.
//!
//! Work units of a report are `input_tokens + output_tokens`. At close, wallet *i* with work *wᵢ*
//! out of *W* gets `⌊F·wᵢ/W⌋`; the `R = F − Σ⌊F·wᵢ/W⌋` units left (R < number of wallets) go one
//! each to the wallets with the largest remainders `F·wᵢ mod W`, ties to the lower address. So
//! the payouts sum to exactly F and each is within one unit of its exact share. An epoch closed
//! with no work carries its whole fund into the next epoch. Nothing is created or lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ContractError, Env, QueryAnswer, Sender};

/// CosmWasm's `Uint128`: a u128 written as a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Uint128(pub u128);

impl Serialize for Uint128 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Uint128 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<u128>().map(Uint128).map_err(|_| serde::de::Error::custom("expected a decimal string of a u128"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecuteMsg {
    /// Adds funds to an open epoch (admin).
    FundEpoch { epoch: u64, amount: Uint128 },
    /// Splits the epoch's funds by reported work (admin). Irreversible.
    CloseEpoch { epoch: u64 },
    /// The sender's payment wallet takes its share of a closed epoch, once.
    Claim { epoch: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryMsg {
    Epoch { epoch: u64 },
    Share { epoch: u64, wallet: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Share {
    pub work: u128,
    pub amount: Uint128,
    pub claimed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Epoch {
    pub funds: Uint128,
    /// Payment wallet → work units (and, once closed, amount and claim).
    pub shares: BTreeMap<String, Share>,
    pub closed: bool,
    /// Funds moved to the next epoch at close because no work was reported.
    pub carried_over: Uint128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareResponse {
    pub epoch: u64,
    pub wallet: String,
    pub work: u128,
    pub amount: Uint128,
    pub claimed: bool,
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    pub admin: String,
    pub epochs: BTreeMap<u64, Epoch>,
}

/// Splits `funds` by `work` (wallet → units) as the module documentation states.
pub fn split(funds: u128, work: &BTreeMap<String, u128>) -> Result<BTreeMap<String, u128>, ContractError> {
    let total: u128 = work.values().try_fold(0u128, |a, w| a.checked_add(*w)).ok_or_else(overflow)?;
    if total == 0 {
        return Ok(BTreeMap::new());
    }
    let mut out = BTreeMap::new();
    let mut remainders: Vec<(u128, &String)> = Vec::with_capacity(work.len());
    let mut paid: u128 = 0;
    for (wallet, w) in work {
        let (q, r) = mul_div_rem(funds, *w, total).ok_or_else(overflow)?;
        paid += q;
        out.insert(wallet.clone(), q);
        remainders.push((r, wallet));
    }
    // Largest remainder first; ties to the lower address (BTreeMap order, kept by a stable sort).
    remainders.sort_by_key(|r| std::cmp::Reverse(r.0));
    let left = funds - paid;
    for (_, wallet) in remainders.into_iter().take(left as usize) {
        if let Some(v) = out.get_mut(wallet) {
            *v += 1;
        }
    }
    Ok(out)
}

fn overflow() -> ContractError {
    ContractError::Rule("arithmetic overflow: amounts or work too large".into())
}

/// `(a·b / c, a·b mod c)` without overflowing u128 (a, b, c < 2¹²⁸; c > 0).
fn mul_div_rem(a: u128, b: u128, c: u128) -> Option<(u128, u128)> {
    if let Some(p) = a.checked_mul(b) {
        return Some((p / c, p % c));
    }
    // 256-bit product by 64-bit limbs, then long division by c.
    let (a_hi, a_lo) = (a >> 64, a & u64::MAX as u128);
    let (b_hi, b_lo) = (b >> 64, b & u64::MAX as u128);
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 64) + (lh & u64::MAX as u128) + (hl & u64::MAX as u128);
    let lo = (ll & u64::MAX as u128) | (mid << 64);
    let hi = hh + (lh >> 64) + (hl >> 64) + (mid >> 64);
    if hi >= c {
        return None; // quotient would not fit in u128
    }
    // Bitwise long division of (hi, lo) by c.
    let (mut q, mut r) = (0u128, hi);
    for i in (0..128).rev() {
        let carry = r >> 127;
        r = (r << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || r >= c {
            r = r.wrapping_sub(c);
            q |= 1;
        }
    }
    Some((q, r))
}

impl State {
    pub fn new(admin_address: String) -> Self {
        State { admin: admin_address, ..State::default() }
    }

    fn require_admin(&self, sender: &Sender, what: &str) -> Result<(), ContractError> {
        super::require_admin(&self.admin, sender, what)
    }

    /// Adds reported work (from an accepted WorkerManager `report_work`) to an open epoch.
    pub fn record_work(&mut self, epoch: u64, wallet: &str, units: u128) -> Result<(), ContractError> {
        let e = self.epochs.entry(epoch).or_default();
        if e.closed {
            return Err(ContractError::Rule(format!("epoch {epoch} is closed; report work for a later epoch")));
        }
        let share = e.shares.entry(wallet.to_string()).or_default();
        share.work = share.work.checked_add(units).ok_or_else(overflow)?;
        Ok(())
    }

    pub fn execute(&mut self, _env: &Env, sender: &Sender, msg: ExecuteMsg) -> Result<(), ContractError> {
        match msg {
            ExecuteMsg::FundEpoch { epoch, amount } => {
                self.require_admin(sender, "fund epochs")?;
                if amount.0 == 0 {
                    return Err(ContractError::invalid("amount", "must be positive"));
                }
                let e = self.epochs.entry(epoch).or_default();
                if e.closed {
                    return Err(ContractError::Rule(format!("epoch {epoch} is closed")));
                }
                e.funds = Uint128(e.funds.0.checked_add(amount.0).ok_or_else(overflow)?);
            }
            ExecuteMsg::CloseEpoch { epoch } => {
                self.require_admin(sender, "close epochs")?;
                let e = self.epochs.get(&epoch).ok_or_else(|| ContractError::not_found(format!("epoch {epoch}")))?;
                if e.closed {
                    return Err(ContractError::Rule(format!("epoch {epoch} is already closed")));
                }
                let work: BTreeMap<String, u128> =
                    e.shares.iter().filter(|(_, s)| s.work > 0).map(|(w, s)| (w.clone(), s.work)).collect();
                let funds = e.funds.0;
                let payouts = split(funds, &work)?;
                let carry = if payouts.is_empty() { funds } else { 0 };
                if carry > 0 {
                    let next = epoch.checked_add(1).ok_or_else(overflow)?;
                    if self.epochs.get(&next).is_some_and(|n| n.closed) {
                        return Err(ContractError::Rule(format!("epoch {next} is closed; cannot carry funds into it")));
                    }
                    let n = self.epochs.entry(next).or_default();
                    n.funds = Uint128(n.funds.0.checked_add(carry).ok_or_else(overflow)?);
                }
                if let Some(e) = self.epochs.get_mut(&epoch) {
                    for (wallet, amount) in payouts {
                        e.shares.entry(wallet).or_default().amount = Uint128(amount);
                    }
                    e.closed = true;
                    e.carried_over = Uint128(carry);
                }
            }
            ExecuteMsg::Claim { epoch } => {
                let wallet = sender.address();
                let e =
                    self.epochs.get_mut(&epoch).ok_or_else(|| ContractError::not_found(format!("epoch {epoch}")))?;
                if !e.closed {
                    return Err(ContractError::Rule(format!("epoch {epoch} is not closed yet")));
                }
                let share = e
                    .shares
                    .get_mut(&wallet)
                    .filter(|s| s.amount.0 > 0)
                    .ok_or_else(|| ContractError::not_found(format!("a share of epoch {epoch} for {wallet}")))?;
                if share.claimed {
                    return Err(ContractError::Replayed { what: format!("claim of epoch {epoch}") });
                }
                share.claimed = true;
            }
        }
        Ok(())
    }

    pub fn query(&self, msg: &QueryMsg) -> Result<QueryAnswer, ContractError> {
        let answer = match msg {
            QueryMsg::Epoch { epoch } => {
                let e = self.epochs.get(epoch).ok_or_else(|| ContractError::not_found(format!("epoch {epoch}")))?;
                serde_json::to_value(e)
            }
            QueryMsg::Share { epoch, wallet } => {
                let e = self.epochs.get(epoch).ok_or_else(|| ContractError::not_found(format!("epoch {epoch}")))?;
                let s = e.shares.get(wallet).cloned().unwrap_or_default();
                serde_json::to_value(ShareResponse {
                    epoch: *epoch,
                    wallet: wallet.clone(),
                    work: s.work,
                    amount: s.amount,
                    claimed: s.claimed,
                    closed: e.closed,
                })
            }
        };
        answer.map_err(|e| ContractError::Rule(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::testing::{env, sender};
    use proptest::prelude::*;

    #[test]
    fn json_shapes() {
        let m: ExecuteMsg = serde_json::from_str(r#"{"fund_epoch":{"epoch":3,"amount":"1000000"}}"#).expect("fund");
        assert_eq!(m, ExecuteMsg::FundEpoch { epoch: 3, amount: Uint128(1_000_000) });
        assert_eq!(serde_json::to_string(&m).expect("s"), r#"{"fund_epoch":{"epoch":3,"amount":"1000000"}}"#);
        assert!(serde_json::from_str::<ExecuteMsg>(r#"{"fund_epoch":{"epoch":3,"amount":1000}}"#).is_err());
        assert!(serde_json::from_str::<ExecuteMsg>(r#"{"fund_epoch":{"epoch":3,"amount":"-5"}}"#).is_err());
    }

    #[test]
    fn remainder_rule_is_as_documented() {
        let work: BTreeMap<String, u128> = [("a".to_string(), 1u128), ("b".into(), 1), ("c".into(), 1)].into();
        // 10 / 3 = 3 each, remainder 1 → the lowest address among equal remainders.
        let p = split(10, &work).expect("split");
        assert_eq!(p, [("a".to_string(), 4u128), ("b".into(), 3), ("c".into(), 3)].into());
        let work: BTreeMap<String, u128> = [("a".to_string(), 1u128), ("b".into(), 2)].into();
        // 5·1/3 = 1 r2, 5·2/3 = 3 r1 → remainder 1 goes to a (larger remainder).
        assert_eq!(split(5, &work).expect("split"), [("a".to_string(), 2u128), ("b".into(), 3)].into());
        // Huge values do not overflow.
        let big: BTreeMap<String, u128> = [("a".to_string(), u128::MAX / 3), ("b".into(), u128::MAX / 3)].into();
        let p = split(u128::MAX, &big).expect("split");
        assert_eq!(p.values().sum::<u128>(), u128::MAX);
    }

    #[test]
    fn epoch_lifecycle() {
        let admin = sender(1);
        let (w1, w2) = (sender(2), sender(3));
        let mut s = State::new(admin.address());
        let e = env(100);
        assert!(matches!(
            s.execute(&e, &w1, ExecuteMsg::FundEpoch { epoch: 1, amount: Uint128(100) }),
            Err(ContractError::Unauthorized { .. })
        ));
        s.execute(&e, &admin, ExecuteMsg::FundEpoch { epoch: 1, amount: Uint128(100) }).expect("fund");
        s.record_work(1, &w1.address(), 30).expect("work");
        s.record_work(1, &w2.address(), 70).expect("work");
        assert!(s.execute(&e, &w1, ExecuteMsg::Claim { epoch: 1 }).is_err(), "not closed");
        assert!(s.execute(&e, &w1, ExecuteMsg::CloseEpoch { epoch: 1 }).is_err(), "not admin");
        s.execute(&e, &admin, ExecuteMsg::CloseEpoch { epoch: 1 }).expect("close");
        assert!(s.record_work(1, &w1.address(), 5).is_err(), "closed epoch takes no work");
        let share = s.query(&QueryMsg::Share { epoch: 1, wallet: w1.address() }).expect("q");
        assert_eq!(share["amount"], "30");
        s.execute(&e, &w1, ExecuteMsg::Claim { epoch: 1 }).expect("claim");
        assert!(matches!(s.execute(&e, &w1, ExecuteMsg::Claim { epoch: 1 }), Err(ContractError::Replayed { .. })));
        assert!(s.execute(&e, &sender(9), ExecuteMsg::Claim { epoch: 1 }).is_err(), "no share");
        // An epoch with no work carries its funds forward.
        s.execute(&e, &admin, ExecuteMsg::FundEpoch { epoch: 2, amount: Uint128(50) }).expect("fund");
        s.execute(&e, &admin, ExecuteMsg::CloseEpoch { epoch: 2 }).expect("close");
        assert_eq!(s.epochs[&3].funds, Uint128(50));
        assert_eq!(s.epochs[&2].carried_over, Uint128(50));
    }

    proptest! {
        #[test]
        fn payouts_sum_exactly_and_each_is_within_one_unit(
            funds in 0u128..=u64::MAX as u128 * 1000,
            work in proptest::collection::vec(0u128..1_000_000_000, 1..40),
        ) {
            let map: BTreeMap<String, u128> = work.iter().enumerate().map(|(i, w)| (format!("w{i:03}"), *w)).collect();
            let total: u128 = work.iter().sum();
            let p = split(funds, &map).expect("split");
            if total == 0 {
                prop_assert!(p.is_empty());
            } else {
                prop_assert_eq!(p.values().sum::<u128>(), funds);
                for (wallet, w) in &map {
                    let got = p.get(wallet).copied().unwrap_or(0);
                    // Exact share is funds·w/total; compare got·total with funds·w (within one total).
                    let exact_floor = mul_div_rem(funds, *w, total).expect("fits").0;
                    prop_assert!(got == exact_floor || got == exact_floor + 1, "{} got {} floor {}", wallet, got, exact_floor);
                }
            }
        }
    }
}

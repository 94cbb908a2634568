//! Atoma's fee, escrow and refund formulas for stacks (atoma.md §5), in checked u128 arithmetic.
//! Integer division truncates, as in Atoma. `p` is the stack's price per million compute units,
//! `u` its units, `c` the units claimed; `s` and `x` are the sampling-consensus charge and the
//! extra-nodes charge in permille, as fixed on the stack at purchase.

use super::error::overflow;
use crate::contracts::ContractError;

/// The price divisor (`ONE_MILLION_COMPUTE_UNITS`).
pub const ONE_MILLION: u128 = 1_000_000;

fn mul(a: u128, b: u128) -> Result<u128, ContractError> {
    a.checked_mul(b).ok_or_else(overflow)
}

/// `⌊P·U / 1e6⌋`.
pub fn base(p: u64, u: u64) -> Result<u128, ContractError> {
    Ok(mul(p.into(), u.into())? / ONE_MILLION)
}

/// What the buyer pays at purchase: `base`, or `⌊base·(S+X)/1000⌋` under sampling consensus.
pub fn escrow(sampling: bool, p: u64, u: u64, s: u64, x: u64) -> Result<u128, ContractError> {
    let b = base(p, u)?;
    if !sampling {
        return Ok(b);
    }
    let sx = u128::from(s).checked_add(x.into()).ok_or_else(overflow)?;
    Ok(mul(b, sx)? / 1000)
}

/// The serving node's fee at claim: `⌊C·P/1e6⌋`, or `⌊C·P·S/1e9⌋` under sampling consensus.
pub fn node_fee(sampling: bool, c: u64, p: u64, s: u64) -> Result<u128, ContractError> {
    let cp = mul(c.into(), p.into())?;
    if sampling { Ok(mul(cp, s.into())? / (ONE_MILLION * 1000)) } else { Ok(cp / ONE_MILLION) }
}

/// The owner's refund of unused units: `⌊(U−C)·P/1e6⌋`, or `⌊(U−C)·P·S/1e9⌋`.
pub fn refund(sampling: bool, u: u64, c: u64, p: u64, s: u64) -> Result<u128, ContractError> {
    let unused = u.checked_sub(c).ok_or_else(overflow)?;
    node_fee(sampling, unused, p, s)
}

/// PRAG: what the attesters of a sampled stack share, `⌊C·P·X/1e9⌋`: the extra-nodes surcharge on
/// the used units, so attesters are paid from what this stack's buyer paid for them, never from
/// other users' escrow (Atoma pays `node_fee / K` each out of the shared treasury).
pub fn attester_pool(c: u64, p: u64, x: u64) -> Result<u128, ContractError> {
    Ok(mul(mul(c.into(), p.into())?, x.into())? / (ONE_MILLION * 1000))
}

/// `⌈amount·permille/1000⌉` (Atoma's timeout slash rounds up).
pub fn permille_ceil(amount: u128, permille: u64) -> Result<u128, ContractError> {
    Ok(mul(amount, permille.into())?.div_ceil(1000))
}

/// `⌊amount·permille/1000⌋`.
pub fn permille_floor(amount: u128, permille: u64) -> Result<u128, ContractError> {
    Ok(mul(amount, permille.into())? / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_match_the_spec_examples() {
        // P = 2_000_000 per million, U = 500_000: base = 1_000_000.
        assert_eq!(base(2_000_000, 500_000).expect("base"), 1_000_000);
        assert_eq!(escrow(false, 2_000_000, 500_000, 1200, 12).expect("e"), 1_000_000);
        assert_eq!(escrow(true, 2_000_000, 500_000, 1200, 12).expect("e"), 1_212_000);
        assert_eq!(node_fee(false, 300_000, 2_000_000, 1200).expect("f"), 600_000);
        assert_eq!(node_fee(true, 300_000, 2_000_000, 1200).expect("f"), 720_000);
        assert_eq!(refund(true, 500_000, 300_000, 2_000_000, 1200).expect("r"), 480_000);
        assert_eq!(attester_pool(300_000, 2_000_000, 12).expect("a"), 7_200);
        assert_eq!(permille_ceil(1001, 100).expect("c"), 101);
        let e = node_fee(true, u64::MAX, u64::MAX, u64::MAX).expect_err("overflow is refused, not wrapped");
        assert!(
            matches!(e, ContractError::Market { code, .. } if code == super::super::MarketCode::EArithmeticOverflow.code())
        );
        assert!(refund(false, 1, 2, 1, 1).is_err());
    }
}

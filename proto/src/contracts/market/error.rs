//! The market's refusals: Atoma's error names and abort codes (`EBase = 312012000`, db.move), plus
//! PRAG's own from 312012300 up for the checks Atoma does not make or leaves to an unnamed abort.

use crate::contracts::ContractError;

/// Atoma's `EBase`.
pub const E_BASE: u64 = 312_012_000;

macro_rules! codes {
    ($($name:ident = $k:expr),* $(,)?) => {
        /// One market refusal; `code()` is its abort number, `name()` its Atoma name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(clippy::enum_variant_names)]
        pub enum MarketCode { $($name),* }

        impl MarketCode {
            pub const ALL: &'static [MarketCode] = &[$(MarketCode::$name),*];

            pub fn code(self) -> u64 {
                match self { $(MarketCode::$name => E_BASE + $k),* }
            }

            pub fn name(self) -> &'static str {
                match self { $(MarketCode::$name => stringify!($name)),* }
            }
        }
    };
}

codes! {
    // Atoma, db.move:102–165.
    ENodeRegDisabled = 0,
    ENotAuthorized = 2,
    ETotalPermilleMustBeLessThan1000 = 7,
    ENodeAlreadyDisabled = 12,
    ENodeMustWaitBeforeDestroy = 13,
    ETaskDeprecated = 15,
    ENodeAlreadySubscribedToTask = 16,
    ETaskNotFound = 17,
    ENodeNotSubscribedToTask = 18,
    ENotEnoughEpochsPassed = 19,
    ETaskNotDeprecated = 20,
    ENoNodesSubscribedToTask = 21,
    ENoNodesEligibleForTask = 22,
    ENodeNotSelectedForStack = 23,
    EStackInSettlementDispute = 24,
    ETooManyComputedUnits = 25,
    EStackDoesNotRequireSamplingConsensus = 26,
    EStackNotFound = 27,
    EStackNotInSettlementDispute = 28,
    EStackDisputePeriodOver = 29,
    ENodeNotSelectedForAttestation = 30,
    EStackInDispute = 31,
    EStackDisputePeriodIsNotOver = 32,
    ENodeNotSelectedForSettlement = 33,
    ETaskAlreadyDeprecated = 34,
    EInvalidTaskRole = 35,
    EInvalidSecurityLevel = 36,
    EInvalidPricePerComputeUnit = 37,
    ENodeDoesNotMeetTaskRequirements = 38,
    EInvalidComputeUnits = 39,
    EInsufficientBalance = 40,
    EInvalidCommittedStackProof = 41,
    EInvalidStackMerkleLeaf = 42,
    EInvalidMinimumReputationScore = 43,
    ETaskIsPublic = 44,
    ENodeNotWhitelistedForTask = 45,
    EStackAlreadyInDispute = 46,
    ETaskSecurityLevelNotSamplingConsensus = 47,
    ETaskIsNotConfidentialCompute = 51,
    EInvalidNumClaimedComputeUnitsPerStack = 52,
    EStackAlreadyClaimed = 53,
    ENodeNotSelectedForClaim = 54,
    // Atoma's legacy settlement path (settlement.move:14–23), reused for the dispute oracle.
    ENotAnOracle = 205,
    // PRAG.
    ENodeNotFound = 300,
    ENotAdmittedStorageNode = 301,
    ENodeAlreadyRegistered = 302,
    EInsufficientCollateral = 303,
    EStackSettlementDeadlinePassed = 304,
    EStackNotExpired = 305,
    ENotStackOwner = 306,
    ENodeAlreadyAttested = 307,
    ECommitmentMatches = 308,
    ENotAMarketNode = 309,
    EOracleIsParticipant = 310,
    EInvalidParameter = 311,
    EArithmeticOverflow = 312,
    ETooManyItems = 313,
}

/// How a client should read a refusal (the node maps it to an HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The signer may not do this (not the admin, not the selected node, not an oracle, …).
    Forbidden,
    /// The node, task, stack or ticket does not exist.
    NotFound,
    /// Anything else: a rule, a value, a state or a time that does not allow it.
    Refused,
}

impl MarketCode {
    pub fn from_code(code: u64) -> Option<MarketCode> {
        MarketCode::ALL.iter().copied().find(|c| c.code() == code)
    }

    pub fn class(self) -> Class {
        use MarketCode::*;
        match self {
            ENotAuthorized
            | ENodeNotSelectedForStack
            | ENodeNotSelectedForAttestation
            | ENodeNotSelectedForSettlement
            | ENodeNotSelectedForClaim
            | ENotAnOracle
            | ENotAdmittedStorageNode
            | ENotStackOwner
            | EOracleIsParticipant
            | ENodeNotWhitelistedForTask
            | ENotAMarketNode => Class::Forbidden,
            ETaskNotFound | EStackNotFound | ENodeNotFound => Class::NotFound,
            _ => Class::Refused,
        }
    }

    /// This refusal, with what was wrong.
    pub fn err(self, detail: impl Into<String>) -> ContractError {
        ContractError::Market { code: self.code(), name: self.name().to_string(), detail: detail.into() }
    }
}

/// Checked arithmetic's refusal.
pub fn overflow() -> ContractError {
    MarketCode::EArithmeticOverflow.err("amounts too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_atomas_and_distinct() {
        assert_eq!(MarketCode::ENoNodesEligibleForTask.code(), 312_012_022);
        assert_eq!(MarketCode::ENodeNotSelectedForClaim.code(), 312_012_054);
        assert_eq!(MarketCode::ENotAnOracle.code(), 312_012_205);
        let mut seen = std::collections::HashSet::new();
        assert!(MarketCode::ALL.iter().all(|c| seen.insert(c.code())));
        let e = MarketCode::ENoNodesEligibleForTask.err("none at or under your price");
        assert_eq!(e.to_string(), "ENoNodesEligibleForTask (312012022): none at or under your price");
    }
}

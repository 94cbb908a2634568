//! Fault injection for the verifiable-retrieval tests: a node that lies about the answers it is
//! paid for, in one way each. Compiled only into `prag-faulty` (feature `fault-injection`).

use std::sync::Arc;

use prag_node::market::AnswerFault;
use prag_proto::api::Hit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultKind {
    /// No fault (the build is faulty, the node is honest).
    None,
    /// Leaves out the last hit.
    DropHit,
    /// Replaces the best hit's chunk by the next-best chunk (keeping the best one's score).
    SubstituteChunk,
    /// Charges twice the units it served.
    InflateUnits,
}

struct Fault(FaultKind);

impl AnswerFault for Fault {
    fn name(&self) -> &str {
        match self.0 {
            FaultKind::None => "none",
            FaultKind::DropHit => "drop-hit",
            FaultKind::SubstituteChunk => "substitute-chunk",
            FaultKind::InflateUnits => "inflate-units",
        }
    }

    fn alter(&self, hits: &mut Vec<Hit>, spare: Option<Hit>, units: &mut u64) {
        match self.0 {
            FaultKind::None => {}
            FaultKind::DropHit => {
                hits.pop();
            }
            FaultKind::SubstituteChunk => {
                if let (Some(first), Some(spare)) = (hits.first_mut(), spare) {
                    let score = first.score;
                    *first = Hit { score, ..spare };
                }
            }
            FaultKind::InflateUnits => *units = units.saturating_mul(2),
        }
    }
}

pub fn hook(kind: FaultKind) -> Option<Arc<dyn AnswerFault>> {
    match kind {
        FaultKind::None => None,
        k => Some(Arc::new(Fault(k))),
    }
}

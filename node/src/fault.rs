//! The seam for fault-injection tests: what a node built for them does to the answers it is paid
//! for. The node itself has no fault; only the `prag-faulty` test binary supplies one.

use prag_proto::api::Hit;

/// What a node built for fault-injection tests does to the answers it serves (never present in
/// a release build: see the `prag-faulty` binary).
pub trait AnswerFault: Send + Sync {
    fn name(&self) -> &str;
    /// Alters an answer before it is logged, receipted and sent. `spare` is the next-best chunk.
    fn alter(&self, hits: &mut Vec<Hit>, spare: Option<Hit>, units: &mut u64);
}

//! The collections on this node: the registry (by name and by id, and the one path by which a
//! collection comes into being, new or adopted from a peer), each collection's files, index and
//! metadata, loading them at start, and searching what is held here.

mod collection;
pub mod kernel;
mod load;
mod registry;
mod search;
mod snapshot;

pub(crate) use collection::ReadyDocument;
pub use collection::Snapshot;
pub use collection::{Collection, validate_collection_name};
pub use registry::Collections;
pub(crate) use registry::{NewCollection, Quota};
pub(crate) use search::{MAX_DEPTH, SearchHits, ShardQuery};

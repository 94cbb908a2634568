//! Chunking that follows the document: headings, sections, paragraphs, list items, code blocks
//! and tables are the boundaries ([`structure`]); blocks are packed into chunks of at most the
//! token budget, a block split only when it alone is larger, and then between lines, never inside
//! one unless a single line is over budget ([`pack`]). Every chunk starts with its context — the
//! document's title and the section path — so both the dense and the keyword vector know where it
//! came from, and so does whoever reads the answer.

pub mod pack;
pub mod structure;

pub use pack::{Tokens, chunk_document};

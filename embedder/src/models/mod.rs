//! Model architectures, one file each.

pub mod bert;

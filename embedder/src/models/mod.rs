//! Model architectures, one file each.

pub mod bert;
pub mod cpu_ops;

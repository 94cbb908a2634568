//! Model architectures, one file each.

pub mod attention;
pub mod bert;
pub mod cpu_ops;
pub mod int8;

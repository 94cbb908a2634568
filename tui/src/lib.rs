//! PRAG operator console.

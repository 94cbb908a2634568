//! PRAG wire and contract types.

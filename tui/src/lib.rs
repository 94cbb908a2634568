//! `prag console`: a ratatui dashboard of PRAG nodes, fed only by their HTTP API.
//!
//! Shape (after trippy): a feed task per node turns the node's server-sent events into
//! [`feed::Update`]s; each tick the main loop folds the updates into [`app::App`] and draws it with
//! pure `render(frame, area, &app)` functions (`ui`). Nothing on the render path touches the
//! network or the clock: times shown are relative to the node's own snapshot time.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]

pub mod app;
pub mod feed;
pub mod keyfile;
pub mod ui;

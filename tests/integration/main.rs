//! bottle's integration tests, compiled into one binary with one module per area.

mod cli;
mod demo;
mod e2e;
mod gate_scripts;
mod plugins;
mod support;

//! bottle's core: everything that does not depend on a container runtime.
//!
//! Data flows one way: **manifest -> validate -> plan -> backend applies the plan**.
//!
//! - [`manifest`] reads `bottle.toml` and validates it, reporting every problem with its
//!   file, line, field and a hint ([`diag`]).
//! - [`planner`] turns one bottle into a [`plan::Plan`]: plain serde data naming every
//!   network, container, file, label and limit. No runtime type appears here.
//! - [`sidecar`] is the registry of sidecars: each describes itself as data (its name, its
//!   image recipes, its container and what the agent gets from it). [`sidecar::gate`] is
//!   the git-gate, with the one script set every backend copies into it.
//! - [`images`] holds the recipes of the images bottle builds.
//! - [`backend`] is the trait backends implement; the binary picks one by name.
//!
//! Backends depend on this crate, never the reverse.
#![deny(missing_docs)]

/// The git-gate, at its old path.
pub use sidecar::gate;

pub mod backend;
pub mod diag;
pub mod images;
pub mod interp;
pub mod manifest;
pub mod plan;
pub mod planner;
pub mod project;
pub mod quote;
pub mod sidecar;
pub mod template;

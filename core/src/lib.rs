//! bottle's core: everything that does not depend on a container runtime.
//!
//! Data flows one way: **manifest -> validate -> plan -> backend applies the plan**.
//!
//! - [`manifest`] reads `bottle.toml` and validates it, reporting every problem with its
//!   file, line, field and a hint ([`diag`]).
//! - [`planner`] turns one bottle into a [`plan::Plan`]: plain serde data naming every
//!   network, container, file, label and limit. No runtime type appears here.
//! - [`gate`] holds the [`gate::GitGate`] trait and the one script set (entrypoint,
//!   pre-receive hook, access hook) every backend copies into its gate.
//! - [`backend`] is the trait backends implement; the binary picks one by name.
//!
//! Backends depend on this crate, never the reverse.
#![deny(missing_docs)]

pub mod backend;
pub mod diag;
pub mod gate;
pub mod manifest;
pub mod plan;
pub mod planner;
pub mod quote;

//! The JSON messages that cross the boundary: one request type per table entry, the
//! plugin's self-description, and errors.
//!
//! Results reuse core's serde types ([`BottleStatus`](bottle_core::backend::BottleStatus),
//! [`Resource`](bottle_core::backend::Resource), the [`Plan`]); the
//! types here exist where core's are not serialisable (options, requests, errors). Unknown
//! fields are ignored on both sides, so adding an optional field is not an ABI change.

use bottle_core::backend::{BackendError, ExecRequest, UpOptions};
use bottle_core::plan::{Plan, ResourceKind};
use serde::{Deserialize, Serialize};

/// What a plugin says about itself (the answer of `info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The backend's name, as `--backend` takes it.
    pub name: String,
    /// One line for listings and errors.
    pub about: String,
    /// The plugin crate's own version.
    pub version: String,
    /// The [`bottle_core::plan::PLAN_FORMAT`] the plugin was built with; the host refuses a
    /// plugin that would misread its plans.
    pub plan_format: u32,
    /// The ABI version the plugin was built with (the same as its version symbol).
    pub abi_version: u32,
}

/// The request of `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpRequest {
    /// The plan to apply (identity keys included, base64 in the JSON).
    pub plan: Plan,
    /// [`UpOptions::keep_on_failure`].
    pub keep_on_failure: bool,
}

impl UpRequest {
    /// The request for `plan` with `options`.
    pub fn new(plan: &Plan, options: &UpOptions) -> UpRequest {
        UpRequest {
            plan: plan.clone(),
            keep_on_failure: options.keep_on_failure,
        }
    }

    /// The options as core's type.
    pub fn options(&self) -> UpOptions {
        UpOptions {
            keep_on_failure: self.keep_on_failure,
        }
    }
}

/// The request of `down`, `ps` and `cleanup`: the [`Scope`](bottle_core::backend::Scope)
/// they act on (its project, bottle and flags), as core serialises it.
pub type ScopeRequest = bottle_core::backend::Scope;

/// The request of `exec` ([`ExecRequest`] as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecWire {
    /// The bottle's project.
    pub project: String,
    /// The bottle's slug.
    pub slug: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Attach a terminal.
    pub tty: bool,
}

impl From<&ExecRequest> for ExecWire {
    fn from(r: &ExecRequest) -> ExecWire {
        ExecWire {
            project: r.project.clone(),
            slug: r.slug.clone(),
            command: r.command.clone(),
            tty: r.tty,
        }
    }
}

impl ExecWire {
    /// The request as core's type.
    pub fn into_request(self) -> ExecRequest {
        ExecRequest {
            project: self.project,
            slug: self.slug,
            command: self.command,
            tty: self.tty,
            ..Default::default()
        }
    }
}

/// A [`BackendError`] as JSON. Every variant of core's error has one here, so an error
/// keeps its kind (and its hint) across the boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WireError {
    /// [`BackendError::Leftovers`].
    Leftovers {
        /// The bottle's slug.
        slug: String,
        /// What was found.
        found: Vec<(ResourceKind, String)>,
    },
    /// [`BackendError::Engine`].
    Engine {
        /// What the backend was doing.
        action: String,
        /// The engine's message.
        message: String,
    },
    /// [`BackendError::Unavailable`].
    Unavailable {
        /// What failed.
        message: String,
        /// What to do.
        hint: String,
    },
    /// [`BackendError::NotRunning`].
    NotRunning {
        /// The bottle's slug.
        slug: String,
        /// The role looked for.
        role: String,
    },
    /// [`BackendError::Other`].
    Other {
        /// The message, worded for the user.
        message: String,
    },
}

impl WireError {
    /// An [`WireError::Other`] with this message.
    pub fn other(message: impl Into<String>) -> WireError {
        WireError::Other {
            message: message.into(),
        }
    }
}

impl From<BackendError> for WireError {
    fn from(e: BackendError) -> WireError {
        match e {
            BackendError::Leftovers { slug, found } => WireError::Leftovers { slug, found },
            BackendError::Engine { action, message } => WireError::Engine { action, message },
            BackendError::Unavailable { message, hint } => WireError::Unavailable { message, hint },
            BackendError::NotRunning { slug, role } => WireError::NotRunning { slug, role },
            BackendError::Other(message) => WireError::Other { message },
        }
    }
}

impl From<WireError> for BackendError {
    fn from(e: WireError) -> BackendError {
        match e {
            WireError::Leftovers { slug, found } => BackendError::Leftovers { slug, found },
            WireError::Engine { action, message } => BackendError::Engine { action, message },
            WireError::Unavailable { message, hint } => BackendError::Unavailable { message, hint },
            WireError::NotRunning { slug, role } => BackendError::NotRunning { slug, role },
            WireError::Other { message } => BackendError::Other(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_across_json() {
        let errors = [
            BackendError::Leftovers {
                slug: "s".into(),
                found: vec![(ResourceKind::Container, "c".into())],
            },
            BackendError::Engine {
                action: "a".into(),
                message: "m".into(),
            },
            BackendError::Unavailable {
                message: "m".into(),
                hint: "h".into(),
            },
            BackendError::NotRunning {
                slug: "s".into(),
                role: "agent".into(),
            },
            BackendError::Other("o".into()),
        ];
        for e in errors {
            let shown = e.to_string();
            let json = serde_json::to_vec(&WireError::from(e)).unwrap();
            let back: WireError = serde_json::from_slice(&json).unwrap();
            assert_eq!(BackendError::from(back).to_string(), shown);
        }
    }
}

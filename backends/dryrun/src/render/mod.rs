//! The printers: plan (or request) in, POSIX sh script out. Pure functions, no I/O.
//!
//! Every word of every command goes through [`words::q`] (that is `bottle_core::quote::sh`, the
//! `shlex` crate), constants included, so that no value from the plan reaches the shell
//! unquoted. The only text written raw is shell syntax of our own (`"$stage"`, redirections,
//! `if`/`fi`) and comments, where plan values are escaped onto one line by [`words::c`].
//!
//! - [`words`]: quoting a word, a command, a comment's value;
//! - [`script`]: the script being written, line by line;
//! - [`checks`]: what the printers rely on, checked before anything is printed;
//! - [`staging`]: the files written into the staging directory;
//! - [`up`]: the `up` script, section by section;
//! - [`manage`]: the `down`, `stop`, `start`, `cleanup`, `ps` and `exec` printers.

mod checks;
mod manage;
mod script;
mod staging;
mod up;
mod words;

pub use manage::{render_cleanup, render_down, render_exec, render_ps, render_start, render_stop};
pub use up::{render_up, render_up_with};

use bottle_core::quote::QuoteError;

/// A plan or request the CLI cannot express faithfully; nothing was printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A value holds a NUL byte, which no shell word can carry.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// A container or network name the engine would refuse, or one that could be read as an
    /// option or break the staging directory's layout.
    #[error("{kind} name {name:?} is not one the engine accepts\n  hint: use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    Name {
        /// `container` or `network`.
        kind: &'static str,
        /// The offending name.
        name: String,
    },
    /// Two containers share a name.
    #[error("the plan has two containers named {name}\n  hint: every container of a plan needs its own name")]
    DuplicateContainer {
        /// The shared name.
        name: String,
    },
    /// An image reference the CLI would read as an option.
    #[error("container {container}: image {image:?} is not an image reference\n  hint: an image reference starts with a letter or digit")]
    Image {
        /// The container.
        container: String,
        /// The image reference.
        image: String,
    },
    /// `entrypoint: Some(vec![])`, which the CLIs cannot express the way the engine APIs read it.
    #[error("container {container}: the entrypoint is an empty list, which the docker and podman CLIs cannot express the way the engine APIs read it\n  hint: leave the entrypoint unset (None) to keep the image's")]
    EmptyEntrypoint {
        /// The container.
        container: String,
    },
    /// An env or label key the CLI's `KEY=VALUE` form cannot carry.
    #[error("container {container}: {what} key {key:?} is empty or holds '=', which the CLI's KEY=VALUE form cannot carry")]
    Key {
        /// The container or network.
        container: String,
        /// `env` or `label`.
        what: &'static str,
        /// The key.
        key: String,
    },
    /// A file the script cannot stage.
    #[error("container {container}: file {path:?}: {why}")]
    File {
        /// The container.
        container: String,
        /// The file's path in the container.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// An `/etc/hosts` entry naming a container that does not run before this one, or a
    /// network that container is not on.
    #[error("container {container}: host entry {name:?} takes the address of {of} on {network}, which no earlier container of the plan has")]
    HostOf {
        /// The container holding the entry.
        container: String,
        /// The entry's host name.
        name: String,
        /// The container whose address it takes.
        of: String,
        /// The network of that address.
        network: String,
    },
    /// A network the podman CLI cannot create as planned: one with a route out but no
    /// address of the host on it.
    #[error("network {network}: planned with no address of the host on it and a route out; podman (netavark) can leave the host's address off an internal network only\n  hint: make the network internal, or let the host have an address on it")]
    HostlessNetwork {
        /// The network.
        network: String,
    },
    /// `exec` without a command.
    #[error("exec in bottle {slug}: no command given\n  hint: name the program to run in the agent, e.g. bash")]
    EmptyCommand {
        /// The bottle's slug.
        slug: String,
    },
}

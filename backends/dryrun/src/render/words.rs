//! Quoting: every word of every command, and plan values in comments.

use bottle_core::quote;

use super::RenderError;
use crate::Cli;

/// `rm -f -v`: docker's kills at once; podman's waits 10 s for a stop unless told
/// `--time 0`. `-v` removes the container's anonymous volumes (a read-only sidecar's
/// writable places) with it.
pub(super) fn rm_force(cli: Cli) -> Vec<&'static str> {
    match cli {
        Cli::Docker => vec!["docker", "rm", "-f", "-v"],
        Cli::Podman => vec!["podman", "rm", "-f", "-v", "--time", "0"],
    }
}

/// Quotes one shell word.
pub(super) fn q(value: &str) -> Result<String, RenderError> {
    Ok(quote::sh(value)?)
}

/// Quotes every word and joins them with spaces.
pub(super) fn qj<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<String, RenderError> {
    Ok(quote::sh_join(words)?)
}

/// A value made safe for a comment: one line, control characters escaped. Comments are never
/// executed, but a newline would end one.
pub(super) fn c(value: &str) -> String {
    value.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(c("a\nb\r\t"), "a\\nb\\r\\t");
        assert_eq!(c("demo"), "demo");
    }
}

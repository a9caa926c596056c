//! Quoting of values for the shell and for git's config files.
//!
//! Every value that comes from a manifest and ends up in a rendered script or printed
//! command goes through [`sh`]; none is pasted in raw. Quoting is done by the `shlex` crate;
//! the one input it cannot represent (a NUL byte) is an error, and validation already rejects
//! it, so in practice the error marks a bug rather than user input.

/// A value could not be quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// The value holds a NUL byte, which no shell word and no git config value can hold.
    #[error("{0:?} holds a NUL byte, which cannot be passed to a program")]
    Nul(String),
    /// The value holds a newline, which a git config subsection name cannot hold.
    #[error("{0:?} holds a line break, which a git config section name cannot hold")]
    Newline(String),
}

/// Quotes `value` as one POSIX shell word.
pub fn sh(value: &str) -> Result<String, QuoteError> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| QuoteError::Nul(value.to_owned()))
}

/// Quotes every word and joins them with spaces: a command line for `sh`.
pub fn sh_join<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<String, QuoteError> {
    let quoted: Result<Vec<String>, QuoteError> = words.into_iter().map(sh).collect();
    Ok(quoted?.join(" "))
}

/// Quotes `value` as a git config value: in double quotes, with `\`, `"`, newline and tab
/// escaped, so `#`, `;` and leading or trailing spaces survive.
pub fn git_config_value(value: &str) -> Result<String, QuoteError> {
    if value.contains('\0') {
        return Err(QuoteError::Nul(value.to_owned()));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// Quotes `value` as a git config subsection name (`[url "<value>"]`).
pub fn git_config_subsection(value: &str) -> Result<String, QuoteError> {
    if value.contains('\0') {
        return Err(QuoteError::Nul(value.to_owned()));
    }
    if value.contains('\n') {
        return Err(QuoteError::Newline(value.to_owned()));
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_round_trip() {
        for v in [
            "plain", "", "a'b", "$(id)", "`id`", "a\nb", "-x", "~", "a b", "\\",
        ] {
            let q = sh(v).unwrap();
            assert_eq!(shlex::split(&q).unwrap(), vec![v.to_owned()], "{q}");
        }
        assert!(sh("a\0b").is_err());
    }

    #[test]
    fn git_config_escapes() {
        assert_eq!(git_config_value(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(git_config_subsection("x\"y").unwrap(), r#""x\"y""#);
        assert!(git_config_subsection("x\ny").is_err());
    }
}

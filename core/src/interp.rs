//! `${VAR}` references in a bottle's `env` values: secrets taken from the environment of
//! `bottle up` rather than written into the manifest.
//!
//! Understood, as compose writes them: `${VAR}` (the variable must be set; set and empty
//! gives an empty value), `${VAR:-default}` (the default when unset or empty) and `$$` for a
//! literal `$`. Anything else after a `$`, bare `$VAR` included, is refused: compose reads
//! bare `$VAR` too, but a value such as a password holding a `$` would then silently lose
//! part of itself; an error that says "write `$$`" costs one edit. A default is plain text
//! (no `$`, no `}`).
//!
//! A value holding no reference is a literal and printed as one. A value holding one is a
//! host secret: the plan carries it as a [`Template`] next to its resolved bytes, so that
//! every printer shows (or replays) the reference, never the value.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One piece of a value: text, or a reference to a host variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Part {
    /// Literal text (a `$$` already turned into `$`).
    Text {
        /// The text.
        text: String,
    },
    /// `${var}` or `${var:-default}`.
    Var {
        /// The variable's name: letters, digits and `_`, not starting with a digit.
        var: String,
        /// The text used when the variable is unset or empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
    },
}

/// An `env` value as written, split into text and references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Template(pub Vec<Part>);

/// Whether `name` is a variable name a shell expands in `${...}`.
pub fn is_var_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

impl Template {
    /// Splits `text`; the error says what is wrong, in words for a manifest diagnostic.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                lit.push('$');
                rest = tail;
                continue;
            }
            let Some(inner) = after.strip_prefix('{') else {
                // The value is not echoed: it may be a password with a '$' in it.
                let named = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
                return Err(if named {
                    "a bare $NAME is not expanded: write ${NAME} to take it from the host's environment, or $$ for a literal $".to_owned()
                } else {
                    "a lone '$': write $$ for a literal $".to_owned()
                });
            };
            let Some(end) = inner.find('}') else {
                return Err("'${' without its closing '}'".to_owned());
            };
            let body = &inner[..end];
            let (var, default) = match body.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (body, None),
            };
            if !is_var_name(var) {
                return Err(format!(
                    "'${{{body}}}' is not understood: write ${{VAR}} or ${{VAR:-default}}, VAR made of letters, digits and '_'"
                ));
            }
            if let Some(d) = default.filter(|d| d.contains('$')) {
                return Err(format!(
                    "the default '{d}' of ${{{var}}} holds a '$': a default is plain text"
                ));
            }
            if !lit.is_empty() {
                parts.push(Part::Text {
                    text: std::mem::take(&mut lit),
                });
            }
            parts.push(Part::Var {
                var: var.to_owned(),
                default: default.map(str::to_owned),
            });
            rest = &inner[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text { text: lit });
        }
        Ok(Template(parts))
    }

    /// The text, when the value references no variable.
    pub fn literal(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.0 {
            match p {
                Part::Text { text } => s.push_str(text),
                Part::Var { .. } => return None,
            }
        }
        Some(s)
    }

    /// The variables referenced, in order.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Var { var, .. } => Some(var.as_str()),
            Part::Text { .. } => None,
        })
    }

    /// The value, with each variable read through `lookup`; the error is the name of the
    /// first variable that is unset and has no default.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut s = String::new();
        for p in &self.0 {
            match p {
                Part::Text { text } => s.push_str(text),
                Part::Var { var, default } => match (lookup(var), default) {
                    (Some(v), Some(d)) if v.is_empty() => s.push_str(d),
                    (Some(v), _) => s.push_str(&v),
                    (None, Some(d)) => s.push_str(d),
                    (None, None) => return Err(var.clone()),
                },
            }
        }
        Ok(s)
    }
}

/// The value as written in the manifest (`$$` for `$`): what `bottle config` shows.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                Part::Text { text } => f.write_str(&text.replace('$', "$$"))?,
                Part::Var { var, default: None } => write!(f, "${{{var}}}")?,
                Part::Var {
                    var,
                    default: Some(d),
                } => write!(f, "${{{var}:-{d}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("v".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn parses_and_resolves() {
        let t = Template::parse("a${SET}b${EMPTY:-d}c${NOPE:-x y}$$").unwrap();
        assert_eq!(t.resolve(env).unwrap(), "avbdcx y$");
        assert_eq!(t.to_string(), "a${SET}b${EMPTY:-d}c${NOPE:-x y}$$");
        assert_eq!(t.vars().collect::<Vec<_>>(), ["SET", "EMPTY", "NOPE"]);
        assert_eq!(t.literal(), None);
        assert_eq!(
            Template::parse("${EMPTY}").unwrap().resolve(env).unwrap(),
            ""
        );
        assert_eq!(
            Template::parse("${NOPE}x").unwrap().resolve(env),
            Err("NOPE".to_owned())
        );
        let lit = Template::parse("p$$w").unwrap();
        assert_eq!(lit.literal().as_deref(), Some("p$w"));
        assert_eq!(lit.to_string(), "p$$w");
        assert_eq!(Template::parse("").unwrap().literal().as_deref(), Some(""));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for (text, says) in [
            ("$HOME", "write ${NAME}"),
            ("a$", "lone '$'"),
            ("${A", "closing"),
            ("${1A}", "not understood"),
            ("${A:?err}", "not understood"),
            ("${A:-$B}", "plain text"),
            ("${}", "not understood"),
        ] {
            let e = Template::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}

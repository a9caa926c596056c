//! Filling the placeholders of a script kept as a file (`core/src/gate/*.sh`).
//!
//! A placeholder is `@NAME@` (capital letters, digits and `_`, starting with a letter).
//! Rendering is one pass over the template: a value is pasted in as it is and never
//! scanned again, so a manifest value that happens to contain `@HOOKS@` stays literal. It
//! fails on a placeholder the caller gave no value for and on a value no placeholder asked
//! for: a misspelled name on either side is an error at render, never a silent leftover.
//! A placeholder alone on its line takes a value that may span lines; an empty value leaves
//! an empty line.

use std::collections::BTreeSet;

/// A template could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template holds a placeholder no value was given for.
    #[error("template {template}: no value for placeholder @{name}@")]
    Unfilled {
        /// The template's name.
        template: String,
        /// The placeholder's name.
        name: String,
    },
    /// A value was given for a placeholder the template does not hold.
    #[error("template {template}: it has no placeholder @{name}@")]
    Unused {
        /// The template's name.
        template: String,
        /// The value's name.
        name: String,
    },
}

/// Fills every placeholder of `template` (named `name` in errors) from `values`.
pub fn render(
    name: &str,
    template: &str,
    values: &[(&str, &str)],
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut used = BTreeSet::new();
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match placeholder(after) {
            Some(key) => {
                let value = values
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| TemplateError::Unfilled {
                        template: name.to_owned(),
                        name: key.to_owned(),
                    })?;
                out.push_str(value);
                used.insert(key);
                rest = &after[key.len() + 1..];
            }
            None => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if let Some((key, _)) = values.iter().find(|(k, _)| !used.contains(k)) {
        return Err(TemplateError::Unused {
            template: name.to_owned(),
            name: (*key).to_owned(),
        });
    }
    Ok(out)
}

/// The placeholder name at the start of `s` (just after an `@`), when `s` continues with
/// `NAME@`.
fn placeholder(s: &str) -> Option<&str> {
    let end = s.find('@')?;
    let key = &s[..end];
    let mut chars = key.chars();
    let first = chars.next()?;
    (first.is_ascii_uppercase()
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
    .then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_placeholder_once() {
        let got = render("t", "a=@A@ b=@B_2@ @A@\n", &[("A", "1"), ("B_2", "two")]).unwrap();
        assert_eq!(got, "a=1 b=two 1\n");
    }

    #[test]
    fn leaves_shell_at_signs_alone() {
        let text = "exec cmd \"$@\" x@y.z @lower@ @ @\n";
        assert_eq!(render("t", text, &[]).unwrap(), text);
    }

    #[test]
    fn values_are_not_rescanned() {
        let got = render("t", "x=@A@ y=@B@", &[("A", "@B@"), ("B", "b")]).unwrap();
        assert_eq!(got, "x=@B@ y=b");
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error() {
        assert_eq!(
            render(
                "entrypoint.sh",
                "repos=@REPOS@\nhooks=@HOKS@\n",
                &[("REPOS", "/git")]
            ),
            Err(TemplateError::Unfilled {
                template: "entrypoint.sh".into(),
                name: "HOKS".into()
            })
        );
    }

    #[test]
    fn a_value_without_a_placeholder_is_an_error() {
        assert_eq!(
            render(
                "t",
                "repos=@REPOS@\n",
                &[("REPOS", "/git"), ("HOOKS", "/h")]
            ),
            Err(TemplateError::Unused {
                template: "t".into(),
                name: "HOOKS".into()
            })
        );
    }
}

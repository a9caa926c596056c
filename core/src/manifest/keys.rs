//! The manifest's shape, checked before serde reads it: every unknown key, every value of
//! the wrong type and every missing required key of a manifest, in one run.
//!
//! serde stops at the first problem (`deny_unknown_fields`, a type mismatch) and says it in
//! its own words (`expected i64`), so a manifest with seven mistakes would take seven runs
//! to fix. This walks the parsed TOML (with spans) against [`MANIFEST`] and reports every
//! problem with its full field path (`bottles.demo.git[1].max_push_mb`), its line and plain
//! words. Only a manifest that passes reaches serde, which then cannot fail on shape. The
//! shape must list every key the raw types in `mod.rs` and `cred.rs` accept, with their
//! types: the tests parse a manifest setting every key, so a key added there and forgotten
//! here fails them.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// What a value in the manifest may hold.
enum Shape {
    /// Only these keys: each with its shape, and whether it must be there.
    Table(&'static [(&'static str, Shape, Need)]),
    /// Any key (a bottle's name), each of this shape.
    Named(&'static Shape),
    /// An array of values of this shape.
    ArrayOf(&'static Shape),
    /// A table of free keys (`env`, `extra_hosts`), each value a string.
    StrMap,
    /// A string.
    Str,
    /// A whole number.
    Int,
}

/// Whether a key must be present.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
}

use Need::{Optional as Opt, Required as Req};
use Shape::{ArrayOf, Int, Named, Str, StrMap, Table};

const STRINGS: Shape = ArrayOf(&Str);

const ROUTE: Shape = Table(&[
    ("name", Str, Req),
    ("upstream", Str, Req),
    ("header", Str, Req),
    ("format", Str, Opt),
    ("secret_env", Str, Opt),
    ("secret_file", Str, Opt),
    ("agent_env", Str, Opt),
    ("ca_file", Str, Opt),
]);

const GIT: Shape = Table(&[
    ("name", Str, Req),
    ("upstream", Str, Req),
    ("identity_file", Str, Req),
    ("known_host_key", Str, Opt),
    ("extra_hosts", StrMap, Opt),
    ("max_push_mb", Int, Opt),
    ("max_scan_mb", Int, Opt),
    ("scan_timeout_s", Int, Opt),
    ("max_archive_depth", Int, Opt),
    ("accept_fingerprints", STRINGS, Opt),
    ("accept_paths", STRINGS, Opt),
]);

const BOTTLE: Shape = Table(&[
    ("image", Str, Req),
    ("command", STRINGS, Opt),
    ("env", StrMap, Opt),
    ("env_file", Str, Opt),
    ("memory", Str, Opt),
    ("pids_limit", Int, Opt),
    ("cap_add", STRINGS, Opt),
    ("gate_memory", Str, Opt),
    ("git", ArrayOf(&GIT), Opt),
    (
        "egress",
        Table(&[
            ("allow", STRINGS, Opt),
            ("deny", STRINGS, Opt),
            ("allow_private", STRINGS, Opt),
        ]),
        Opt,
    ),
    (
        "cred_proxy",
        Table(&[
            ("routes", ArrayOf(&ROUTE), Opt),
            ("allow_private", STRINGS, Opt),
        ]),
        Opt,
    ),
]);

const MANIFEST: Shape = Table(&[
    (
        "settings",
        Table(&[
            ("backend", Str, Opt),
            ("podman_socket", Str, Opt),
            ("project", Str, Opt),
        ]),
        Opt,
    ),
    ("bottles", Named(&BOTTLE), Opt),
]);

/// One problem of shape: where, its field path, what is wrong and what to do.
pub(super) struct Problem {
    pub span: Range<usize>,
    pub field: String,
    pub message: String,
    pub hint: String,
}

/// Every problem of shape in `source`, or `None` when it is not TOML (serde says why then).
pub(super) fn check(source: &str) -> Option<Vec<Problem>> {
    let root = DeTable::parse(source).ok()?;
    let mut out = Vec::new();
    let whole = 0..0;
    walk_table(root.get_ref(), &whole, &MANIFEST, "", &mut out);
    Some(out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `table`, at `span` (its header or inline braces), against the table shape `shape`.
fn walk_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    shape: &Shape,
    prefix: &str,
    out: &mut Vec<Problem>,
) {
    for (key, value) in table {
        let name: &str = key.get_ref();
        let field = join(prefix, name);
        match shape {
            Table(keys) => match keys.iter().find(|(k, _, _)| *k == name) {
                Some((_, inner, _)) => walk(value, inner, &field, out),
                None => out.push(Problem {
                    span: key.span(),
                    message: format!("unknown key `{name}`"),
                    hint: format!(
                        "remove it or fix its spelling; the keys here are: {} (docs/manifest.md lists every key)",
                        keys.iter().map(|(k, _, _)| *k).collect::<Vec<_>>().join(", ")
                    ),
                    field,
                }),
            },
            Named(inner) => walk(value, inner, &field, out),
            StrMap => walk(value, &Str, &field, out),
            ArrayOf(_) | Str | Int => {}
        }
    }
    if let Table(keys) = shape {
        for (k, _, need) in keys.iter() {
            if *need == Req && !table.keys().any(|key| key.get_ref() == k) {
                out.push(Problem {
                    span: span.clone(),
                    field: join(prefix, k),
                    message: format!(
                        "the key `{k}` is missing{}",
                        if prefix.is_empty() {
                            String::new()
                        } else {
                            format!(" in {prefix}")
                        }
                    ),
                    hint: format!("add {k} = ...; docs/manifest.md says what it holds"),
                });
            }
        }
    }
}

fn walk(value: &Spanned<DeValue<'_>>, shape: &Shape, field: &str, out: &mut Vec<Problem>) {
    match (value.get_ref(), shape) {
        (DeValue::Table(t), Table(_) | Named(_) | StrMap) => {
            walk_table(t, &value.span(), shape, field, out)
        }
        (DeValue::Array(items), ArrayOf(inner)) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, inner, &format!("{field}[{i}]"), out);
            }
        }
        (DeValue::String(_), Str) | (DeValue::Integer(_), Int) => {}
        (got, want) => out.push(Problem {
            span: value.span(),
            field: field.to_owned(),
            message: format!("must be {}, got {}", expected(want), describe(got)),
            hint: hint(want),
        }),
    }
}

fn expected(shape: &Shape) -> &'static str {
    match shape {
        Table(_) => "a table",
        Named(_) => "a table of bottles, [bottles.NAME]",
        ArrayOf(inner) => match inner {
            Str => "a list of strings",
            _ => "a list of tables, [[...]]",
        },
        StrMap => "a table of strings, { KEY = \"value\" }",
        Str => "a string",
        Int => "a whole number",
    }
}

fn hint(shape: &Shape) -> String {
    match shape {
        Str => "quote it: \"...\"".to_owned(),
        Int => "write the number without quotes or a fraction, e.g. 10".to_owned(),
        ArrayOf(Str) => "write a list in brackets, e.g. [\"a\", \"b\"]".to_owned(),
        _ => "see docs/manifest.md for what it holds".to_owned(),
    }
}

/// A value as the message shows it: its kind, and short values themselves.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => {
            let s: &str = s;
            if s.chars().count() <= 40 {
                format!("a string {:?}", s)
            } else {
                "a string".to_owned()
            }
        }
        DeValue::Integer(i) => format!("a whole number {i}"),
        DeValue::Float(f) => format!("a number with a fraction {f}"),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("a date {d}"),
        DeValue::Array(_) => "a list".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

//! Every unknown key of a manifest, in one run.
//!
//! serde stops at the first unknown key (`deny_unknown_fields`), so a manifest with seven
//! misspelt keys would take seven runs to fix. Before serde reads the file, this walks the
//! parsed TOML (with spans) against the manifest's shape and reports every key that has no
//! place, with its full field path, its line and the keys that do belong there. The shape
//! must list every key the raw types in `mod.rs` and `cred.rs` accept: the tests parse a
//! manifest setting every key, so a key added there and forgotten here fails them.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// What a value in the manifest may hold.
enum Shape {
    /// Only these keys, each of its shape.
    Table(&'static [(&'static str, Shape)]),
    /// Any key (a bottle's name), each of this shape.
    Named(&'static Shape),
    /// An array of tables of this shape.
    ArrayOf(&'static Shape),
    /// Anything (a string, a list, a table of free keys such as `env`): serde checks it.
    Value,
}

use Shape::{ArrayOf, Named, Table, Value};

const ROUTE: Shape = Table(&[
    ("name", Value),
    ("upstream", Value),
    ("header", Value),
    ("format", Value),
    ("secret_env", Value),
    ("secret_file", Value),
    ("agent_env", Value),
    ("ca_file", Value),
]);

const GIT: Shape = Table(&[
    ("name", Value),
    ("upstream", Value),
    ("identity_file", Value),
    ("known_host_key", Value),
    ("extra_hosts", Value),
    ("max_push_mb", Value),
    ("max_scan_mb", Value),
    ("scan_timeout_s", Value),
    ("max_archive_depth", Value),
    ("accept_fingerprints", Value),
    ("accept_paths", Value),
]);

const BOTTLE: Shape = Table(&[
    ("image", Value),
    ("command", Value),
    ("env", Value),
    ("memory", Value),
    ("pids_limit", Value),
    ("cap_add", Value),
    ("gate_memory", Value),
    ("git", ArrayOf(&GIT)),
    (
        "egress",
        Table(&[("allow", Value), ("deny", Value), ("allow_private", Value)]),
    ),
    (
        "cred_proxy",
        Table(&[("routes", ArrayOf(&ROUTE)), ("allow_private", Value)]),
    ),
]);

const MANIFEST: Shape = Table(&[
    (
        "settings",
        Table(&[
            ("backend", Value),
            ("podman_socket", Value),
            ("project", Value),
        ]),
    ),
    ("bottles", Named(&BOTTLE)),
]);

/// One key with no place: where, its field path, and the keys that belong there.
pub(super) struct Unknown {
    pub span: Range<usize>,
    pub field: String,
    pub key: String,
    pub known: Vec<&'static str>,
}

/// Every unknown key of `source`, or `None` when it is not TOML (serde says why then).
pub(super) fn unknown_keys(source: &str) -> Option<Vec<Unknown>> {
    let root = DeTable::parse(source).ok()?;
    let mut out = Vec::new();
    walk_table(root.get_ref(), &MANIFEST, "", &mut out);
    Some(out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(table: &DeTable<'_>, shape: &Shape, prefix: &str, out: &mut Vec<Unknown>) {
    for (key, value) in table {
        let name: &str = key.get_ref();
        let field = join(prefix, name);
        match shape {
            Table(keys) => match keys.iter().find(|(k, _)| *k == name) {
                Some((_, inner)) => walk(value, inner, &field, out),
                None => out.push(Unknown {
                    span: key.span(),
                    field,
                    key: name.to_owned(),
                    known: keys.iter().map(|(k, _)| *k).collect(),
                }),
            },
            Named(inner) => walk(value, inner, &field, out),
            ArrayOf(_) | Value => {}
        }
    }
}

fn walk(value: &Spanned<DeValue<'_>>, shape: &Shape, field: &str, out: &mut Vec<Unknown>) {
    match (value.get_ref(), shape) {
        (DeValue::Table(t), Table(_) | Named(_)) => walk_table(t, shape, field, out),
        (DeValue::Array(items), ArrayOf(inner)) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, inner, &format!("{field}[{i}]"), out);
            }
        }
        // A value of the wrong type is serde's to report, with its own words.
        _ => {}
    }
}

//! The settings reference, generated from the code: every table of
//! [`Settings`](super::Settings) is declared once with [`settings!`], which
//! makes the struct, its `Default`, and the key list this module renders as
//! the book's settings chapter (`docs/book/src/manifests/settings.md`). A test
//! compares that file with [`markdown`], so the page cannot drift from the
//! code; another checks every range it states against the validator.

use serde::Serialize;

/// Declares a settings table: the struct (serde, `deny_unknown_fields`, every
/// key optional), its `Default` from the values written beside the keys, and
/// its [`SettingsTable`] documentation. A key may state its accepted range,
/// `, range "[1, 100000]"`, in interval notation; `validate` enforces it and
/// a test checks that it does.
macro_rules! settings {
    (
        $(#[doc = $doc:literal])*
        #[table = $table:literal]
        pub struct $name:ident {
            $(
                $(#[doc = $key_doc:literal])*
                pub $key:ident: $ty:ty = $default:expr $(, range $range:literal)?;
            )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[doc = $key_doc])* pub $key: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $key: $default, )* }
            }
        }

        impl $crate::manifest::reference::SettingsTable for $name {
            const TABLE: &'static str = $table;
            const DOC: &'static str = concat!($($doc, "\n",)*);

            fn keys() -> Vec<$crate::manifest::reference::KeyDoc> {
                let defaults = $crate::manifest::reference::defaults(&Self::default());
                vec![$(
                    $crate::manifest::reference::KeyDoc {
                        name: stringify!($key),
                        kind: <$ty as $crate::manifest::reference::SettingType>::describe(),
                        default: defaults.get(stringify!($key)).cloned(),
                        range: $crate::manifest::reference::first(&[$($range)?]),
                        doc: concat!($($key_doc, "\n",)*),
                        nested: <$ty as $crate::manifest::reference::SettingType>::nested(),
                        names: <$ty as $crate::manifest::reference::SettingType>::names(),
                    },
                )*]
            }
        }

        impl $crate::manifest::reference::SettingType for $name {
            fn describe() -> String {
                format!("table `[{}]`", $table)
            }

            fn nested() -> Option<$crate::manifest::reference::Nested> {
                Some($crate::manifest::reference::Nested::of::<$name>())
            }
        }
    };
}
pub(crate) use settings;

/// One key of a settings table, as the reference shows it.
#[derive(Debug, Clone)]
pub struct KeyDoc {
    /// The key as written in a manifest.
    pub name: &'static str,
    /// Its TOML type, e.g. `integer ≥ 0` or one of a choice's names.
    pub kind: String,
    /// Its default value (none: unset by default).
    pub default: Option<toml::Value>,
    /// The accepted range in interval notation, where the validator checks one.
    pub range: Option<&'static str>,
    /// Its documentation, one `///` line per line.
    pub doc: &'static str,
    /// The table this key opens, if it is one.
    pub nested: Option<Nested>,
    /// The names it accepts, if it is a choice.
    pub names: &'static [&'static str],
}

/// A settings table reached through a key.
#[derive(Debug, Clone, Copy)]
pub struct Nested {
    /// Its dotted name, e.g. `data.shift`.
    pub table: &'static str,
    /// Its documentation.
    pub doc: &'static str,
    /// Its keys.
    pub keys: fn() -> Vec<KeyDoc>,
}

impl Nested {
    /// The table `T`.
    pub fn of<T: SettingsTable>() -> Nested {
        Nested { table: T::TABLE, doc: T::DOC, keys: T::keys }
    }
}

/// A table declared with [`settings!`].
pub trait SettingsTable: Default + Serialize {
    /// Its dotted name in a manifest (empty for the root).
    const TABLE: &'static str;
    /// Its documentation.
    const DOC: &'static str;
    /// Its keys, in declaration order.
    fn keys() -> Vec<KeyDoc>;
}

/// A type a setting may have, described in TOML's terms.
pub trait SettingType {
    /// The TOML type, e.g. `float` or ``one of `sgd`, `adam` ``.
    fn describe() -> String;

    /// The settings table this type is, if it is one.
    fn nested() -> Option<Nested> {
        None
    }

    /// The names it accepts, if it is a choice.
    fn names() -> &'static [&'static str] {
        &[]
    }
}

/// The range a key states, if any (the macro's optional `range`).
pub fn first(ranges: &[&'static str]) -> Option<&'static str> {
    ranges.first().copied()
}

/// The default values of a table's keys, as TOML.
pub fn defaults<T: Serialize>(table: &T) -> toml::Table {
    toml::Table::try_from(table).unwrap_or_default()
}

macro_rules! described {
    ($($ty:ty => $text:literal),* $(,)?) => {
        $(impl SettingType for $ty {
            fn describe() -> String {
                $text.to_string()
            }
        })*
    };
}

described! {
    u64 => "integer ≥ 0",
    u32 => "integer ≥ 0",
    usize => "integer ≥ 0",
    i64 => "integer",
    f64 => "float",
    f32 => "float",
    bool => "boolean",
    String => "string",
    toml::Table => "table",
    toml::Value => "any value",
}

impl<T: SettingType> SettingType for Option<T> {
    fn describe() -> String {
        T::describe()
    }

    fn nested() -> Option<Nested> {
        T::nested()
    }

    fn names() -> &'static [&'static str] {
        T::names()
    }
}

impl<T: SettingType> SettingType for Vec<T> {
    fn describe() -> String {
        format!("array of {}", T::describe())
    }

    fn nested() -> Option<Nested> {
        T::nested()
    }

    fn names() -> &'static [&'static str] {
        T::names()
    }
}

impl<T: SettingType, const N: usize> SettingType for [T; N] {
    fn describe() -> String {
        format!("array of {N} × {}", T::describe())
    }
}

/// The names of a choice, as the reference lists them.
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!("one of {}", quoted.join(", "))
}

/// A key of a manifest that no settings table declares.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownKey {
    /// The dotted path of the table it is in (empty for the root).
    pub table: String,
    /// The key.
    pub key: String,
    /// The keys that table declares.
    pub known: Vec<&'static str>,
}

/// The first key of `table` (a manifest's settings, read against `root`)
/// that no declared table has, depth first in the table's order; tables
/// and arrays of tables are followed, free-form values (`toml::Table`) not.
pub fn unknown_key(root: Nested, table: &toml::Table) -> Option<UnknownKey> {
    unknown_in(root, table, "")
}

fn unknown_in(schema: Nested, table: &toml::Table, path: &str) -> Option<UnknownKey> {
    let keys = (schema.keys)();
    for (name, value) in table {
        let Some(doc) = keys.iter().find(|k| k.name == name) else {
            let known = keys.iter().map(|k| k.name).collect();
            return Some(UnknownKey { table: path.to_string(), key: name.clone(), known });
        };
        let Some(nested) = doc.nested else { continue };
        let inner = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
        let found = match value {
            toml::Value::Table(t) => unknown_in(nested, t, &inner),
            toml::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| item.as_table().and_then(|t| unknown_in(nested, t, &format!("{inner}[{i}]")))),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The names the key at dotted `path` (array indices ignored) accepts, if
/// it is a choice.
pub fn choice_names(root: Nested, path: &str) -> &'static [&'static str] {
    let mut schema = Some(root);
    let mut names: &'static [&'static str] = &[];
    for part in path.split('.').map(|p| p.split('[').next().unwrap_or(p)) {
        let Some(doc) = schema.and_then(|s| (s.keys)().into_iter().find(|k| k.name == part)) else { return &[] };
        (names, schema) = (doc.names, doc.nested);
    }
    names
}

/// Every table reachable from `T`, depth first, in declaration order.
pub fn tables<T: SettingsTable>() -> Vec<Nested> {
    let mut out = Vec::new();
    collect(Nested::of::<T>(), &mut out);
    out
}

fn collect(table: Nested, out: &mut Vec<Nested>) {
    if out.iter().any(|t| t.table == table.table) {
        return;
    }
    out.push(table);
    for key in (table.keys)() {
        if let Some(nested) = key.nested {
            collect(nested, out);
        }
    }
}

/// The settings reference of the tables reachable from `T` (the root
/// itself, named by an empty string, is left out), as Markdown.
pub fn markdown<T: SettingsTable>() -> String {
    let mut out = String::from(HEADER);
    for table in tables::<T>().into_iter().filter(|t| !t.table.is_empty()) {
        section(&mut out, table);
    }
    out
}

const HEADER: &str =
    "<!-- Generated by `make docs` from the settings! tables of crates/config/src/manifest/settings.rs; \
a test fails when it is out of date. Do not edit by hand. -->\n\n# Settings reference\n\n\
Every key a manifest's tables accept, with its type, its default and the range `tessera check` \
enforces (interval notation; other rules that tie keys together are named in the key's text). \
A key left out takes its default; an unknown key is an error with a did-you-mean hint.\n";

fn section(out: &mut String, table: Nested) {
    out.push_str(&format!("\n## `[{}]`\n\n{}\n\n", table.table, paragraph(table.doc)));
    out.push_str("| Key | Type | Default | Range | |\n|---|---|---|---|---|\n");
    for key in (table.keys)() {
        out.push_str(&row(&key));
    }
}

fn row(key: &KeyDoc) -> String {
    format!(
        "| `{}` | {} | {} | {} | {} |\n",
        key.name,
        key.kind,
        default_text(key),
        key.range.map_or(String::new(), |r| format!("`{r}`")),
        cell(key.doc)
    )
}

fn default_text(key: &KeyDoc) -> String {
    match (&key.default, key.nested) {
        (_, Some(nested)) if !key.kind.starts_with("array") => format!("see `[{}]`", nested.table),
        (None, _) => "unset".to_string(),
        (Some(value), _) => format!("`{}`", cell(&inline(value))),
    }
}

/// A value on one line, as a manifest would write it inline.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) if t.is_empty() => "{}".to_string(),
        toml::Value::Table(_) => "{ … }".to_string(),
        toml::Value::Array(items) if items.iter().any(|v| v.is_table()) => format!("[{} tables]", items.len()),
        other => other.to_string(),
    }
}

/// Doc lines joined into one paragraph.
fn paragraph(doc: &str) -> String {
    doc.lines().map(str::trim).collect::<Vec<_>>().join(" ").trim().to_string()
}

/// A paragraph fit for a table cell.
fn cell(text: &str) -> String {
    paragraph(text).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Settings;

    const BOOK_PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/book/src/manifests/settings.md");

    /// `make docs` writes the page (BLESS=1); `make test` fails when the
    /// code's tables and the page differ.
    #[test]
    fn the_books_settings_reference_is_current() {
        let page = markdown::<Settings>();
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(BOOK_PAGE, &page).expect("write the settings reference");
        }
        let written = std::fs::read_to_string(BOOK_PAGE).unwrap_or_default();
        assert!(written == page, "docs/book/src/manifests/settings.md is out of date: run `make docs` and commit it");
    }

    #[test]
    fn every_key_of_every_table_is_documented() {
        for table in tables::<Settings>() {
            for key in (table.keys)() {
                assert!(!key.doc.trim().is_empty(), "[{}] {} has no doc comment", table.table, key.name);
            }
        }
    }

    /// Settings under which a table's ranges are checked (a `[pretrain]`
    /// range only matters when pretraining is on).
    fn context(table: &str) -> &'static str {
        match table {
            "data.mnist1d" => "[data]\nsource = \"mnist1d\"",
            "reference" => "[reference.model]\nkind = \"mlp\"",
            "pretrain" => "[pretrain]\nmethod = \"simclr\"",
            "population" => "[experiment]\nkind = \"population\"",
            "graph" => "[experiment]\nkind = \"graph\"",
            _ => "",
        }
    }

    /// The problem keys `validate` finds with `table.key = value`.
    fn problems_with(table: &str, key: &str, value: toml::Value) -> Vec<String> {
        let mut root: toml::Table = toml::from_str(context(table)).unwrap();
        let mut at = &mut root;
        for part in table.split('.') {
            at = at.entry(part).or_insert(toml::Value::Table(Default::default())).as_table_mut().unwrap();
        }
        at.insert(key.to_string(), value);
        let settings: Settings = toml::Value::Table(root).try_into().expect("the settings deserialize");
        crate::validate::settings(&settings, std::path::Path::new("."), || 0).into_iter().map(|p| p.key).collect()
    }

    /// The values just outside `[a, b]`-style `range`, and the closed
    /// bounds, as TOML values of the key's kind.
    fn probes(range: &str, integer: bool) -> (Vec<toml::Value>, Vec<toml::Value>) {
        let (open_low, open_high) = (range.starts_with('('), range.ends_with(')'));
        let (low, high) = range[1..range.len() - 1].split_once(", ").expect("a range is `[a, b]`");
        let step = if integer { 1.0 } else { 1e-3 };
        let value = |v: f64| if integer { toml::Value::Integer(v as i64) } else { toml::Value::Float(v) };
        let (mut outside, mut inside) = (vec![], vec![]);
        if let Ok(low) = low.parse::<f64>() {
            outside.push(value(if open_low { low } else { low - step }));
            inside.extend((!open_low).then(|| value(low)));
        }
        if let Ok(high) = high.parse::<f64>() {
            outside.push(value(if open_high { high } else { high + step }));
            inside.extend((!open_high).then(|| value(high)));
        }
        (outside.into_iter().filter(|v| v.as_integer().is_none_or(|i| i >= 0)).collect(), inside)
    }

    #[test]
    fn every_stated_range_is_what_check_enforces() {
        for table in tables::<Settings>() {
            for key in (table.keys)() {
                let Some(range) = key.range else { continue };
                let full = format!("{}.{}", table.table, key.name);
                let (outside, inside) = probes(range, key.kind.starts_with("integer"));
                for value in outside {
                    let found = problems_with(table.table, key.name, value.clone());
                    assert!(found.contains(&full), "{full} = {value} is outside {range}, and check accepts it");
                }
                for value in inside {
                    let found = problems_with(table.table, key.name, value.clone());
                    assert!(!found.contains(&full), "{full} = {value} is inside {range}, and check refuses it");
                }
            }
        }
    }
}

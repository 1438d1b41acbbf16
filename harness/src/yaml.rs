//! A YAML tree that remembers where every node came from.
//!
//! serde-saphyr parses (its `Spanned` wrapper supplies the positions, its errors carry
//! `line:col`); this module turns the result into [`Node`]s so that model decoders can
//! report *every* wrong or unknown field with its location, instead of stopping at the
//! first one as `deny_unknown_fields` would. Comments are not part of the tree, so a
//! commented-out key never counts.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::source::{Finding, Location};

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: u64,
    pub col: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// The YAML kind, as a person says it: "a mapping", "a string", ...
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// Value of `key` in a mapping (string keys only).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Follow a path of mapping keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |n, k| n.get(k))
    }

    /// The scalar as text, the way a Go YAML decoder into `string` would see it.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::String(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Shift positions, for YAML that was embedded in another YAML file (a block string).
    pub fn shift(&mut self, lines: u64, cols: u64) {
        self.line += lines;
        self.col += cols;
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.shift(lines, cols)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.shift(lines, cols);
                v.shift(lines, cols);
            }),
            _ => {}
        }
    }
}

/// A YAML syntax error, with where it is and what the parser expected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {message}")]
pub struct SyntaxError {
    pub location: Location,
    pub message: String,
}

/// Parse every document of a YAML stream. Empty documents are dropped; a syntax error
/// (including duplicate keys) is reported with `file:line:col`.
pub fn parse_documents(file: &Arc<PathBuf>, text: &str) -> Result<Vec<Node>, SyntaxError> {
    let options = serde_saphyr::options! {
        // `yes`/`no`/`on`/`off` stay strings, as in YAML 1.2 and Go's yaml.v3.
        strict_booleans: true,
    };
    let docs: Vec<Node> = serde_saphyr::from_str_multiple_with_options(text, options)
        .map_err(|e| syntax_error(file, &e))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn syntax_error(file: &Arc<PathBuf>, e: &serde_saphyr::Error) -> SyntaxError {
    let (line, col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    // The rendered error is rustc-style with a snippet; its first line is the sentence.
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
    let message = first
        .strip_prefix("error: ")
        .map(|rest| match rest.split_once(": ") {
            Some((pos, msg)) if pos.starts_with("line ") => msg,
            _ => rest,
        })
        .unwrap_or(first);
    // The parser repeats the position at the end ("... at line 6, column 6"); we print it first.
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") => &message[..i],
        _ => message,
    }
    .to_string();
    SyntaxError {
        location: Location::new(file, line, col),
        message: format!("invalid YAML: {message}"),
    }
}

// ---- serde glue: a Node is a Spanned<Value>, recursively --------------------------------

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            value: s.value,
            line: s.referenced.line(),
            col: s.referenced.column(),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = a.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

// ---- decoding helpers --------------------------------------------------------------------

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub at: Location,
}

impl<T> At<T> {
    pub fn new(value: T, at: Location) -> Self {
        At { value, at }
    }
}

impl<T: fmt::Display> fmt::Display for At<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// Collects schema problems (wrong type, unknown or missing field) while a decoder walks a
/// tree, so that one pass reports all of them. `rule` is the finding's rule id.
pub struct Decoder<'a> {
    pub file: Arc<PathBuf>,
    pub rule: &'static str,
    pub findings: &'a mut Vec<Finding>,
}

impl<'a> Decoder<'a> {
    pub fn new(file: &Arc<PathBuf>, rule: &'static str, findings: &'a mut Vec<Finding>) -> Self {
        Decoder {
            file: Arc::clone(file),
            rule,
            findings,
        }
    }

    pub fn loc(&self, n: &Node) -> Location {
        Location::new(&self.file, n.line, n.col)
    }

    pub fn error(&mut self, n: &Node, message: impl Into<String>, fix: impl Into<String>) {
        let f = Finding::error(self.rule, self.loc(n), message).fix(fix);
        self.findings.push(f);
    }

    /// Read a mapping: returns its fields, reporting unknown keys (those not in `known`)
    /// for type `what` (e.g. `Cluster`), and non-string keys.
    pub fn fields<'n>(&mut self, n: &'n Node, what: &str, known: &[&str]) -> Option<Fields<'n>> {
        let Some(entries) = n.as_map() else {
            if !n.is_null() {
                self.error(
                    n,
                    format!("{what} must be a mapping, found {}", n.value.kind()),
                    "",
                );
            }
            return None;
        };
        let mut fields = Vec::new();
        for (k, v) in entries {
            match k.as_str() {
                Some(key) if known.contains(&key) => fields.push((key, k, v)),
                Some(key) => {
                    let hint = closest(key, known)
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default();
                    self.error(
                        k,
                        format!("unknown field `{key}` in {what}"),
                        format!("{hint}known fields: {}", known.join(", ")),
                    );
                }
                None => self.error(k, format!("keys of {what} must be strings"), ""),
            }
        }
        Some(Fields { fields })
    }

    pub fn string(&mut self, n: &Node, what: &str) -> Option<At<String>> {
        match &n.value {
            Value::String(s) => Some(At::new(s.clone(), self.loc(n))),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                // Go's YAML decoder turns plain scalars into strings when the field is a string.
                Some(At::new(n.scalar_text().unwrap_or_default(), self.loc(n)))
            }
            other => {
                self.error(
                    n,
                    format!("{what} must be a string, found {}", other.kind()),
                    "",
                );
                None
            }
        }
    }

    pub fn bool(&mut self, n: &Node, what: &str) -> Option<At<bool>> {
        match &n.value {
            Value::Bool(b) => Some(At::new(*b, self.loc(n))),
            other => {
                self.error(
                    n,
                    format!("{what} must be true or false, found {}", describe(other)),
                    "",
                );
                None
            }
        }
    }

    pub fn int(&mut self, n: &Node, what: &str) -> Option<At<i128>> {
        match &n.value {
            Value::Int(i) => Some(At::new(*i, self.loc(n))),
            other => {
                self.error(
                    n,
                    format!("{what} must be an integer, found {}", describe(other)),
                    "",
                );
                None
            }
        }
    }

    pub fn string_list(&mut self, n: &Node, what: &str) -> Option<Vec<At<String>>> {
        if n.is_null() {
            return Some(Vec::new());
        }
        let Some(items) = n.as_seq() else {
            self.error(
                n,
                format!("{what} must be a list of strings, found {}", n.value.kind()),
                "",
            );
            return None;
        };
        Some(items.iter().filter_map(|i| self.string(i, what)).collect())
    }

    pub fn string_map(&mut self, n: &Node, what: &str) -> Vec<(At<String>, At<String>)> {
        let Some(entries) = n.as_map() else {
            if !n.is_null() {
                self.error(
                    n,
                    format!(
                        "{what} must be a mapping of strings, found {}",
                        n.value.kind()
                    ),
                    "",
                );
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = self.string(k, what);
            let val = if v.is_null() {
                Some(At::new(String::new(), self.loc(v)))
            } else {
                self.string(v, what)
            };
            if let (Some(k), Some(v)) = (key, val) {
                out.push((k, v));
            }
        }
        out
    }
}

/// The known fields of one mapping, in file order.
pub struct Fields<'n> {
    fields: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.fields
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    pub fn key_node(&self, key: &str) -> Option<&'n Node> {
        self.fields
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, k, _)| *k)
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.kind().to_string(),
    }
}

/// The known name closest to `key` (case-insensitive, ignoring `_`), for "did you mean".
pub fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let k = norm(key);
    known
        .iter()
        .map(|c| (edit_distance(&k, &norm(c)), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<PathBuf> {
        Arc::new(PathBuf::from("t.yaml"))
    }

    #[test]
    fn nodes_carry_line_and_column() {
        let docs = parse_documents(
            &file(),
            "kind: Cluster\n# name: hidden\nname: a\n---\nkind: Workers\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let name = docs[0].get("name").unwrap();
        assert_eq!((name.line, name.col), (3, 7));
        assert!(docs[0].get("# name").is_none());
        assert_eq!(docs[1].get("kind").unwrap().line, 5);
    }

    #[test]
    fn yes_and_no_stay_strings_quoted_numbers_stay_strings() {
        let docs = parse_documents(&file(), "a: yes\nb: \"3\"\nc: 3\n").unwrap();
        assert_eq!(docs[0].get("a").unwrap().value, Value::String("yes".into()));
        assert_eq!(docs[0].get("b").unwrap().value, Value::String("3".into()));
        assert_eq!(docs[0].get("c").unwrap().value, Value::Int(3));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = parse_documents(&file(), "a: b\n  c: [d\n").unwrap_err();
        assert_eq!((e.location.line, e.location.col), (2, 4));
        assert!(e.to_string().starts_with("t.yaml:2:4: invalid YAML"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let e = parse_documents(&file(), "a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.location.line, 2);
        assert!(e.message.contains("duplicate"), "{e}");
    }

    #[test]
    fn unknown_fields_are_all_reported_with_a_suggestion() {
        let docs = parse_documents(&file(), "nmae: a\nsize: 1\nother: 2\n").unwrap();
        let mut findings = Vec::new();
        let mut d = Decoder::new(&file(), "t.schema", &mut findings);
        let f = d.fields(&docs[0], "Thing", &["name", "size"]).unwrap();
        assert!(f.get("size").is_some());
        assert_eq!(findings.len(), 2);
        assert!(
            findings[0].fix.contains("did you mean `name`"),
            "{:?}",
            findings[0]
        );
        assert_eq!(findings[1].location.line, 3);
    }
}

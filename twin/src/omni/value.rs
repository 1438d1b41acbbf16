//! An ordered YAML-ish value tree and the two encoders `omnictl` output goes through:
//!
//! - YAML as go.yaml.in/yaml/v4 writes it (omni.md §3.1): 4-space indent, sequences indented
//!   under their key, literal blocks for multi-line strings, plain scalars where the YAML
//!   resolver would read them back as the same string, double quotes where a plain scalar
//!   would resolve to another type, single quotes where a plain scalar is not allowed;
//! - JSON as Go's `encoding/json` writes the map re-read from that YAML (omni.md §3.2):
//!   keys sorted at every level, 4-space indent, `<`, `>`, `&` escaped as `\u003c`…, and
//!   plain (untagged) metadata scalars re-typed by YAML resolution.

use std::fmt::Write as _;

/// A value with insertion-ordered mappings (spec keys keep their proto field order).
#[derive(Debug, Clone, PartialEq)]
pub enum Yv {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A string; quoted on output whenever a plain scalar would read back differently.
    Str(String),
    /// An untagged plain scalar (cosi writes metadata this way): emitted plain when the
    /// emitter allows it, and re-typed by YAML resolution when the YAML is read back.
    Raw(String),
    Seq(Vec<Yv>),
    Map(Vec<(String, Yv)>),
}

impl Yv {
    /// Convert JSON into a value (objects keep the iteration order of `serde_json::Map`).
    pub fn from_json(v: &serde_json::Value) -> Yv {
        match v {
            serde_json::Value::Null => Yv::Null,
            serde_json::Value::Bool(b) => Yv::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Yv::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Yv::UInt(u)
                } else {
                    Yv::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            serde_json::Value::String(s) => Yv::Str(s.clone()),
            serde_json::Value::Array(a) => Yv::Seq(a.iter().map(Yv::from_json).collect()),
            serde_json::Value::Object(o) => Yv::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Yv::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value as JSON, as Go reads the YAML back into `map[string]any` (Raw scalars are
    /// re-typed: empty → null, numbers → numbers, true/false → booleans).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Yv::Null => serde_json::Value::Null,
            Yv::Bool(b) => serde_json::Value::Bool(*b),
            Yv::Int(i) => serde_json::Value::from(*i),
            Yv::UInt(u) => serde_json::Value::from(*u),
            Yv::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Yv::Str(s) => serde_json::Value::String(s.clone()),
            Yv::Raw(s) => match resolve_plain(s) {
                Resolved::Null => serde_json::Value::Null,
                Resolved::Bool(b) => serde_json::Value::Bool(b),
                Resolved::Int(i) => serde_json::Value::from(i),
                Resolved::UInt(u) => serde_json::Value::from(u),
                Resolved::Float(f) => serde_json::Number::from_f64(f)
                    .map(serde_json::Value::Number)
                    .unwrap_or_else(|| serde_json::Value::String(s.clone())),
                Resolved::Str | Resolved::Other => serde_json::Value::String(s.clone()),
            },
            Yv::Seq(items) => serde_json::Value::Array(items.iter().map(Yv::to_json).collect()),
            Yv::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    m.insert(k.clone(), v.to_json());
                }
                serde_json::Value::Object(m)
            }
        }
    }

    /// Look a key up in a mapping.
    pub fn get(&self, key: &str) -> Option<&Yv> {
        match self {
            Yv::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// YAML scalar resolution (yaml.v3/v4 `resolve` for plain scalars)
// ---------------------------------------------------------------------------------------

/// What a plain scalar reads back as.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str,
    /// Timestamps, YAML 1.1 booleans, base-60 numbers: not a string to the encoder.
    Other,
}

/// Resolve a plain scalar the way the Go YAML library does.
pub fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Other,
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "on" | "On" | "ON"
        | "off" | "Off" | "OFF" => return Resolved::Other,
        _ => {}
    }
    if let Some(r) = resolve_int(s) {
        return r;
    }
    if is_float(s) {
        return s
            .replace('_', "")
            .parse::<f64>()
            .map(Resolved::Float)
            .unwrap_or(Resolved::Other);
    }
    if is_base60(s) || is_timestamp(s) {
        return Resolved::Other;
    }
    Resolved::Str
}

fn resolve_int(s: &str) -> Option<Resolved> {
    let first = s.chars().next()?;
    if !(first.is_ascii_digit() || first == '-' || first == '+') {
        return None;
    }
    let plain = s.replace('_', "");
    let (neg, body) = match plain.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, plain.strip_prefix('+').unwrap_or(&plain)),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok();
    match (neg, mag) {
        (false, Some(m)) => Some(match i64::try_from(m) {
            Ok(i) => Resolved::Int(i),
            Err(_) => Resolved::UInt(m),
        }),
        (true, Some(m)) if m <= i64::MAX as u64 + 1 => {
            Some(Resolved::Int((m as i128).wrapping_neg() as i64))
        }
        // Too large for an integer: the resolver falls back to a float.
        _ => Some(
            s.replace('_', "")
                .parse::<f64>()
                .map(Resolved::Float)
                .unwrap_or(Resolved::Other),
        ),
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (underscores allowed).
fn is_float(s: &str) -> bool {
    let b: Vec<u8> = s.bytes().filter(|&c| c != b'_').collect();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
        if int_digits == 0 && frac_digits == 0 {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// YAML 1.1 sexagesimal numbers (`190:20:30`), which the encoder keeps quoted.
fn is_base60(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = body.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    if first.is_empty()
        || !first.starts_with(|c: char| c.is_ascii_digit())
        || !first.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        return false;
    }
    for (i, p) in rest.iter().enumerate() {
        let p = if i == rest.len() - 1 {
            p.split('.').next().unwrap_or(p)
        } else {
            p
        };
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
        if p.len() == 2 && p.as_bytes()[0] > b'5' {
            return false;
        }
    }
    true
}

/// `2006-01-02`, `2006-01-02T15:04:05Z`, `2006-01-02 15:04:05.1 -07:00`, … (resolved as
/// timestamps, so a string holding one is quoted).
fn is_timestamp(s: &str) -> bool {
    fn digits(s: &str, min: usize, max: usize) -> Option<&str> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (min..=max).contains(&n).then(|| &s[n..])
    }
    let Some(rest) = digits(s, 4, 4).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let Some(rest) = digits(rest, 1, 2).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let Some(tail) = digits(rest, 1, 2) else {
        return false;
    };
    tail.is_empty()
        || (tail.starts_with(['T', 't', ' ', '\t'])
            && tail[1..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit()))
}

// ---------------------------------------------------------------------------------------
// Scalar styles (libyaml's analyze_scalar, simplified to what omnictl output needs)
// ---------------------------------------------------------------------------------------

fn is_printable(c: char) -> bool {
    c == '\n'
        || (' '..='~').contains(&c)
        || (c as u32 >= 0xA0 && c != '\u{FEFF}' && c != '\u{2028}' && c != '\u{2029}')
}

/// Whether libyaml would write `s` as a plain scalar in block context.
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || s.contains('\n') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return false;
    }
    if s.chars().any(|c| !is_printable(c)) {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    let first = chars[0];
    let followed_by_blank = |i: usize| chars.get(i + 1).is_none_or(|c| *c == ' ');
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if (first == '-' || first == '?' || first == ':') && followed_by_blank(0) {
        return false;
    }
    for (i, &c) in chars.iter().enumerate().skip(1) {
        if c == ':' && followed_by_blank(i) {
            return false;
        }
        if c == '#' && chars[i - 1] == ' ' {
            return false;
        }
    }
    true
}

fn single_quoted_allowed(s: &str) -> bool {
    !s.chars().any(|c| !is_printable(c) || c == '\n')
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A one-line rendering of a string scalar (not for multi-line strings in block context).
fn inline_string(s: &str) -> String {
    let canonical_plain = matches!(resolve_plain(s), Resolved::Str);
    if canonical_plain && plain_allowed(s) {
        s.to_string()
    } else if !canonical_plain || !single_quoted_allowed(s) {
        double_quoted(s)
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// An untagged scalar: plain when allowed, quoted only when plain is impossible.
fn inline_raw(s: &str) -> String {
    if s.is_empty() || plain_allowed(s) {
        s.to_string()
    } else if single_quoted_allowed(s) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        double_quoted(s)
    }
}

/// Key rendering (keys follow the same rules as string values).
fn key_text(k: &str) -> String {
    inline_string(k)
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        }
    } else if f == f.trunc() && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

/// Whether a multi-line string can be a literal block (`|`): no tabs or other specials, no
/// trailing spaces before a break, and no leading space (which would need an indent hint).
fn block_allowed(s: &str) -> bool {
    !s.starts_with(' ')
        && !s.starts_with('\n')
        && !s.chars().any(|c| !is_printable(c))
        && !s.contains(" \n")
}

// ---------------------------------------------------------------------------------------
// YAML encoder
// ---------------------------------------------------------------------------------------

/// Encode a value as a YAML document with the given indent (4 for omnictl output, 2 for the
/// diffs `cluster template sync -v` shows). The result ends with a newline.
pub fn to_yaml(v: &Yv, indent: usize) -> String {
    encode(
        v,
        Style {
            indent,
            indent_seq: true,
        },
    )
}

/// Encode the way sigs.k8s.io/yaml (kubeconfig files) does: 2-space indent, sequences at
/// the column of their key.
pub fn to_yaml_k8s(v: &Yv) -> String {
    encode(
        v,
        Style {
            indent: 2,
            indent_seq: false,
        },
    )
}

#[derive(Clone, Copy)]
struct Style {
    indent: usize,
    /// Whether a sequence under a key is indented (go-yaml v3/v4) or not (yaml.v2).
    indent_seq: bool,
}

fn encode(v: &Yv, style: Style) -> String {
    let mut out = String::new();
    match v {
        Yv::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0, 0, style),
        Yv::Seq(items) if !items.is_empty() => write_seq(&mut out, items, 0, style),
        other => {
            out.push_str(&scalar_inline(other).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// The one-line text of a scalar or empty collection; `None` for non-empty collections and
/// block strings.
fn scalar_inline(v: &Yv) -> Option<String> {
    Some(match v {
        Yv::Null => "null".into(),
        Yv::Bool(b) => b.to_string(),
        Yv::Int(i) => i.to_string(),
        Yv::UInt(u) => u.to_string(),
        Yv::Float(f) => float_text(*f),
        Yv::Str(s) if s.contains('\n') => {
            if block_allowed(s) {
                return None;
            }
            double_quoted(s)
        }
        Yv::Str(s) => inline_string(s),
        Yv::Raw(s) => inline_raw(s),
        Yv::Seq(items) if items.is_empty() => "[]".into(),
        Yv::Map(entries) if entries.is_empty() => "{}".into(),
        Yv::Seq(_) | Yv::Map(_) => return None,
    })
}

fn pad(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// Write `|`, `|-` or `|+` and the lines of a literal block at `col`.
fn write_block(out: &mut String, s: &str, col: usize) {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    out.push('|');
    out.push_str(chomp);
    out.push('\n');
    let body = if trailing > 0 { &s[..s.len() - 1] } else { s };
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(out, col);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// A block mapping whose keys start at `key_col`; nested block values are indented from
/// `base` (for a mapping that is a sequence item, `base` is the dash column: go-yaml indents
/// the children of `- key:` from the dash, not from the key).
fn write_map(
    out: &mut String,
    entries: &[(String, Yv)],
    key_col: usize,
    base: usize,
    style: Style,
) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            pad(out, key_col);
        }
        write_entry(out, k, v, base, style);
    }
}

/// One `key: value` entry (the caller has written the padding before the key).
fn write_entry(out: &mut String, k: &str, v: &Yv, base: usize, style: Style) {
    out.push_str(&key_text(k));
    out.push(':');
    let child = base + style.indent;
    match v {
        Yv::Raw(s) if s.is_empty() => out.push('\n'),
        Yv::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            pad(out, child);
            write_map(out, entries, child, child, style);
        }
        Yv::Seq(items) if !items.is_empty() => {
            let col = if style.indent_seq { child } else { base };
            out.push('\n');
            pad(out, col);
            write_seq(out, items, col, style);
        }
        Yv::Str(s) if scalar_inline(v).is_none() => {
            out.push(' ');
            write_block(out, s, child);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar_inline(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// A block sequence whose dashes are at `col` (the caller has written the first padding).
fn write_seq(out: &mut String, items: &[Yv], col: usize, style: Style) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            pad(out, col);
        }
        out.push_str("- ");
        match item {
            Yv::Map(entries) if !entries.is_empty() => {
                let base = if style.indent_seq { col } else { col + 2 };
                write_map(out, entries, col + 2, base, style)
            }
            Yv::Seq(inner) if !inner.is_empty() => write_seq(out, inner, col + 2, style),
            Yv::Str(s) if scalar_inline(item).is_none() => write_block(out, s, col + style.indent),
            other => {
                out.push_str(&scalar_inline(other).unwrap_or_default());
                out.push('\n');
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON encoder (Go encoding/json with SetIndent("", "    "))
// ---------------------------------------------------------------------------------------

/// Encode JSON the way Go's `json.Encoder` with a 4-space indent does: keys sorted,
/// HTML-sensitive characters escaped, a newline after the value.
pub fn to_go_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, 0);
    out.push('\n');
    out
}

fn write_json(out: &mut String, v: &serde_json::Value, level: usize) {
    match v {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                out.push_str(&go_float(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        serde_json::Value::String(s) => json_string(out, s),
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                pad(out, (level + 1) * 4);
                write_json(out, item, level + 1);
            }
            out.push('\n');
            pad(out, level * 4);
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                pad(out, (level + 1) * 4);
                json_string(out, k);
                out.push_str(": ");
                if let Some(val) = map.get(*k) {
                    write_json(out, val, level + 1);
                }
            }
            out.push('\n');
            pad(out, level * 4);
            out.push('}');
        }
    }
}

fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go uses exponent form outside [1e-6, 1e21): 1e+21, 1e-07.
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                let digits = if digits.len() < 2 {
                    format!("0{digits}")
                } else {
                    digits.to_string()
                };
                format!("{m}e{sign}{digits}")
            }
            None => s,
        }
    } else {
        format!("{f}")
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(entries: &[(&str, Yv)]) -> Yv {
        Yv::Map(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn strings_are_quoted_only_when_they_would_read_back_differently() {
        assert_eq!(inline_string("1.34.2"), "1.34.2");
        assert_eq!(inline_string(""), "\"\"");
        assert_eq!(inline_string("1.5"), "\"1.5\"");
        assert_eq!(inline_string("true"), "\"true\"");
        assert_eq!(inline_string("yes"), "\"yes\"");
        assert_eq!(inline_string("42"), "\"42\"");
        assert_eq!(
            inline_string("Running Step: \"uploadISO\" (3/5)"),
            "'Running Step: \"uploadISO\" (3/5)'"
        );
        assert_eq!(inline_string("fdae:41e4:649b::1"), "fdae:41e4:649b::1");
        assert_eq!(inline_string("bc:24:11:5a:0e:7d"), "bc:24:11:5a:0e:7d");
        assert_eq!(
            inline_string("2026-01-23T12:06:30Z"),
            "\"2026-01-23T12:06:30Z\""
        );
        assert_eq!(
            inline_string("name == \"local-lvm\""),
            "name == \"local-lvm\""
        );
        assert_eq!(inline_string("a\tb"), "\"a\\tb\"");
    }

    #[test]
    fn yaml_layout_follows_go_yaml_v4_with_four_spaces() {
        let v = m(&[
            (
                "metadata",
                m(&[
                    ("id", Yv::Str("a".into())),
                    ("owner", Yv::Raw(String::new())),
                ]),
            ),
            (
                "spec",
                m(&[
                    ("nodeips", Yv::Seq(vec![Yv::Str("10.0.0.1".into())])),
                    (
                        "links",
                        Yv::Seq(vec![m(&[
                            ("name", Yv::Str("eth0".into())),
                            ("up", Yv::Bool(true)),
                        ])]),
                    ),
                    ("empty", Yv::Seq(vec![])),
                    ("tags", Yv::Map(vec![])),
                    ("overlay", Yv::Null),
                    ("data", Yv::Str("cores: 4\nmemory: 8192\n".into())),
                    ("nonl", Yv::Str("a\nb".into())),
                ]),
            ),
        ]);
        assert_eq!(
            to_yaml(&v, 4),
            "metadata:\n    id: a\n    owner:\nspec:\n    nodeips:\n        - 10.0.0.1\n    links:\n        - name: eth0\n          up: true\n    empty: []\n    tags: {}\n    overlay: null\n    data: |\n        cores: 4\n        memory: 8192\n    nonl: |-\n        a\n        b\n"
        );
    }

    #[test]
    fn nested_collections_in_sequence_items_indent_from_the_dash() {
        let v = m(&[(
            "interfaces",
            Yv::Seq(vec![m(&[
                ("addresses", Yv::Seq(vec![Yv::Str("192.168.0.2/24".into())])),
                ("interface", Yv::Str("eth0".into())),
            ])]),
        )]);
        assert_eq!(
            to_yaml(&v, 4),
            "interfaces:\n    - addresses:\n        - 192.168.0.2/24\n      interface: eth0\n"
        );
        assert_eq!(
            to_yaml_k8s(&m(&[(
                "users",
                Yv::Seq(vec![m(&[
                    ("name", Yv::Str("a".into())),
                    ("user", m(&[("token", Yv::Str("t".into()))]))
                ])])
            )])),
            "users:\n- name: a\n  user:\n    token: t\n"
        );
    }

    #[test]
    fn json_is_sorted_indented_and_html_escaped() {
        let v = serde_json::json!({"spec": {"b": 1, "a": "x && y <z>"}, "metadata": {"owner": null, "l": {}}});
        assert_eq!(
            to_go_json(&v),
            "{\n    \"metadata\": {\n        \"l\": {},\n        \"owner\": null\n    },\n    \"spec\": {\n        \"a\": \"x \\u0026\\u0026 y \\u003cz\\u003e\",\n        \"b\": 1\n    }\n}\n"
        );
    }

    #[test]
    fn raw_scalars_are_retyped_when_read_back() {
        assert_eq!(Yv::Raw("4".into()).to_json(), serde_json::json!(4));
        assert_eq!(Yv::Raw(String::new()).to_json(), serde_json::Value::Null);
        assert_eq!(Yv::Raw("8GiB".into()).to_json(), serde_json::json!("8GiB"));
        assert_eq!(
            Yv::Raw("2026-01-23T12:06:30Z".into()).to_json(),
            serde_json::json!("2026-01-23T12:06:30Z")
        );
        assert_eq!(
            Yv::Raw("10376185231473512937".into()).to_json(),
            serde_json::json!(10376185231473512937u64)
        );
    }
}

//! `omnictl get` output writers (omni.md §3): YAML (§3.1), JSON (§3.2), table (§3.3),
//! `jsonpath=…`, each with its watch variant (§3.4). A writer turns resources into text;
//! the caller decides when to flush (the table aligns what it has buffered).

use super::resource::{EventKind, Resource};
use super::types::Def;
use super::value::{Yv, to_go_json, to_yaml};

/// One output format with its state.
pub enum Writer {
    Yaml { events: bool, need_dashes: bool },
    Json { events: bool },
    Table(Table),
    JsonPath { expr: Vec<Step> },
}

/// Go `text/tabwriter` with minwidth 0, tabwidth 0, padding 3, padchar ' ', flags 0.
pub struct Table {
    events: bool,
    display: &'static str,
    columns: &'static [(&'static str, &'static str)],
    rows: Vec<Vec<String>>,
}

impl Writer {
    /// A writer for `-o FORMAT` (`output format "x" is not supported` otherwise).
    pub fn new(format: &str, def: &'static Def, events: bool) -> Result<Writer, String> {
        match format {
            "yaml" => Ok(Writer::Yaml {
                events,
                need_dashes: false,
            }),
            "json" => Ok(Writer::Json { events }),
            "table" => Ok(Writer::Table(Table {
                events,
                display: def.display,
                columns: def.columns,
                rows: Vec::new(),
            })),
            other => match other.strip_prefix("jsonpath=") {
                Some(expr) => Ok(Writer::JsonPath {
                    expr: parse_path(expr)?,
                }),
                None => Err(format!("output format {other:?} is not supported")),
            },
        }
    }

    /// The header (buffered for tables, nothing for the others).
    pub fn header(&mut self) {
        if let Writer::Table(t) = self {
            let mut fields: Vec<String> = Vec::new();
            if t.events {
                fields.push("*".into());
            }
            fields.extend(["NAMESPACE", "TYPE", "ID", "VERSION"].map(String::from));
            fields.extend(t.columns.iter().map(|(name, _)| name.to_uppercase()));
            t.rows.push(fields);
        }
    }

    /// Write one resource; returns text ready to print now (tables buffer until `flush`).
    pub fn resource(&mut self, r: &Resource, event: Option<EventKind>) -> String {
        match self {
            Writer::Yaml {
                events,
                need_dashes,
            } => {
                let mut out = String::new();
                if *need_dashes {
                    out.push_str("---\n");
                }
                *need_dashes = true;
                if *events {
                    out.push_str(&format!(
                        "event: {}\n",
                        event.unwrap_or(EventKind::Created).as_str()
                    ));
                }
                out.push_str(&to_yaml(&r.to_yv(), 4));
                out
            }
            Writer::Json { events } => {
                let mut v = r.to_yv().to_json();
                if *events && let Some(o) = v.as_object_mut() {
                    o.insert(
                        "event".into(),
                        serde_json::Value::String(
                            event.unwrap_or(EventKind::Created).as_str().into(),
                        ),
                    );
                }
                to_go_json(&v)
            }
            Writer::Table(t) => {
                let mut row = Vec::new();
                if t.events {
                    row.push(
                        match event.unwrap_or(EventKind::Created) {
                            EventKind::Created => "+",
                            EventKind::Updated => " ",
                            EventKind::Destroyed => "-",
                        }
                        .to_string(),
                    );
                }
                row.push(r.metadata.namespace.clone());
                row.push(t.display.to_string());
                row.push(r.metadata.id.clone());
                row.push(r.metadata.version.to_string());
                let spec = r.spec_value().to_json();
                for (_, path) in t.columns {
                    let steps = parse_path(&format!("{{{path}}}")).unwrap_or_default();
                    row.push(eval_text(&spec, &steps));
                }
                t.rows.push(row);
                String::new()
            }
            Writer::JsonPath { expr } => {
                let v = r.to_yv().to_json();
                format!("{}\n", eval_text(&v, expr))
            }
        }
    }

    /// Flush buffered table rows, aligned.
    pub fn flush(&mut self) -> String {
        match self {
            Writer::Table(t) => {
                let out = align(&t.rows);
                t.rows.clear();
                out
            }
            _ => String::new(),
        }
    }
}

/// Align rows like tabwriter: every cell but the last of a line is padded to the column
/// width plus 3.
fn align(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            let w = cell.chars().count();
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] + 3 - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// One step of a JSONPath (`.key`, `[n]`, `[*]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
    All,
}

/// Parse `{.a.b[0]}` (the subset print columns and `-o jsonpath=` need).
pub fn parse_path(expr: &str) -> Result<Vec<Step>, String> {
    let inner = expr
        .trim()
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(expr.trim());
    let mut steps = Vec::new();
    let mut rest = inner.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Key(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unterminated array index in {expr:?}"))?;
            let idx = &r[..end];
            steps.push(if idx == "*" {
                Step::All
            } else {
                Step::Index(
                    idx.parse()
                        .map_err(|_| format!("invalid array index {idx:?}"))?,
                )
            });
            rest = &r[end + 1..];
        } else {
            return Err(format!("unrecognized character in action: {rest:?}"));
        }
    }
    Ok(steps)
}

fn eval<'a>(v: &'a serde_json::Value, steps: &[Step]) -> Vec<&'a serde_json::Value> {
    let mut cur = vec![v];
    for s in steps {
        let mut next = Vec::new();
        for c in cur {
            match (s, c) {
                (Step::Key(k), serde_json::Value::Object(o)) => next.extend(o.get(k)),
                (Step::Index(i), serde_json::Value::Array(a)) => next.extend(a.get(*i)),
                (Step::All, serde_json::Value::Array(a)) => next.extend(a.iter()),
                (Step::All, serde_json::Value::Object(o)) => next.extend(o.values()),
                _ => {}
            }
        }
        cur = next;
    }
    cur
}

/// k8s jsonpath text: strings raw, collections as compact JSON, missing keys empty.
fn eval_text(v: &serde_json::Value, steps: &[Step]) -> String {
    eval(v, steps)
        .into_iter()
        .map(|x| match x {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => x.to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A resource YAML with the values an unsaved resource has (`version: undefined`, zero
/// timestamps), for diffs of resources about to be created.
pub fn unsaved_yv(r: &Resource) -> Yv {
    let mut v = r.to_yv();
    if let Yv::Map(top) = &mut v
        && let Some((_, Yv::Map(meta))) = top.iter_mut().find(|(k, _)| k == "metadata")
    {
        for (k, val) in meta.iter_mut() {
            if k == "created" || k == "updated" {
                *val = Yv::Raw("0001-01-01T00:00:00Z".into());
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omni::types::resolve;

    #[test]
    fn tables_align_like_tabwriter() {
        let def = resolve("clusterstatus").unwrap();
        let mut w = Writer::new("table", def, false).unwrap();
        w.header();
        let mut r = Resource::new(
            def.full,
            "default",
            "talos-a",
            serde_json::json!({"available": true, "phase": 3, "machines": {"total": 3, "healthy": 3}}),
        );
        r.metadata.version = 57;
        assert_eq!(w.resource(&r, None), "");
        assert_eq!(
            w.flush(),
            "NAMESPACE   TYPE            ID        VERSION   AVAILABLE   PHASE   MACHINES   HEALTHY\ndefault     ClusterStatus   talos-a   57        true        3       3          3\n"
        );
        assert!(Writer::new("xml", def, false).is_err());
    }
}

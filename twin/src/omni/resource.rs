//! Omni (COSI) resources as the twin stores them: metadata plus a spec held as JSON and
//! rendered through the type's field list (see [`super::types`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::types;
use super::value::Yv;

/// `running` or `tearingDown` (omni.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Running,
    TearingDown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::TearingDown => "tearingDown",
        }
    }
}

/// Resource metadata (cosi-project/runtime `resource.Metadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub namespace: String,
    /// The full type, `MachineRequests.omni.sidero.dev`.
    pub kind: String,
    pub id: String,
    /// Set by the store; starts at 1 and grows on every change.
    pub version: u64,
    /// Controller that owns the resource; empty for user-owned ones.
    pub owner: String,
    pub phase: Phase,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub finalizers: Vec<String>,
}

/// One resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub metadata: Metadata,
    /// The spec with Omni's YAML keys (lower-cased Go field names, omni.md §3.1). Missing
    /// fields render as zero values; enums are integers.
    pub spec: serde_json::Value,
}

impl Resource {
    /// A new resource. `kind` is a full type or an `omnictl` alias (`machinerequest`).
    pub fn new(
        kind: &str,
        namespace: impl Into<String>,
        id: impl Into<String>,
        spec: serde_json::Value,
    ) -> Resource {
        let now = Utc::now();
        Resource {
            metadata: Metadata {
                namespace: namespace.into(),
                kind: types::full_type(kind),
                id: id.into(),
                version: 0,
                owner: String::new(),
                phase: Phase::Running,
                created: now,
                updated: now,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                finalizers: Vec::new(),
            },
            spec,
        }
    }

    /// A new resource in its type's default namespace.
    pub fn in_default_namespace(
        kind: &str,
        id: impl Into<String>,
        spec: serde_json::Value,
    ) -> Resource {
        let full = types::full_type(kind);
        let ns = types::def(&full)
            .map(|d| d.namespace)
            .unwrap_or(types::NS_DEFAULT);
        Resource::new(&full, ns, id, spec)
    }

    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.labels.insert(key.into(), value.into());
        self
    }

    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.annotations.insert(key.into(), value.into());
        self
    }

    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.metadata.owner = owner.into();
        self
    }

    pub fn with_finalizer(mut self, f: impl Into<String>) -> Self {
        let f = f.into();
        if !self.metadata.finalizers.contains(&f) {
            self.metadata.finalizers.push(f);
        }
        self
    }

    pub fn kind(&self) -> &str {
        &self.metadata.kind
    }

    pub fn id(&self) -> &str {
        &self.metadata.id
    }

    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.get(key).map(String::as_str)
    }

    /// `<Type>(<id>)`, as template sync prints it (omni.md §7.3).
    pub fn describe(&self) -> String {
        format!("{}({})", self.metadata.kind, self.metadata.id)
    }

    /// `<Type>(<ns>/<id>@<version>)` (cosi `resource.String`).
    pub fn string(&self) -> String {
        format!(
            "{}({}/{}@{})",
            self.metadata.kind, self.metadata.namespace, self.metadata.id, self.metadata.version
        )
    }

    /// The spec with every field of the type, in proto order.
    pub fn spec_value(&self) -> Yv {
        types::normalize_spec(&self.metadata.kind, &self.spec)
    }

    /// The document `resource.MarshalYAML` produces (omni.md §3.1): metadata keys in the
    /// fixed order, untagged plain scalars for owner/phase/timestamps/labels, then the spec.
    pub fn to_yv(&self) -> Yv {
        let m = &self.metadata;
        let mut meta = vec![
            ("namespace".to_string(), Yv::Raw(m.namespace.clone())),
            ("type".to_string(), Yv::Raw(m.kind.clone())),
            ("id".to_string(), Yv::Raw(m.id.clone())),
            (
                "version".to_string(),
                if m.version == 0 {
                    Yv::Raw("undefined".into())
                } else {
                    Yv::UInt(m.version)
                },
            ),
            ("owner".to_string(), Yv::Raw(m.owner.clone())),
            ("phase".to_string(), Yv::Raw(m.phase.as_str().into())),
            ("created".to_string(), Yv::Raw(timestamp(&m.created))),
            ("updated".to_string(), Yv::Raw(timestamp(&m.updated))),
        ];
        if !m.labels.is_empty() {
            meta.push((
                "labels".into(),
                Yv::Map(
                    m.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Yv::Raw(v.clone())))
                        .collect(),
                ),
            ));
        }
        if !m.annotations.is_empty() {
            meta.push((
                "annotations".into(),
                Yv::Map(
                    m.annotations
                        .iter()
                        .map(|(k, v)| (k.clone(), Yv::Raw(v.clone())))
                        .collect(),
                ),
            ));
        }
        if !m.finalizers.is_empty() {
            meta.push((
                "finalizers".into(),
                Yv::Seq(m.finalizers.iter().map(|f| Yv::Raw(f.clone())).collect()),
            ));
        }
        Yv::Map(vec![
            ("metadata".into(), Yv::Map(meta)),
            ("spec".into(), self.spec_value()),
        ])
    }

    /// Whether two resources differ in what a user or controller changes (everything but
    /// version and timestamps).
    pub fn same_content(&self, other: &Resource) -> bool {
        self.metadata.owner == other.metadata.owner
            && self.metadata.phase == other.metadata.phase
            && self.metadata.labels == other.metadata.labels
            && self.metadata.annotations == other.metadata.annotations
            && self.metadata.finalizers == other.metadata.finalizers
            && self.spec_value() == other.spec_value()
    }
}

/// UTC RFC 3339 with second precision (`2026-01-23T12:06:30Z`).
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `created`, `updated`, `destroyed` (cosi event types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    Destroyed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
            EventKind::Destroyed => "destroyed",
        }
    }
}

/// One change in the store. For `Destroyed`, the resource as it was last stored.
#[derive(Debug, Clone)]
pub struct Change {
    pub event: EventKind,
    pub resource: Resource,
}

/// A label query (`-l k=v,k2!=v2,k3,!k4,k5 in (a,b)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Selector {
    /// Parse a selector; errors are worded like the label query parser's.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        for raw in split_terms(text) {
            let part = raw.trim();
            if part.is_empty() {
                continue;
            }
            let term = if let Some((k, v)) = part.split_once("!=") {
                Term::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Term::NotIn(k.trim().into(), set_values(rest)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Term::In(k.trim().into(), set_values(rest)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Term::NotExists(k.trim().into())
            } else {
                Term::Exists(part.into())
            };
            let key = match &term {
                Term::Eq(k, _)
                | Term::NotEq(k, _)
                | Term::In(k, _)
                | Term::NotIn(k, _)
                | Term::Exists(k)
                | Term::NotExists(k) => k,
            };
            if key.is_empty() || key.contains(' ') {
                return Err(format!("invalid label selector term {part:?}"));
            }
            terms.push(term);
        }
        Ok(Selector { terms })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Eq(k, v) => labels.get(k) == Some(v),
            Term::NotEq(k, v) => labels.get(k) != Some(v),
            Term::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Term::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
            Term::Exists(k) => labels.contains_key(k),
            Term::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Split on commas that are not inside `( … )`.
fn split_terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("invalid label selector set {rest:?}"))?;
    Ok(inner
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_label_queries() {
        let mut l = BTreeMap::new();
        l.insert("omni.sidero.dev/cluster".to_string(), "a".to_string());
        l.insert("omni.sidero.dev/connected".to_string(), String::new());
        let ok = |s: &str| Selector::parse(s).unwrap().matches(&l);
        assert!(ok("omni.sidero.dev/cluster=a"));
        assert!(ok("omni.sidero.dev/cluster==a,omni.sidero.dev/connected"));
        assert!(!ok("omni.sidero.dev/cluster!=a"));
        assert!(ok("!omni.sidero.dev/role-worker"));
        assert!(ok("omni.sidero.dev/cluster in (b, a)"));
        assert!(!ok("omni.sidero.dev/cluster notin (a)"));
    }

    #[test]
    fn metadata_renders_in_cosi_order() {
        let mut r = Resource::new(
            "Clusters.omni.sidero.dev",
            "default",
            "talos-a",
            serde_json::json!({}),
        )
        .with_annotation("omni.sidero.dev/managed-by-cluster-templates", "");
        r.metadata.version = 3;
        let y = super::super::value::to_yaml(&r.to_yv(), 4);
        assert!(y.starts_with("metadata:\n    namespace: default\n    type: Clusters.omni.sidero.dev\n    id: talos-a\n    version: 3\n    owner:\n    phase: running\n"), "{y}");
        assert!(y.contains("    annotations:\n        omni.sidero.dev/managed-by-cluster-templates:\nspec:\n    kubernetesversion: \"\"\n"), "{y}");
        assert!(y.ends_with("    backupconfiguration: null\n"), "{y}");
    }
}

//! Cluster templates as `omnictl cluster template` reads them (omni.md §7): loading with
//! Omni's own error texts (§7.4), validation with go-multierror formatting, translation into
//! the resources of §7.2 (ids, labels, annotations, spec), the status tree of §7.3 and the
//! unified diffs `sync -v` and `diff` print.
//!
//! YAML is parsed with the project's positioned parser (`harness::yaml`); the model
//! decoding is strict (unknown fields are errors) like Omni's `KnownFields(true)` decoder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use harness::yaml::{Node, Value};
use serde_json::json;

use super::resource::Resource;
use super::store::{LABEL_CLUSTER, LABEL_MACHINE_SET, LABEL_ROLE_CONTROLPLANE, LABEL_ROLE_WORKER};
use super::types::{NS_DEFAULT, t};
use super::value::{Yv, to_yaml};

const RESERVED_PREFIX: &str = "omni.sidero.dev/";
const MANAGED_BY_TEMPLATES: &str = "omni.sidero.dev/managed-by-cluster-templates";
const LABEL_CLUSTER_MACHINE: &str = "omni.sidero.dev/cluster-machine";
const LABEL_SYSTEM_PATCH: &str = "omni.sidero.dev/system-patch";
const ANNOTATION_LOCKED: &str = "omni.sidero.dev/locked";

/// A loaded template.
#[derive(Debug, Clone)]
pub struct Template {
    models: Vec<Model>,
    /// Directory patch files are relative to.
    base: PathBuf,
}

#[derive(Debug, Clone)]
enum Model {
    Cluster(ClusterM),
    ControlPlane(SetM),
    Workers(SetM),
    Machine(MachineM),
}

#[derive(Debug, Clone, Default)]
struct Descriptors {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct ClusterM {
    name: String,
    desc: Descriptors,
    kubernetes_version: String,
    talos_version: String,
    disk_encryption: bool,
    enable_workload_proxy: bool,
    use_embedded_discovery_service: bool,
    disable_public_discovery_service: bool,
    enable_node_audit_skip: bool,
    backup_interval_secs: u64,
    patches: Vec<PatchM>,
    system_extensions: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct SetM {
    name: String,
    desc: Descriptors,
    machines: Vec<String>,
    machine_class: Option<(String, Size)>,
    bootstrap_spec: Option<(String, String)>,
    update_strategy: Option<StrategyM>,
    delete_strategy: Option<StrategyM>,
    patches: Vec<PatchM>,
    system_extensions: Vec<String>,
    kernel_args: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Size {
    count: u32,
    unlimited: bool,
}

#[derive(Debug, Clone, Default)]
struct StrategyM {
    kind: Option<u8>,
    max_parallelism: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct MachineM {
    name: String,
    desc: Descriptors,
    locked: bool,
    install_disk: Option<String>,
    patches: Vec<PatchM>,
    system_extensions: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct PatchM {
    name: String,
    id_override: String,
    desc: Descriptors,
    file: String,
    inline: Option<Inline>,
}

#[derive(Debug, Clone)]
enum Inline {
    Docs(Vec<Node>),
    Text(String),
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Where a document starts: `line:col` Omni reports, and the first line of the document as
/// go-yaml re-serialises it (comments directly above the first key stay with it).
#[derive(Debug, Clone, Copy)]
struct DocPos {
    line: u64,
    col: u64,
    top: u64,
}

fn doc_positions(text: &str) -> Vec<DocPos> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut seg_start = 0usize; // index of first line of the segment
    let mut sep_line: Option<usize> = None;
    let flush = |start: usize, end: usize, sep: Option<usize>, out: &mut Vec<DocPos>| {
        let content = (start..end).find(|&i| {
            let l = lines[i].trim();
            !l.is_empty() && !l.starts_with('#')
        });
        if let Some(c) = content {
            let mut top = c;
            while top > start && lines[top - 1].trim_start().starts_with('#') {
                top -= 1;
            }
            let (line, col) = match sep {
                Some(s) => (s as u64 + 1, 1),
                None => (
                    c as u64 + 1,
                    lines[c].len() as u64 - lines[c].trim_start().len() as u64 + 1,
                ),
            };
            out.push(DocPos {
                line,
                col,
                top: top as u64 + 1,
            });
        }
    };
    for (i, l) in lines.iter().enumerate() {
        if *l == "---" || l.starts_with("--- ") || l.trim_end() == "---" {
            flush(seg_start, i, sep_line, &mut out);
            seg_start = i + 1;
            sep_line = Some(i);
        }
    }
    flush(seg_start, lines.len(), sep_line, &mut out);
    out
}

/// Per-document strict decoder: collects go-yaml "construct" errors.
struct Dec {
    top: u64,
    errs: Vec<String>,
}

fn tag(v: &Value) -> &'static str {
    match v {
        Value::Null => "!!null",
        Value::Bool(_) => "!!bool",
        Value::Int(_) => "!!int",
        Value::Float(_) => "!!float",
        Value::String(_) => "!!str",
        Value::Seq(_) => "!!seq",
        Value::Map(_) => "!!map",
    }
}

impl Dec {
    fn line(&self, n: &Node) -> u64 {
        n.line.saturating_sub(self.top) + 1
    }

    fn mismatch(&mut self, n: &Node, into: &str) {
        let what = match n.scalar_text() {
            Some(s) => format!("{} `{}`", tag(&n.value), s),
            None => tag(&n.value).to_string(),
        };
        self.errs.push(format!(
            "line {}: cannot construct {what} into {into}",
            self.line(n)
        ));
    }

    /// The known fields of a mapping; unknown ones become errors naming `models.<ty>`.
    fn fields<'n>(&mut self, n: &'n Node, ty: &str, known: &[&str]) -> Vec<(String, &'n Node)> {
        let Some(entries) = n.as_map() else {
            if !n.is_null() {
                self.mismatch(n, &format!("models.{ty}"));
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = k.scalar_text().unwrap_or_default();
            if known.contains(&key.as_str()) {
                out.push((key, v));
            } else {
                self.errs.push(format!(
                    "line {}: field {key} not found in type models.{ty}",
                    self.line(k)
                ));
            }
        }
        out
    }

    fn string(&mut self, n: &Node) -> String {
        if n.is_null() {
            return String::new();
        }
        match n.scalar_text() {
            Some(s) => s,
            None => {
                self.mismatch(n, "string");
                String::new()
            }
        }
    }

    fn bool(&mut self, n: &Node) -> bool {
        match &n.value {
            Value::Bool(b) => *b,
            Value::Null => false,
            _ => {
                self.mismatch(n, "bool");
                false
            }
        }
    }

    fn u32(&mut self, n: &Node) -> u32 {
        match &n.value {
            Value::Int(i) if (0..=i128::from(u32::MAX)).contains(i) => *i as u32,
            Value::Null => 0,
            _ => {
                self.mismatch(n, "uint32");
                0
            }
        }
    }

    fn strings(&mut self, n: &Node) -> Vec<String> {
        match &n.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items.iter().map(|i| self.string(i)).collect(),
            _ => {
                self.mismatch(n, "[]string");
                Vec::new()
            }
        }
    }

    fn string_map(&mut self, n: &Node) -> BTreeMap<String, String> {
        match &n.value {
            Value::Null => BTreeMap::new(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), self.string(v)))
                .collect(),
            _ => {
                self.mismatch(n, "map[string]string");
                BTreeMap::new()
            }
        }
    }

    fn descriptors(&mut self, key: &str, v: &Node, d: &mut Descriptors) -> bool {
        match key {
            "labels" => d.labels = self.string_map(v),
            "annotations" => d.annotations = self.string_map(v),
            _ => return false,
        }
        true
    }
}

/// Load a template. `base` is the directory patch files are relative to. The error is the
/// text after `error loading template: ` (omni.md §7.4).
pub fn load(base: &Path, text: &str) -> Result<Template, String> {
    let file = Arc::new(base.join("template.yaml"));
    let docs = harness::yaml::parse_documents(&file, text).map_err(|e| {
        format!(
            "error decoding template: yaml: line {}: {}",
            e.location.line,
            e.message.trim_start_matches("invalid YAML: ")
        )
    })?;
    let positions = doc_positions(text);
    let mut models = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let pos = positions
            .get(i)
            .copied()
            .filter(|_| positions.len() == docs.len())
            .unwrap_or(DocPos {
                line: doc.line,
                col: doc.col,
                top: doc.line,
            });
        let at = format!("{}:{}", pos.line, pos.col);
        let kind = find_kind(doc).map_err(|e| format!("error in document at line {at}: {e}"))?;
        let mut dec = Dec {
            top: pos.top,
            errs: Vec::new(),
        };
        let model = match kind.as_str() {
            "Cluster" => Model::Cluster(decode_cluster(&mut dec, doc)),
            "ControlPlane" => Model::ControlPlane(
                decode_set(&mut dec, doc, "ControlPlane")
                    .map_err(|e| format!("error decoding document at line {at}: {e}"))?,
            ),
            "Workers" => Model::Workers(
                decode_set(&mut dec, doc, "Workers")
                    .map_err(|e| format!("error decoding document at line {at}: {e}"))?,
            ),
            "Machine" => Model::Machine(decode_machine(&mut dec, doc)),
            other => {
                return Err(format!(
                    "error in document at line {at}: unknown model kind {other:?}"
                ));
            }
        };
        if !dec.errs.is_empty() {
            let body = if dec.errs.len() == 1 {
                format!(" {}", dec.errs[0])
            } else {
                format!("\n  {}", dec.errs.join("\n  "))
            };
            return Err(format!(
                "error decoding document at line {at}: yaml: construct errors:{body}"
            ));
        }
        models.push(model);
    }
    Ok(Template {
        models,
        base: base.to_path_buf(),
    })
}

/// `kind` of a document (go-yaml node kinds print as `%q` of their number).
fn find_kind(doc: &Node) -> Result<String, String> {
    let Some(entries) = doc.as_map() else {
        let code = match doc.value {
            Value::Seq(_) => "'\\x02'",
            _ => "'\\b'",
        };
        return Err(format!("unexpected node kind {code}, expecting mapping"));
    };
    for (k, v) in entries {
        if k.as_str() == Some("kind") {
            return match &v.value {
                Value::Seq(_) => Err("unexpected value type for kind field '\\x02'".into()),
                Value::Map(_) => Err("unexpected value type for kind field '\\x04'".into()),
                _ => Ok(v.scalar_text().unwrap_or_default()),
            };
        }
    }
    Err("kind field not found".into())
}

use harness::model::template::CLUSTER_FIELDS;

fn decode_cluster(d: &mut Dec, doc: &Node) -> ClusterM {
    let mut c = ClusterM::default();
    for (k, v) in d.fields(doc, "Cluster", CLUSTER_FIELDS) {
        if d.descriptors(&k, v, &mut c.desc) {
            continue;
        }
        match k.as_str() {
            "name" => c.name = d.string(v),
            "kubernetes" => {
                for (kk, kv) in d.fields(
                    v,
                    "KubernetesCluster",
                    &["version", "manifests", "healthchecks"],
                ) {
                    match kk.as_str() {
                        "version" => c.kubernetes_version = d.string(kv),
                        "manifests" => decode_list(
                            d,
                            kv,
                            "KubernetesManifest",
                            &["name", "mode", "inline", "file", "labels", "annotations"],
                        ),
                        _ => decode_list(
                            d,
                            kv,
                            "KubernetesHealthCheck",
                            &[
                                "name",
                                "idOverride",
                                "job",
                                "file",
                                "interval",
                                "labels",
                                "annotations",
                            ],
                        ),
                    }
                }
            }
            "talos" => {
                for (_, tv) in d.fields(v, "TalosCluster", &["version"]) {
                    c.talos_version = d.string(tv);
                }
            }
            "features" => {
                let known = [
                    "diskEncryption",
                    "enableWorkloadProxy",
                    "useEmbeddedDiscoveryService",
                    "disablePublicDiscoveryService",
                    "enableNodeAuditSkip",
                    "backupConfiguration",
                ];
                for (fk, fv) in d.fields(v, "Features", &known) {
                    match fk.as_str() {
                        "diskEncryption" => c.disk_encryption = d.bool(fv),
                        "enableWorkloadProxy" => c.enable_workload_proxy = d.bool(fv),
                        "useEmbeddedDiscoveryService" => {
                            c.use_embedded_discovery_service = d.bool(fv)
                        }
                        "disablePublicDiscoveryService" => {
                            c.disable_public_discovery_service = d.bool(fv)
                        }
                        "enableNodeAuditSkip" => c.enable_node_audit_skip = d.bool(fv),
                        _ => {
                            for (_, iv) in d.fields(fv, "BackupConfiguration", &["interval"]) {
                                let s = d.string(iv);
                                match parse_duration(&s) {
                                    Some(secs) => c.backup_interval_secs = secs,
                                    None => d.mismatch(iv, "time.Duration"),
                                }
                            }
                        }
                    }
                }
            }
            "patches" => c.patches = decode_patches(d, v),
            "systemExtensions" => c.system_extensions = d.strings(v),
            "kernelArgs" => {
                d.strings(v);
            }
            _ => {}
        }
    }
    c
}

fn decode_list(d: &mut Dec, n: &Node, ty: &str, known: &[&str]) {
    match &n.value {
        Value::Seq(items) => {
            for i in items {
                d.fields(i, ty, known);
            }
        }
        Value::Null => {}
        _ => d.mismatch(n, &format!("[]models.{ty}")),
    }
}

use harness::model::template::SET_FIELDS;

fn decode_set(d: &mut Dec, doc: &Node, ty: &str) -> Result<SetM, String> {
    let mut s = SetM::default();
    for (k, v) in d.fields(doc, ty, SET_FIELDS) {
        if d.descriptors(&k, v, &mut s.desc) {
            continue;
        }
        match k.as_str() {
            "name" => s.name = d.string(v),
            "machines" => s.machines = d.strings(v),
            "machineClass" => {
                let mut name = String::new();
                let mut size = Size::default();
                for (mk, mv) in d.fields(v, "MachineClassConfig", &["name", "size"]) {
                    if mk == "name" {
                        name = d.string(mv);
                    } else {
                        size = parse_size(d, mv)?;
                    }
                }
                s.machine_class = Some((name, size));
            }
            "bootstrapSpec" => {
                let (mut uuid, mut snap) = (String::new(), String::new());
                for (bk, bv) in d.fields(v, "BootstrapSpec", &["clusterUUID", "snapshot"]) {
                    if bk == "clusterUUID" {
                        uuid = d.string(bv);
                    } else {
                        snap = d.string(bv);
                    }
                }
                s.bootstrap_spec = Some((uuid, snap));
            }
            "updateStrategy" | "deleteStrategy" | "upgradeStrategy" => {
                let mut st = StrategyM::default();
                for (sk, sv) in d.fields(v, "UpdateStrategyConfig", &["type", "rolling"]) {
                    if sk == "type" {
                        let text = d.string(sv);
                        st.kind = match text.as_str() {
                            "Unset" => Some(0),
                            "Rolling" => Some(1),
                            other => return Err(format!("invalid update strategy type {other}")),
                        };
                    } else {
                        for (_, rv) in
                            d.fields(sv, "RollingUpdateStrategyConfig", &["maxParallelism"])
                        {
                            st.max_parallelism = Some(d.u32(rv));
                        }
                    }
                }
                match k.as_str() {
                    "updateStrategy" => s.update_strategy = Some(st),
                    "deleteStrategy" => s.delete_strategy = Some(st),
                    _ => {}
                }
            }
            "patches" => s.patches = decode_patches(d, v),
            "systemExtensions" => s.system_extensions = d.strings(v),
            "kernelArgs" => s.kernel_args = Some(d.strings(v)),
            _ => {}
        }
    }
    Ok(s)
}

/// `size`: a count, or `unlimited` / `infinity` / `∞` / `Unlimited` / `Static` (§7.1).
fn parse_size(d: &mut Dec, n: &Node) -> Result<Size, String> {
    let text = match n.scalar_text() {
        Some(s) => s,
        None => {
            d.mismatch(n, "string");
            return Ok(Size::default());
        }
    };
    match text.as_str() {
        "unlimited" | "∞" | "infinity" | "Unlimited" => Ok(Size {
            count: 0,
            unlimited: true,
        }),
        "Static" => Ok(Size::default()),
        other => other
            .parse::<u32>()
            .map(|count| Size {
                count,
                unlimited: false,
            })
            .map_err(|_| {
                let why = if other.parse::<u64>().is_ok() {
                    "value out of range"
                } else {
                    "invalid syntax"
                };
                format!(
                    "invalid machine count {other}: strconv.ParseUint: parsing {other:?}: {why}"
                )
            }),
    }
}

fn decode_machine(d: &mut Dec, doc: &Node) -> MachineM {
    let mut m = MachineM::default();
    for (k, v) in d.fields(doc, "Machine", harness::model::template::MACHINE_FIELDS) {
        if d.descriptors(&k, v, &mut m.desc) {
            continue;
        }
        match k.as_str() {
            "name" => m.name = d.string(v),
            "locked" => m.locked = d.bool(v),
            "install" => {
                for (ik, iv) in d.fields(v, "MachineInstall", &["disk", "diskSelector"]) {
                    if ik == "disk" {
                        m.install_disk = Some(d.string(iv));
                    } else {
                        d.string(iv);
                    }
                }
            }
            "patches" => m.patches = decode_patches(d, v),
            "systemExtensions" => m.system_extensions = d.strings(v),
            "kernelArgs" => {
                d.strings(v);
            }
            _ => {}
        }
    }
    m
}

fn decode_patches(d: &mut Dec, n: &Node) -> Vec<PatchM> {
    let items = match &n.value {
        Value::Seq(items) => items,
        Value::Null => return Vec::new(),
        _ => {
            d.mismatch(n, "models.PatchList");
            return Vec::new();
        }
    };
    let known = [
        "name",
        "idOverride",
        "labels",
        "annotations",
        "file",
        "inline",
    ];
    items
        .iter()
        .map(|item| {
            let mut p = PatchM::default();
            for (k, v) in d.fields(item, "Patch", &known) {
                if d.descriptors(&k, v, &mut p.desc) {
                    continue;
                }
                match k.as_str() {
                    "name" => p.name = d.string(v),
                    "idOverride" => p.id_override = d.string(v),
                    "file" => p.file = d.string(v),
                    _ => {
                        p.inline = match &v.value {
                            Value::Null => None,
                            Value::Map(_) => Some(Inline::Docs(vec![v.clone()])),
                            Value::Seq(items) => Some(Inline::Docs(items.clone())),
                            Value::String(s) => Some(Inline::Text(s.clone())),
                            _ => {
                                d.mismatch(v, "map[string]interface {}");
                                None
                            }
                        }
                    }
                }
            }
            p
        })
        .collect()
}

/// Go `time.ParseDuration` for the simple forms templates use (`1h`, `30m`, `1h30m`, `90s`).
fn parse_duration(s: &str) -> Option<u64> {
    crate::omni::cli::parse_duration(s).map(|d| d.as_secs())
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// go-multierror's list format.
pub fn multierror(errs: &[String]) -> String {
    if errs.len() == 1 {
        return format!("1 error occurred:\n\t* {}\n\n", errs[0]);
    }
    let points: Vec<String> = errs.iter().map(|e| format!("* {e}")).collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        errs.len(),
        points.join("\n\t")
    )
}

fn descriptor_errors(d: &Descriptors) -> Vec<String> {
    let mut out = Vec::new();
    for k in d.labels.keys() {
        if k.starts_with(RESERVED_PREFIX) {
            out.push(format!(
                "label {k:?} is invalid: prefix {RESERVED_PREFIX:?} is reserved for internal use"
            ));
        }
    }
    for k in d.annotations.keys() {
        if k.starts_with(RESERVED_PREFIX) {
            out.push(format!(
                "annotation {k:?} is invalid: prefix {RESERVED_PREFIX:?} is reserved for internal use"
            ));
        }
    }
    out
}

/// A lenient semver check (blang/semver `ParseTolerant` after removing the `v`).
fn semver_error(v: &str) -> Option<String> {
    let core = v.trim_start_matches('v');
    let core = core.split(['-', '+']).next().unwrap_or(core);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 && parts.len() != 2 && parts.len() != 1 {
        return Some("No Major.Minor.Patch elements found".into());
    }
    let names = ["major", "minor", "patch"];
    for (p, name) in parts.iter().zip(names) {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("Invalid character(s) found in {name} number {p:?}"));
        }
    }
    None
}

fn version_tuple(v: &str) -> (u64, u64) {
    let mut it = v
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

impl ClusterM {
    fn validate(&self, base: &Path) -> Option<String> {
        let mut errs = Vec::new();
        if self.name.is_empty() {
            errs.push("name is required".to_string());
        } else if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errs.push("name should only contain letters, digits, dashes and underscores".into());
        }
        if self.kubernetes_version.is_empty() {
            errs.push("error validating Kubernetes version: version is required".into());
        } else if let Some(e) = semver_error(&self.kubernetes_version) {
            errs.push(format!(
                "error validating Kubernetes version: version should be in semver format: {e}"
            ));
        }
        if self.talos_version.is_empty() {
            errs.push("error validating Talos version: version is required".into());
        } else if !self.talos_version.starts_with('v') {
            errs.push("error validating Talos version: version should start with 'v'".into());
        } else if let Some(e) = semver_error(&self.talos_version) {
            errs.push(format!(
                "error validating Talos version: version should be in semver format: {e}"
            ));
        } else if self.disk_encryption && version_tuple(&self.talos_version) < (1, 5) {
            errs.push("disk encryption is supported only for Talos version >= 1.5.0".into());
        }
        errs.extend(descriptor_errors(&self.desc));
        errs.extend(self.patches.iter().filter_map(|p| p.validate(base)));
        (!errs.is_empty()).then(|| {
            format!(
                "error validating cluster {:?}: {}",
                self.name,
                multierror(&errs)
            )
        })
    }
}

impl SetM {
    fn validate(&self, control_plane: bool, base: &Path) -> Option<String> {
        let mut errs = Vec::new();
        if control_plane {
            if !self.name.is_empty() {
                errs.push("custom name is not allowed in the controlplane".to_string());
            }
            if let Some((uuid, snap)) = &self.bootstrap_spec {
                if uuid.is_empty() {
                    errs.push("clusterUUID is required in bootstrapSpec".into());
                }
                if snap.is_empty() {
                    errs.push("snapshot is required in bootstrapSpec".into());
                }
            }
            if self.update_strategy.is_some() {
                errs.push("updateStrategy is not allowed in the controlplane".into());
            }
            if self.delete_strategy.is_some() {
                errs.push("deleteStrategy is not allowed in the controlplane".into());
            }
        } else {
            if self.name == "control-planes" {
                errs.push("name \"control-planes\" cannot be used in workers".into());
            }
            if self.bootstrap_spec.is_some() {
                errs.push("bootstrapSpec is not allowed in workers".into());
            }
        }
        errs.extend(descriptor_errors(&self.desc));
        if !self.machines.is_empty() && self.machine_class.is_some() {
            errs.push("machine set can not have both machines and machine class defined".into());
        }
        if self.machine_class.is_some() && self.kernel_args.is_some() {
            errs.push(
                "kernelArgs cannot be defined for machine set since it uses machine class".into(),
            );
        }
        for m in &self.machines {
            if let Some(e) = uuid_error(m) {
                errs.push(format!("invalid machine ID {m:?}: {e}"));
            }
        }
        errs.extend(self.patches.iter().filter_map(|p| p.validate(base)));
        let what = if control_plane {
            "controlplane"
        } else {
            "workers"
        };
        (!errs.is_empty()).then(|| format!("{what} is invalid: {}", multierror(&errs)))
    }

    fn set_name(&self, control_plane: bool) -> String {
        if control_plane {
            "control-planes".into()
        } else if self.name.is_empty() {
            "workers".into()
        } else {
            self.name.clone()
        }
    }
}

/// google/uuid `Parse` errors for the common cases.
fn uuid_error(s: &str) -> Option<String> {
    let len = s.len();
    if ![36, 38, 41, 45, 32].contains(&len) {
        return Some(format!("invalid UUID length: {len}"));
    }
    let hex: String = s
        .trim_start_matches("urn:uuid:")
        .trim_matches(['{', '}'])
        .replace('-', "");
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some("invalid UUID format".into());
    }
    None
}

impl MachineM {
    fn validate(&self, base: &Path) -> Option<String> {
        let mut errs = Vec::new();
        if let Some(e) = uuid_error(&self.name) {
            errs.push(format!("invalid machine ID {:?}: {e}", self.name));
        }
        errs.extend(descriptor_errors(&self.desc));
        errs.extend(self.patches.iter().filter_map(|p| p.validate(base)));
        (!errs.is_empty())
            .then(|| format!("machine {:?} is invalid: {}", self.name, multierror(&errs)))
    }
}

impl PatchM {
    fn display_name(&self) -> String {
        if self.name.is_empty() {
            self.file.clone()
        } else {
            self.name.clone()
        }
    }

    fn validate(&self, base: &Path) -> Option<String> {
        let mut errs = descriptor_errors(&self.desc);
        if !self.file.is_empty() && self.inline.is_some() {
            errs.push("path and inline are mutually exclusive".into());
        }
        if self.file.is_empty() && self.inline.is_none() {
            errs.push("path or inline is required".into());
        }
        if !self.file.is_empty() {
            if let Err(e) = std::fs::read(base.join(&self.file)) {
                errs.push(format!(
                    "failed to access {:?}: {}",
                    self.file,
                    go_io_error(&self.file, &e)
                ));
            }
        } else if self.inline.is_some() && self.name.is_empty() && self.id_override.is_empty() {
            errs.push("either name or idOverride is required for inline patches".into());
        }
        (!errs.is_empty()).then(|| {
            format!(
                "patch {:?} is invalid: {}",
                self.display_name(),
                multierror(&errs)
            )
        })
    }

    /// The patch content, as Omni stores it in `ConfigPatch.spec.data`.
    fn data(&self, base: &Path) -> Result<String, String> {
        if !self.file.is_empty() {
            return std::fs::read_to_string(base.join(&self.file)).map_err(|e| {
                format!(
                    "failed to read patch {:?}: {}",
                    self.display_name(),
                    go_io_error(&self.file, &e)
                )
            });
        }
        Ok(match &self.inline {
            Some(Inline::Text(s)) => s.clone(),
            Some(Inline::Docs(docs)) => docs
                .iter()
                .map(|d| to_yaml(&node_sorted(d), 4))
                .collect::<Vec<_>>()
                .join("---\n"),
            None => String::new(),
        })
    }
}

/// `open x: no such file or directory`, the way Go's os errors read.
pub fn go_io_error(path: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => {
            let s = e.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_lowercase()
        }
    };
    format!("open {path}: {why}")
}

/// A YAML node as Go's `map[string]any` marshals it: mapping keys sorted.
pub fn node_sorted(n: &Node) -> Yv {
    match &n.value {
        Value::Null => Yv::Null,
        Value::Bool(b) => Yv::Bool(*b),
        Value::Int(i) => match i64::try_from(*i) {
            Ok(v) => Yv::Int(v),
            Err(_) => u64::try_from(*i)
                .map(Yv::UInt)
                .unwrap_or(Yv::Str(i.to_string())),
        },
        Value::Float(f) => Yv::Float(*f),
        Value::String(s) => Yv::Str(s.clone()),
        Value::Seq(items) => Yv::Seq(items.iter().map(node_sorted).collect()),
        Value::Map(entries) => {
            let mut e: Vec<(String, Yv)> = entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), node_sorted(v)))
                .collect();
            e.sort_by(|a, b| a.0.cmp(&b.0));
            Yv::Map(e)
        }
    }
}

impl Template {
    /// Validate the whole template; the error is a go-multierror text (omni.md §7.4).
    pub fn validate(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        for m in &self.models {
            let e = match m {
                Model::Cluster(c) => c.validate(&self.base),
                Model::ControlPlane(s) => s.validate(true, &self.base),
                Model::Workers(s) => s.validate(false, &self.base),
                Model::Machine(mm) => mm.validate(&self.base),
            };
            errs.extend(e);
        }
        let clusters = self
            .models
            .iter()
            .filter(|m| matches!(m, Model::Cluster(_)))
            .count();
        let cps: Vec<&SetM> = self
            .models
            .iter()
            .filter_map(|m| match m {
                Model::ControlPlane(s) => Some(s),
                _ => None,
            })
            .collect();
        let workers: Vec<&SetM> = self
            .models
            .iter()
            .filter_map(|m| match m {
                Model::Workers(s) => Some(s),
                _ => None,
            })
            .collect();
        if clusters != 1 {
            errs.push(format!("template should contain 1 cluster, got {clusters}"));
        }
        if cps.len() != 1 {
            errs.push(format!(
                "template should contain 1 controlplane, got {}",
                cps.len()
            ));
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut machine_sets: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for w in &workers {
            *names.entry(w.name.as_str()).or_default() += 1;
            for m in &w.machines {
                machine_sets
                    .entry(m.as_str())
                    .or_default()
                    .push(w.name.as_str());
            }
        }
        for (name, n) in &names {
            if *n > 1 {
                errs.push(format!("duplicate workers with name {name:?}"));
            }
        }
        for (m, sets) in &machine_sets {
            if sets.len() > 1 {
                let quoted: Vec<String> = sets.iter().map(|s| format!("{s:?}")).collect();
                errs.push(format!(
                    "machine {m:?} is used in multiple workers: [{}]",
                    quoted.join(" ")
                ));
            }
        }
        let cp_machines: Vec<&str> = cps
            .iter()
            .flat_map(|s| s.machines.iter().map(String::as_str))
            .collect();
        let both: Vec<&str> = machine_sets
            .keys()
            .copied()
            .filter(|m| cp_machines.contains(m))
            .collect();
        if !both.is_empty() {
            errs.push(format!(
                "machines [{}] are used in both controlplane and workers",
                both.join(" ")
            ));
        }
        for m in &self.models {
            if let Model::Machine(mm) = m {
                if !cp_machines.contains(&mm.name.as_str())
                    && !machine_sets.contains_key(mm.name.as_str())
                {
                    errs.push(format!(
                        "machine {:?} is not used in controlplane or workers",
                        mm.name
                    ));
                }
                if mm.locked && cp_machines.contains(&mm.name.as_str()) {
                    errs.push(format!(
                        "machine {:?} is locked and used in controlplane",
                        mm.name
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(multierror(&errs))
        }
    }

    /// The cluster name (`cluster model not found` without a Cluster document).
    pub fn cluster_name(&self) -> Result<String, String> {
        self.models
            .iter()
            .find_map(|m| match m {
                Model::Cluster(c) => Some(c.name.clone()),
                _ => None,
            })
            .ok_or_else(|| "cluster model not found".to_string())
    }

    /// The resources the template stands for (omni.md §7.2), in template order.
    pub fn translate(&self) -> Result<Vec<Resource>, String> {
        let cluster = self.cluster_name()?;
        let mut machine_desc: BTreeMap<&str, &MachineM> = BTreeMap::new();
        for m in &self.models {
            if let Model::Machine(mm) = m {
                machine_desc.insert(mm.name.as_str(), mm);
            }
        }
        let mut out = Vec::new();
        for m in &self.models {
            match m {
                Model::Cluster(c) => self.translate_cluster(c, &mut out)?,
                Model::ControlPlane(s) => {
                    self.translate_set(&cluster, s, true, &machine_desc, &mut out)?
                }
                Model::Workers(s) => {
                    self.translate_set(&cluster, s, false, &machine_desc, &mut out)?
                }
                Model::Machine(mm) => self.translate_machine(&cluster, mm, &mut out)?,
            }
        }
        Ok(out)
    }

    fn patches(
        &self,
        patches: &[PatchM],
        prefix: &str,
        base_weight: usize,
        labels: &[(&str, &str)],
        out: &mut Vec<Resource>,
    ) -> Result<(), String> {
        for (i, p) in patches.iter().enumerate() {
            let name = p.display_name();
            let id = if p.id_override.is_empty() {
                format!("{:03}-{prefix}-{name}", base_weight + i)
            } else {
                p.id_override.clone()
            };
            let mut r = Resource::new(
                t::CONFIG_PATCH,
                NS_DEFAULT,
                id,
                json!({"data": p.data(&self.base)?, "compresseddata": []}),
            )
            .with_annotation("name", name);
            for (k, v) in labels {
                r = r.with_label(*k, *v);
            }
            apply_desc(&mut r, &p.desc);
            out.push(r);
        }
        Ok(())
    }

    fn translate_cluster(&self, c: &ClusterM, out: &mut Vec<Resource>) -> Result<(), String> {
        let backup = if c.backup_interval_secs > 0 {
            json!({"interval": {"seconds": c.backup_interval_secs, "nanos": 0}, "enabled": true})
        } else {
            serde_json::Value::Null
        };
        let mut r = Resource::new(
            t::CLUSTER,
            NS_DEFAULT,
            c.name.clone(),
            json!({
                "kubernetesversion": c.kubernetes_version.trim_start_matches('v'),
                "talosversion": c.talos_version.trim_start_matches('v'),
                "features": {
                    "enableworkloadproxy": c.enable_workload_proxy,
                    "diskencryption": c.disk_encryption,
                    "useembeddeddiscoveryservice": c.use_embedded_discovery_service,
                    "enablenodeauditskip": c.enable_node_audit_skip,
                    "disablepublicdiscoveryservice": c.disable_public_discovery_service,
                },
                "backupconfiguration": backup,
            }),
        )
        .with_annotation(MANAGED_BY_TEMPLATES, "");
        apply_desc(&mut r, &c.desc);
        out.push(r);
        let prefix = format!("cluster-{}", c.name);
        self.patches(&c.patches, &prefix, 200, &[(LABEL_CLUSTER, &c.name)], out)?;
        extensions(&c.name, &c.name, &c.system_extensions, &[], out);
        Ok(())
    }

    fn translate_set(
        &self,
        cluster: &str,
        s: &SetM,
        control_plane: bool,
        machines: &BTreeMap<&str, &MachineM>,
        out: &mut Vec<Resource>,
    ) -> Result<(), String> {
        let id = format!("{cluster}-{}", s.set_name(control_plane));
        let role = if control_plane {
            LABEL_ROLE_CONTROLPLANE
        } else {
            LABEL_ROLE_WORKER
        };
        let strategy_config = |st: &Option<StrategyM>| {
            st.as_ref()
                .and_then(|s| s.max_parallelism)
                .map(|m| json!({"rolling": {"maxparallelism": m}}))
                .unwrap_or(serde_json::Value::Null)
        };
        let allocation = s
            .machine_class
            .as_ref()
            .map(|(name, size)| {
                json!({
                    "name": name,
                    "machinecount": size.count,
                    "allocationtype": u8::from(size.unlimited),
                })
            })
            .unwrap_or(serde_json::Value::Null);
        let mut r = Resource::new(
            t::MACHINE_SET,
            NS_DEFAULT,
            id.clone(),
            json!({
                "updatestrategy": s.update_strategy.as_ref().and_then(|u| u.kind).unwrap_or(1),
                "machineclass": null,
                "bootstrapspec": s.bootstrap_spec.as_ref().map(|(u, sn)| json!({"clusteruuid": u, "snapshot": sn})),
                "deletestrategy": s.delete_strategy.as_ref().and_then(|u| u.kind).unwrap_or(0),
                "updatestrategyconfig": strategy_config(&s.update_strategy),
                "deletestrategyconfig": strategy_config(&s.delete_strategy),
                "machineallocation": allocation,
            }),
        )
        .with_label(LABEL_CLUSTER, cluster)
        .with_label(role, "");
        apply_desc(&mut r, &s.desc);
        out.push(r);
        if s.machine_class.is_none() {
            for m in &s.machines {
                let mut node = Resource::new(t::MACHINE_SET_NODE, NS_DEFAULT, m.clone(), json!({}))
                    .with_label(LABEL_CLUSTER, cluster)
                    .with_label(LABEL_MACHINE_SET, id.clone())
                    .with_label(role, "");
                if let Some(mm) = machines.get(m.as_str()) {
                    apply_desc(&mut node, &mm.desc);
                    if mm.locked {
                        node = node.with_annotation(ANNOTATION_LOCKED, "");
                    }
                }
                out.push(node);
            }
        }
        self.patches(
            &s.patches,
            &id,
            400,
            &[(LABEL_CLUSTER, cluster), (LABEL_MACHINE_SET, &id)],
            out,
        )?;
        extensions(
            cluster,
            &id,
            &s.system_extensions,
            &[(LABEL_MACHINE_SET, &id)],
            out,
        );
        Ok(())
    }

    fn translate_machine(
        &self,
        cluster: &str,
        m: &MachineM,
        out: &mut Vec<Resource>,
    ) -> Result<(), String> {
        if let Some(disk) = &m.install_disk {
            out.push(
                Resource::new(
                    t::CONFIG_PATCH,
                    NS_DEFAULT,
                    format!("000-cm-{}-install-disk", m.name),
                    json!({
                        "data": format!("machine:\n    install:\n        disk: {}\n", super::value::to_yaml(&Yv::Str(disk.clone()), 4).trim_end()),
                        "compresseddata": [],
                    }),
                )
                .with_label(LABEL_CLUSTER, cluster)
                .with_label(LABEL_CLUSTER_MACHINE, m.name.clone())
                .with_label(LABEL_SYSTEM_PATCH, "")
                .with_annotation("name", "install-disk"),
            );
        }
        let prefix = format!("cm-{}", m.name);
        self.patches(
            &m.patches,
            &prefix,
            400,
            &[(LABEL_CLUSTER, cluster), (LABEL_CLUSTER_MACHINE, &m.name)],
            out,
        )?;
        extensions(
            cluster,
            &m.name,
            &m.system_extensions,
            &[(LABEL_CLUSTER_MACHINE, &m.name)],
            out,
        );
        Ok(())
    }
}

fn apply_desc(r: &mut Resource, d: &Descriptors) {
    for (k, v) in &d.labels {
        r.metadata.labels.insert(k.clone(), v.clone());
    }
    for (k, v) in &d.annotations {
        r.metadata.annotations.insert(k.clone(), v.clone());
    }
}

fn extensions(
    cluster: &str,
    suffix: &str,
    exts: &[String],
    labels: &[(&str, &str)],
    out: &mut Vec<Resource>,
) {
    if exts.is_empty() {
        return;
    }
    let mut r = Resource::new(
        t::EXTENSIONS_CONFIGURATION,
        NS_DEFAULT,
        format!("schematic-{suffix}"),
        json!({"extensions": exts}),
    )
    .with_label(LABEL_CLUSTER, cluster);
    for (k, v) in labels {
        r = r.with_label(*k, *v);
    }
    out.push(r);
}

/// Canonical create order of template resources (`order.go`).
pub fn canonical_order(kind: &str) -> u8 {
    match kind {
        t::CLUSTER => 1,
        t::EXTENSIONS_CONFIGURATION => 2,
        t::CONFIG_PATCH => 3,
        t::MACHINE_SET => 4,
        t::MACHINE_SET_NODE => 5,
        _ => 6,
    }
}

// ---------------------------------------------------------------------------------------
// Status tree (omni.md §7.3)
// ---------------------------------------------------------------------------------------

fn enum_name(names: &[&str], v: i64) -> String {
    usize::try_from(v)
        .ok()
        .and_then(|i| names.get(i))
        .map(|s| (*s).to_string())
        .unwrap_or_else(|| v.to_string())
}

const CLUSTER_PHASES: &[&str] = &[
    "UNKNOWN",
    "SCALING_UP",
    "SCALING_DOWN",
    "RUNNING",
    "DESTROYING",
];
const SET_PHASES: &[&str] = &[
    "Unknown",
    "ScalingUp",
    "ScalingDown",
    "Running",
    "Destroying",
    "Failed",
    "Reconfiguring",
    "Upgrading",
];
const STAGES: &[&str] = &[
    "UNKNOWN",
    "BOOTING",
    "INSTALLING",
    "CONFIGURING",
    "RUNNING",
    "DESTROYING",
    "UPGRADING",
    "REBOOTING",
    "SHUTTING_DOWN",
    "BEFORE_DESTROY",
    "POWERING_ON",
    "POWERED_OFF",
];
const UPGRADE_PHASES: &[&str] = &[
    "Unknown",
    "Upgrading",
    "Done",
    "Failed",
    "Reverting",
    "UpdatingMachineSchematics",
];
const CONDITION_TYPES: &[&str] = &["UnknownCondition", "Etcd", "WireguardConnection"];

fn int(v: &serde_json::Value, path: &[&str]) -> i64 {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0)
}

fn flag(v: &serde_json::Value, key: &str) -> bool {
    v.get(key)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

fn ready(b: bool) -> &'static str {
    if b { "Ready" } else { "Not Ready" }
}

struct TreeNode {
    text: String,
    children: Vec<TreeNode>,
}

fn print_tree(root: &TreeNode) -> String {
    let mut out = format!("{}\n", root.text);
    fn walk(out: &mut String, nodes: &[TreeNode], prefix: &str) {
        for (i, n) in nodes.iter().enumerate() {
            let last = i + 1 == nodes.len();
            out.push_str(prefix);
            out.push_str(if last { "└── " } else { "├── " });
            out.push_str(&n.text);
            out.push('\n');
            let next = format!("{prefix}{}", if last { "    " } else { "│   " });
            walk(out, &n.children, &next);
        }
    }
    walk(&mut out, &root.children, "");
    out
}

/// Resources the status tree is built from (ClusterStatus plus the cluster-labelled statuses).
pub struct StatusInputs {
    pub cluster_status: Option<Resource>,
    pub machine_sets: Vec<Resource>,
    pub control_planes: Vec<Resource>,
    pub load_balancers: Vec<Resource>,
    pub kubernetes_upgrades: Vec<Resource>,
    pub talos_upgrades: Vec<Resource>,
    pub machines: Vec<Resource>,
}

/// Render the status tree; `None` until the ClusterStatus exists. The flag is "healthy".
pub fn render_status(inp: &StatusInputs) -> Option<(String, bool)> {
    let cs = inp.cluster_status.as_ref()?;
    let mut healthy = int(&cs.spec, &["phase"]) == 3 && flag(&cs.spec, "ready");
    for m in &inp.machine_sets {
        healthy &= int(&m.spec, &["phase"]) == 3 && flag(&m.spec, "ready");
    }
    for k in &inp.kubernetes_upgrades {
        healthy &= int(&k.spec, &["phase"]) == 2;
    }
    for k in &inp.talos_upgrades {
        healthy &= int(&k.spec, &["phase"]) == 2;
    }
    let cluster = cs.id().to_string();
    let mut root = TreeNode {
        text: format!(
            "Cluster {:?} {} {} ({}/{}) (healthy/total)",
            cluster,
            enum_name(CLUSTER_PHASES, int(&cs.spec, &["phase"])),
            ready(flag(&cs.spec, "ready")),
            int(&cs.spec, &["machines", "healthy"]),
            int(&cs.spec, &["machines", "total"]),
        ),
        children: Vec::new(),
    };
    let mut ku = inp.kubernetes_upgrades.clone();
    ku.sort_by(|a, b| a.id().cmp(b.id()));
    for k in ku {
        root.children.push(TreeNode {
            text: format!(
                "Kubernetes Upgrade {} {}",
                enum_name(UPGRADE_PHASES, int(&k.spec, &["phase"])),
                k.spec.get("step").and_then(|s| s.as_str()).unwrap_or("")
            ),
            children: Vec::new(),
        });
    }
    let mut tu = inp.talos_upgrades.clone();
    tu.sort_by(|a, b| a.id().cmp(b.id()));
    for k in tu {
        root.children.push(TreeNode {
            text: format!(
                "Talos Upgrade {} {}",
                enum_name(UPGRADE_PHASES, int(&k.spec, &["phase"])),
                k.spec.get("step").and_then(|s| s.as_str()).unwrap_or("")
            ),
            children: Vec::new(),
        });
    }
    let default_workers = format!("{cluster}-workers");
    let mut sets = inp.machine_sets.clone();
    let rank = |r: &Resource| {
        if r.metadata.labels.contains_key(LABEL_ROLE_CONTROLPLANE) {
            0
        } else if r.id() == default_workers {
            1
        } else {
            2
        }
    };
    sets.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.id().cmp(b.id())));
    for set in sets {
        let is_cp = set.metadata.labels.contains_key(LABEL_ROLE_CONTROLPLANE);
        let title = if is_cp {
            "Control Plane"
        } else if set.id() == default_workers {
            "Workers"
        } else {
            "Additional Workers"
        };
        let mut node = TreeNode {
            text: format!(
                "{title} {:?} {} {} ({}/{})",
                set.id(),
                enum_name(SET_PHASES, int(&set.spec, &["phase"])),
                ready(flag(&set.spec, "ready")),
                int(&set.spec, &["machines", "healthy"]),
                int(&set.spec, &["machines", "total"]),
            ),
            children: Vec::new(),
        };
        if is_cp {
            let mut lbs = inp.load_balancers.clone();
            lbs.sort_by(|a, b| a.id().cmp(b.id()));
            for lb in lbs {
                node.children.push(TreeNode {
                    text: format!("Load Balancer {}", ready(flag(&lb.spec, "healthy"))),
                    children: Vec::new(),
                });
            }
            let mut cps = inp.control_planes.clone();
            cps.sort_by(|a, b| a.id().cmp(b.id()));
            for cp in cps {
                let failing: Vec<String> = cp
                    .spec
                    .get("conditions")
                    .and_then(|c| c.as_array())
                    .map(|conds| {
                        conds
                            .iter()
                            .filter(|c| int(c, &["status"]) == 2)
                            .map(|c| enum_name(CONDITION_TYPES, int(c, &["type"])))
                            .collect()
                    })
                    .unwrap_or_default();
                let text = if failing.is_empty() {
                    "Status Checks OK".to_string()
                } else {
                    format!("Status Checks Failing: [{}]", failing.join(" "))
                };
                node.children.push(TreeNode {
                    text,
                    children: Vec::new(),
                });
            }
        }
        let mut machines: Vec<&Resource> = inp
            .machines
            .iter()
            .filter(|m| m.label(LABEL_MACHINE_SET) == Some(set.id()))
            .collect();
        machines.sort_by(|a, b| a.id().cmp(b.id()));
        for m in machines {
            node.children.push(TreeNode {
                text: machine_line(m),
                children: Vec::new(),
            });
        }
        root.children.push(node);
    }
    Some((print_tree(&root), healthy))
}

fn machine_line(m: &Resource) -> String {
    let stage = int(&m.spec, &["stage"]);
    let mut s = format!("Machine {:?}", m.id());
    if let Some(n) = m.label("omni.sidero.dev/node-name") {
        s.push_str(&format!("({n})"));
    }
    s.push(' ');
    s.push_str(&enum_name(STAGES, stage));
    if stage == 4 {
        s.push(' ');
        s.push_str(ready(flag(&m.spec, "ready")));
    }
    if !m.metadata.labels.contains_key("omni.sidero.dev/connected") {
        s.push_str(" Unreachable");
    }
    if m.metadata.annotations.contains_key(ANNOTATION_LOCKED) {
        s.push_str(" Locked");
    }
    if !flag(&m.spec, "configuptodate") {
        s.push_str(" Config Outdated");
    }
    if m.metadata
        .labels
        .contains_key("omni.sidero.dev/locked-update")
    {
        s.push_str(" Pending Config Update");
    } else if int(&m.spec, &["configapplystatus"]) == 3 {
        s.push_str(" Config Apply Failed");
    }
    s
}

// ---------------------------------------------------------------------------------------
// Unified diffs of resource YAML
// ---------------------------------------------------------------------------------------

/// The 2-space YAML a resource is diffed as.
pub fn diff_yaml(r: &Resource) -> String {
    to_yaml(&r.to_yv(), 2)
}

/// A unified diff (3 lines of context) between two texts, `None` when equal.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // LCS table.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // Edit script: (' ' | '-' | '+', line, old index, new index)
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(3);
        let mut end = (changed[k] + 4).min(ops.len());
        let mut next = k + 1;
        while next < changed.len() && changed[next] < end + 3 {
            end = (changed[next] + 4).min(ops.len());
            next += 1;
        }
        let (mut old_start, mut new_start) = (1usize, 1usize);
        for (c, _) in &ops[..start] {
            if *c != '+' {
                old_start += 1;
            }
            if *c != '-' {
                new_start += 1;
            }
        }
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|(c, _)| *c != '+').count();
        let new_len = hunk.iter().filter(|(c, _)| *c != '-').count();
        let range = |s: usize, l: usize| {
            if l == 0 {
                format!("{},0", s - 1)
            } else if l == 1 {
                s.to_string()
            } else {
                format!("{s},{l}")
            }
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(old_start, old_len),
            range(new_start, new_len)
        ));
        for (c, l) in hunk {
            out.push(*c);
            out.push_str(l);
            out.push('\n');
        }
        k = next;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> (PathBuf, String) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/seed/clusters/talos-prod-01.yaml");
        let text = std::fs::read_to_string(&p).unwrap();
        (p.parent().unwrap().to_path_buf(), text)
    }

    #[test]
    fn the_seed_template_translates_to_omni_ids() {
        let (base, text) = seed();
        let t = load(&base, &text).unwrap();
        t.validate().unwrap();
        let ids: Vec<String> = t
            .translate()
            .unwrap()
            .iter()
            .map(Resource::describe)
            .collect();
        assert_eq!(
            ids,
            [
                "Clusters.omni.sidero.dev(talos-prod-01)",
                "ConfigPatches.omni.sidero.dev(200-cluster-talos-prod-01-disable-default-cni-and-kube-proxy)",
                "ConfigPatches.omni.sidero.dev(201-cluster-talos-prod-01-node-labels)",
                "MachineSets.omni.sidero.dev(talos-prod-01-control-planes)",
                "MachineSets.omni.sidero.dev(talos-prod-01-workers)",
            ]
        );
        let patch = &t.translate().unwrap()[1];
        assert_eq!(
            patch.spec["data"],
            "cluster:\n    network:\n        cni:\n            name: none\n    proxy:\n        disabled: true\n"
        );
    }

    #[test]
    fn load_errors_use_omni_wording() {
        let base = Path::new("/tmp");
        let e = load(base, "kind: Cluster\nname: a\ncontainerd: {}\n").unwrap_err();
        assert_eq!(
            e,
            "error decoding document at line 1:1: yaml: construct errors: line 3: field containerd not found in type models.Cluster"
        );
        let e = load(base, "kind: FunnyCluster\n").unwrap_err();
        assert_eq!(
            e,
            "error in document at line 1:1: unknown model kind \"FunnyCluster\""
        );
        let e = load(base, "name: x\n").unwrap_err();
        assert_eq!(e, "error in document at line 1:1: kind field not found");
        let e = load(
            base,
            "kind: Cluster\n---\nkind: Workers\nmachineClass: {name: w, size: three}\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "error decoding document at line 2:1: invalid machine count three: strconv.ParseUint: parsing \"three\": invalid syntax"
        );
    }

    #[test]
    fn validation_errors_are_multierrors() {
        let t = load(
            Path::new("/tmp"),
            "kind: Cluster\nname: c\nkubernetes: {version: v1.34.2}\ntalos: {version: 1.11.5}\n---\nkind: ControlPlane\n---\nkind: ControlPlane\n",
        )
        .unwrap();
        assert_eq!(
            t.validate().unwrap_err(),
            "2 errors occurred:\n\t* error validating cluster \"c\": 1 error occurred:\n\t* error validating Talos version: version should start with 'v'\n\n\n\t* template should contain 1 controlplane, got 2\n\n"
        );
    }

    #[test]
    fn diffs_are_unified() {
        let d = unified_diff("a\nb\nc\n", "a\nB\nc\n", "x", "y").unwrap();
        assert_eq!(d, "--- x\n+++ y\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
        let d = unified_diff("", "a\nb\n", "/dev/null", "y").unwrap();
        assert_eq!(d, "--- /dev/null\n+++ y\n@@ -0,0 +1,2 @@\n+a\n+b\n");
    }
}

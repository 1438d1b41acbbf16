//! The Omni cluster template (`omnictl cluster template`): multi-document YAML with kinds
//! `Cluster`, `ControlPlane`, `Workers` and `Machine`. Field set and semantics follow
//! `shared/reference/omni.md` §7.1 (siderolabs/omni `client/pkg/template/internal/models`).
//!
//! Decoding never stops at the first problem: every unknown field and wrong type becomes a
//! `template.schema` finding with its location. Rules about *meaning* (one control plane,
//! CNI disabled, ...) live in the `preflight::template` scenario.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::source::{Finding, Location};
use crate::yaml::{self, At, Decoder, Node, Value};

/// Rule id of schema problems in templates.
pub const SCHEMA_RULE: &str = "template.schema";

#[derive(Debug, Clone)]
pub struct ClusterTemplate {
    pub path: Arc<PathBuf>,
    pub clusters: Vec<ClusterDoc>,
    pub control_planes: Vec<MachineSetDoc>,
    pub workers: Vec<MachineSetDoc>,
    pub machines: Vec<MachineDoc>,
    /// Schema problems found while decoding (unknown fields, wrong types, unknown kinds).
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone)]
pub struct ClusterDoc {
    pub at: Location,
    pub name: Option<At<String>>,
    pub labels: Vec<(At<String>, At<String>)>,
    pub annotations: Vec<(At<String>, At<String>)>,
    pub kubernetes: Kubernetes,
    pub talos_version: Option<At<String>>,
    pub features: Vec<(At<String>, Node)>,
    pub patches: Vec<Patch>,
    pub system_extensions: Option<Vec<At<String>>>,
    pub kernel_args: Option<Vec<At<String>>>,
}

#[derive(Debug, Clone, Default)]
pub struct Kubernetes {
    pub version: Option<At<String>>,
    pub manifests: Vec<Manifest>,
    pub healthchecks: Vec<HealthCheck>,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub at: Location,
    pub name: Option<At<String>>,
    pub mode: Option<At<String>>,
    pub source: Option<Source>,
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub at: Location,
    pub name: Option<At<String>>,
    pub interval: Option<At<String>>,
    pub source: Option<Source>,
}

/// Where a patch, manifest or health check comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Inline(Node),
    File(At<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    ControlPlane,
    Workers,
}

impl SetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SetKind::ControlPlane => "ControlPlane",
            SetKind::Workers => "Workers",
        }
    }
}

/// A `ControlPlane` or `Workers` document.
#[derive(Debug, Clone)]
pub struct MachineSetDoc {
    pub kind: SetKind,
    pub at: Location,
    pub name: Option<At<String>>,
    pub labels: Vec<(At<String>, At<String>)>,
    pub annotations: Vec<(At<String>, At<String>)>,
    pub machines: Option<Vec<At<String>>>,
    pub machine_class: Option<MachineClassRef>,
    pub bootstrap_spec: Option<Node>,
    pub update_strategy: Option<Strategy>,
    pub delete_strategy: Option<Strategy>,
    pub upgrade_strategy: Option<Strategy>,
    pub patches: Vec<Patch>,
    pub system_extensions: Option<Vec<At<String>>>,
    pub kernel_args: Option<Vec<At<String>>>,
}

impl MachineSetDoc {
    /// The workers set name (`workers` when not given); `control-planes` for the control plane.
    pub fn set_name(&self) -> String {
        match (self.kind, &self.name) {
            (SetKind::ControlPlane, _) => "control-planes".into(),
            (SetKind::Workers, Some(n)) => n.value.clone(),
            (SetKind::Workers, None) => "workers".into(),
        }
    }

    /// MachineSet id Omni derives: `<cluster>-control-planes`, `<cluster>-workers`, `<cluster>-<name>`.
    pub fn machine_set_id(&self, cluster: &str) -> String {
        format!("{cluster}-{}", self.set_name())
    }

    /// How many machines this set asks for, when that is a number.
    pub fn planned_count(&self) -> Option<u64> {
        if let Some(mc) = &self.machine_class {
            return match mc.size.as_ref()?.value {
                Size::Count(n) => Some(n),
                Size::Unlimited => None,
            };
        }
        self.machines.as_ref().map(|m| m.len() as u64)
    }
}

#[derive(Debug, Clone)]
pub struct MachineClassRef {
    pub at: Location,
    pub name: Option<At<String>>,
    pub size: Option<At<Size>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Count(u64),
    /// `unlimited`, `infinity`, `∞`, `Unlimited`, `Static`: every matching machine.
    Unlimited,
}

#[derive(Debug, Clone)]
pub struct Strategy {
    pub at: Location,
    pub kind: Option<At<String>>,
    pub max_parallelism: Option<At<i128>>,
}

#[derive(Debug, Clone)]
pub struct MachineDoc {
    pub at: Location,
    pub name: Option<At<String>>,
    pub labels: Vec<(At<String>, At<String>)>,
    pub annotations: Vec<(At<String>, At<String>)>,
    pub locked: Option<At<bool>>,
    pub install_disk: Option<At<String>>,
    pub install_disk_selector: Option<At<String>>,
    pub patches: Vec<Patch>,
    pub system_extensions: Option<Vec<At<String>>>,
    pub kernel_args: Option<Vec<At<String>>>,
}

/// A Talos machine-config patch. `documents` holds the patch's YAML documents, resolved
/// from `inline` (mapping, list of mappings, or YAML string) or read from `file`.
#[derive(Debug, Clone)]
pub struct Patch {
    pub at: Location,
    pub name: Option<At<String>>,
    pub id_override: Option<At<String>>,
    pub file: Option<At<String>>,
    pub has_inline: bool,
    pub documents: Vec<PatchDocument>,
}

/// One document of a patch, and the file its positions refer to.
#[derive(Debug, Clone)]
pub struct PatchDocument {
    pub file: Arc<PathBuf>,
    pub node: Node,
}

impl PatchDocument {
    pub fn loc(&self, n: &Node) -> Location {
        Location::new(&self.file, n.line, n.col)
    }
}

/// A template whose YAML could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: cannot read the cluster template: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Syntax(#[from] yaml::SyntaxError),
}

/// The fields Omni's template loader accepts in a `Cluster` document (omni.md §7.1).
pub const CLUSTER_FIELDS: &[&str] = &[
    "kind",
    "name",
    "labels",
    "annotations",
    "kubernetes",
    "talos",
    "features",
    "patches",
    "systemExtensions",
    "kernelArgs",
];
/// The fields of `ControlPlane` and `Workers` documents (omni.md §7.1).
pub const SET_FIELDS: &[&str] = &[
    "kind",
    "name",
    "labels",
    "annotations",
    "machines",
    "machineClass",
    "bootstrapSpec",
    "updateStrategy",
    "deleteStrategy",
    "upgradeStrategy",
    "patches",
    "systemExtensions",
    "kernelArgs",
];
/// The fields of `Machine` documents (omni.md §7.1).
pub const MACHINE_FIELDS: &[&str] = &[
    "kind",
    "name",
    "labels",
    "annotations",
    "locked",
    "install",
    "patches",
    "systemExtensions",
    "kernelArgs",
];
const FEATURE_FIELDS: &[&str] = &[
    "diskEncryption",
    "enableWorkloadProxy",
    "useEmbeddedDiscoveryService",
    "disablePublicDiscoveryService",
    "enableNodeAuditSkip",
    "backupConfiguration",
];

impl ClusterTemplate {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse template text; `path` names the file in locations and anchors relative patch files.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TemplateError> {
        let file = Arc::new(path.to_path_buf());
        let docs = yaml::parse_documents(&file, text)?;
        let mut t = ClusterTemplate {
            path: Arc::clone(&file),
            clusters: Vec::new(),
            control_planes: Vec::new(),
            workers: Vec::new(),
            machines: Vec::new(),
            findings: Vec::new(),
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for doc in &docs {
            t.decode_document(doc, &base);
        }
        Ok(t)
    }

    fn decode_document(&mut self, doc: &Node, base: &Path) {
        let file = Arc::clone(&self.path);
        let mut patch_findings = Vec::new();
        let mut d = Decoder::new(&file, SCHEMA_RULE, &mut self.findings);
        if doc.as_seq().is_some() {
            d.error(
                doc,
                "the template is a YAML list; Omni expects one YAML document per object",
                "write each object as its own document, separated by `---` lines",
            );
            return;
        }
        let Some(kind_node) = doc.get("kind") else {
            d.error(doc, "document has no `kind` field (Omni: \"kind field not found\")", "start every document with `kind: Cluster`, `kind: ControlPlane`, `kind: Workers` or `kind: Machine`");
            return;
        };
        let kind = kind_node.as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Cluster" => {
                if let Some(c) = decode_cluster(&mut d, doc, base, &mut patch_findings) {
                    self.clusters.push(c);
                }
            }
            "ControlPlane" | "Workers" => {
                let k = if kind == "ControlPlane" {
                    SetKind::ControlPlane
                } else {
                    SetKind::Workers
                };
                if let Some(s) = decode_set(&mut d, doc, k, base, &mut patch_findings) {
                    match k {
                        SetKind::ControlPlane => self.control_planes.push(s),
                        SetKind::Workers => self.workers.push(s),
                    }
                }
            }
            "Machine" => {
                if let Some(m) = decode_machine(&mut d, doc, base, &mut patch_findings) {
                    self.machines.push(m);
                }
            }
            other => d.error(
                kind_node,
                format!("unknown model kind \"{other}\""),
                "use one of Cluster, ControlPlane, Workers, Machine",
            ),
        }
        self.findings.extend(patch_findings);
    }

    /// Every patch in the template with the level it applies at.
    pub fn all_patches(&self) -> impl Iterator<Item = (PatchLevel, &Patch)> {
        let c = self
            .clusters
            .iter()
            .flat_map(|c| c.patches.iter().map(|p| (PatchLevel::Cluster, p)));
        let cp = self
            .control_planes
            .iter()
            .flat_map(|s| s.patches.iter().map(|p| (PatchLevel::ControlPlane, p)));
        let w = self
            .workers
            .iter()
            .flat_map(|s| s.patches.iter().map(|p| (PatchLevel::Workers, p)));
        let m = self
            .machines
            .iter()
            .flat_map(|s| s.patches.iter().map(|p| (PatchLevel::Machine, p)));
        c.chain(cp).chain(w).chain(m)
    }

    /// The cluster name, when there is exactly one Cluster document with a name.
    pub fn cluster_name(&self) -> Option<&str> {
        match self.clusters.as_slice() {
            [c] => c.name.as_ref().map(|n| n.value.as_str()),
            _ => None,
        }
    }

    pub fn machine_sets(&self) -> impl Iterator<Item = &MachineSetDoc> {
        self.control_planes.iter().chain(self.workers.iter())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchLevel {
    Cluster,
    ControlPlane,
    Workers,
    Machine,
}

fn decode_cluster(
    d: &mut Decoder,
    doc: &Node,
    base: &Path,
    extra: &mut Vec<Finding>,
) -> Option<ClusterDoc> {
    let f = d.fields(doc, "Cluster", CLUSTER_FIELDS)?;
    // The classic mistake: the whole template written as one nested document.
    for nested in [
        "controlPlane",
        "controlplane",
        "ControlPlane",
        "workers",
        "Workers",
        "machines",
    ] {
        if let Some((k, _)) = doc
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(nested)))
        {
            // Replace the generic unknown-field finding with the actionable one.
            let loc = d.loc(k);
            d.findings.retain(|x| x.location != loc);
            d.findings.push(
                Finding::error(
                    "template.nested-document",
                    loc,
                    format!(
                        "`{nested}` is nested inside the Cluster document; Omni rejects this (\"field {nested} not found in type models.Cluster\")"
                    ),
                )
                .fix("split the template into separate YAML documents: `kind: Cluster`, then `---` and `kind: ControlPlane`, then `---` and `kind: Workers`"),
            );
        }
    }
    let mut c = ClusterDoc {
        at: d.loc(doc),
        name: f.get("name").and_then(|n| d.string(n, "Cluster name")),
        labels: f
            .get("labels")
            .map(|n| d.string_map(n, "labels"))
            .unwrap_or_default(),
        annotations: f
            .get("annotations")
            .map(|n| d.string_map(n, "annotations"))
            .unwrap_or_default(),
        kubernetes: Kubernetes::default(),
        talos_version: None,
        features: Vec::new(),
        patches: Vec::new(),
        system_extensions: f
            .get("systemExtensions")
            .and_then(|n| d.string_list(n, "systemExtensions")),
        kernel_args: f
            .get("kernelArgs")
            .and_then(|n| d.string_list(n, "kernelArgs")),
    };
    if let Some(k) = f.get("kubernetes")
        && let Some(kf) = d.fields(k, "kubernetes", &["version", "manifests", "healthchecks"])
    {
        c.kubernetes.version = kf
            .get("version")
            .and_then(|n| d.string(n, "kubernetes.version"));
        for m in seq(d, kf.get("manifests"), "kubernetes.manifests") {
            if let Some(mf) = d.fields(
                m,
                "manifest",
                &["name", "mode", "inline", "file", "labels", "annotations"],
            ) {
                c.kubernetes.manifests.push(Manifest {
                    at: d.loc(m),
                    name: mf.get("name").and_then(|n| d.string(n, "manifest name")),
                    mode: mf.get("mode").and_then(|n| d.string(n, "manifest mode")),
                    source: source(d, &mf),
                });
            }
        }
        for h in seq(d, kf.get("healthchecks"), "kubernetes.healthchecks") {
            let known = [
                "name",
                "idOverride",
                "job",
                "file",
                "interval",
                "labels",
                "annotations",
            ];
            if let Some(hf) = d.fields(h, "healthcheck", &known) {
                c.kubernetes.healthchecks.push(HealthCheck {
                    at: d.loc(h),
                    name: hf
                        .get("name")
                        .or(hf.get("idOverride"))
                        .and_then(|n| d.string(n, "healthcheck name")),
                    interval: hf
                        .get("interval")
                        .and_then(|n| d.string(n, "healthcheck interval")),
                    source: hf
                        .get("job")
                        .map(|n| Source::Inline(n.clone()))
                        .or_else(|| {
                            hf.get("file")
                                .and_then(|n| d.string(n, "file"))
                                .map(Source::File)
                        }),
                });
            }
        }
    }
    if let Some(t) = f.get("talos")
        && let Some(tf) = d.fields(t, "talos", &["version"])
    {
        c.talos_version = tf.get("version").and_then(|n| d.string(n, "talos.version"));
    }
    if let Some(feat) = f.get("features")
        && let Some(ff) = d.fields(feat, "features", FEATURE_FIELDS)
    {
        for key in FEATURE_FIELDS {
            if let (Some(k), Some(v)) = (ff.key_node(key), ff.get(key)) {
                c.features
                    .push((At::new((*key).to_string(), d.loc(k)), v.clone()));
            }
        }
    }
    c.patches = patches(d, f.get("patches"), base, extra);
    Some(c)
}

fn decode_set(
    d: &mut Decoder,
    doc: &Node,
    kind: SetKind,
    base: &Path,
    extra: &mut Vec<Finding>,
) -> Option<MachineSetDoc> {
    let f = d.fields(doc, kind.as_str(), SET_FIELDS)?;
    let machine_class = f.get("machineClass").and_then(|mc| {
        let mf = d.fields(mc, "machineClass", &["name", "size"])?;
        Some(MachineClassRef {
            at: d.loc(mc),
            name: mf
                .get("name")
                .and_then(|n| d.string(n, "machineClass.name")),
            size: mf.get("size").and_then(|n| size(d, n)),
        })
    });
    let strategy = |d: &mut Decoder, key: &str| {
        let n = f.get(key)?;
        let sf = d.fields(n, key, &["type", "rolling"])?;
        let max_parallelism = sf
            .get("rolling")
            .and_then(|r| d.fields(r, "rolling", &["maxParallelism"]))
            .and_then(|rf| rf.get("maxParallelism"))
            .and_then(|n| d.int(n, "maxParallelism"));
        let kind = sf.get("type").and_then(|n| d.string(n, "strategy type"));
        if let Some(k) = &kind
            && !["Rolling", "Unset"].contains(&k.value.as_str())
        {
            let loc = k.at.clone();
            d.findings.push(
                Finding::error(
                    SCHEMA_RULE,
                    loc,
                    format!("unknown {key} type \"{}\"", k.value),
                )
                .fix("use `Rolling` or `Unset`"),
            );
        }
        Some(Strategy {
            at: d.loc(n),
            kind,
            max_parallelism,
        })
    };
    let update_strategy = strategy(d, "updateStrategy");
    let delete_strategy = strategy(d, "deleteStrategy");
    let upgrade_strategy = strategy(d, "upgradeStrategy");
    Some(MachineSetDoc {
        kind,
        at: d.loc(doc),
        name: f.get("name").and_then(|n| d.string(n, "name")),
        labels: f
            .get("labels")
            .map(|n| d.string_map(n, "labels"))
            .unwrap_or_default(),
        annotations: f
            .get("annotations")
            .map(|n| d.string_map(n, "annotations"))
            .unwrap_or_default(),
        machines: f.get("machines").and_then(|n| d.string_list(n, "machines")),
        machine_class,
        bootstrap_spec: f.get("bootstrapSpec").cloned(),
        update_strategy,
        delete_strategy,
        upgrade_strategy,
        patches: patches(d, f.get("patches"), base, extra),
        system_extensions: f
            .get("systemExtensions")
            .and_then(|n| d.string_list(n, "systemExtensions")),
        kernel_args: f
            .get("kernelArgs")
            .and_then(|n| d.string_list(n, "kernelArgs")),
    })
}

fn decode_machine(
    d: &mut Decoder,
    doc: &Node,
    base: &Path,
    extra: &mut Vec<Finding>,
) -> Option<MachineDoc> {
    let f = d.fields(doc, "Machine", MACHINE_FIELDS)?;
    let (mut disk, mut selector) = (None, None);
    if let Some(i) = f.get("install")
        && let Some(inf) = d.fields(i, "install", &["disk", "diskSelector"])
    {
        disk = inf.get("disk").and_then(|n| d.string(n, "install.disk"));
        selector = inf
            .get("diskSelector")
            .and_then(|n| d.string(n, "install.diskSelector"));
    }
    Some(MachineDoc {
        at: d.loc(doc),
        name: f.get("name").and_then(|n| d.string(n, "Machine name")),
        labels: f
            .get("labels")
            .map(|n| d.string_map(n, "labels"))
            .unwrap_or_default(),
        annotations: f
            .get("annotations")
            .map(|n| d.string_map(n, "annotations"))
            .unwrap_or_default(),
        locked: f.get("locked").and_then(|n| d.bool(n, "locked")),
        install_disk: disk,
        install_disk_selector: selector,
        patches: patches(d, f.get("patches"), base, extra),
        system_extensions: f
            .get("systemExtensions")
            .and_then(|n| d.string_list(n, "systemExtensions")),
        kernel_args: f
            .get("kernelArgs")
            .and_then(|n| d.string_list(n, "kernelArgs")),
    })
}

fn size(d: &mut Decoder, n: &Node) -> Option<At<Size>> {
    let loc = d.loc(n);
    let parsed = match &n.value {
        Value::Int(i) if *i >= 0 => u64::try_from(*i).ok().map(Size::Count),
        Value::String(s) => match s.as_str() {
            "unlimited" | "infinity" | "∞" | "Unlimited" | "Static" => Some(Size::Unlimited),
            s => s.parse::<u64>().ok().map(Size::Count),
        },
        _ => None,
    };
    if parsed.is_none() {
        let text = n
            .scalar_text()
            .unwrap_or_else(|| n.value.kind().to_string());
        d.error(
            n,
            format!("invalid machine count {text}: expected a non-negative integer or `unlimited`"),
            "set `size` to the number of machines, e.g. `size: 3`",
        );
    }
    parsed.map(|s| At::new(s, loc))
}

fn seq<'n>(d: &mut Decoder, n: Option<&'n Node>, what: &str) -> Vec<&'n Node> {
    match n {
        None => Vec::new(),
        Some(n) if n.is_null() => Vec::new(),
        Some(n) => match n.as_seq() {
            Some(items) => items.iter().collect(),
            None => {
                d.error(
                    n,
                    format!("{what} must be a list, found {}", n.value.kind()),
                    "",
                );
                Vec::new()
            }
        },
    }
}

fn source(d: &mut Decoder, f: &yaml::Fields) -> Option<Source> {
    match (f.get("inline"), f.get("file")) {
        (Some(i), None) => Some(Source::Inline(i.clone())),
        (None, Some(p)) => d.string(p, "file").map(Source::File),
        (Some(i), Some(_)) => {
            d.error(
                i,
                "`file` and `inline` are mutually exclusive",
                "keep one of them",
            );
            None
        }
        (None, None) => None,
    }
}

const PATCH_FIELDS: &[&str] = &[
    "name",
    "idOverride",
    "labels",
    "annotations",
    "file",
    "inline",
];

fn patches(d: &mut Decoder, n: Option<&Node>, base: &Path, extra: &mut Vec<Finding>) -> Vec<Patch> {
    let mut out = Vec::new();
    for p in seq(d, n, "patches") {
        let Some(pf) = d.fields(p, "patch", PATCH_FIELDS) else {
            continue;
        };
        let name = pf.get("name").and_then(|n| d.string(n, "patch name"));
        let id_override = pf
            .get("idOverride")
            .and_then(|n| d.string(n, "patch idOverride"));
        let file = pf.get("file").and_then(|n| d.string(n, "patch file"));
        let inline = pf.get("inline");
        let mut documents = Vec::new();
        match (inline, &file) {
            (Some(_), Some(_)) => d.error(
                p,
                "patch: path and inline are mutually exclusive",
                "keep either `file` or `inline`",
            ),
            (None, None) => d.error(
                p,
                "patch: path or inline is required",
                "add `inline:` with the patch, or `file:` with its path",
            ),
            (Some(i), None) => {
                if name.is_none() && id_override.is_none() {
                    d.error(
                        p,
                        "either name or idOverride is required for inline patches",
                        "add `name: <what the patch does>`",
                    );
                }
                documents = inline_documents(d, i);
            }
            (None, Some(f)) => documents = file_documents(d, f, base, extra),
        }
        out.push(Patch {
            at: d.loc(p),
            name,
            id_override,
            file,
            has_inline: inline.is_some(),
            documents,
        });
    }
    out
}

fn inline_documents(d: &mut Decoder, i: &Node) -> Vec<PatchDocument> {
    let file = Arc::clone(&d.file);
    match &i.value {
        Value::Map(_) => vec![PatchDocument {
            file,
            node: i.clone(),
        }],
        Value::Seq(items) => items
            .iter()
            .map(|n| PatchDocument {
                file: Arc::clone(&file),
                node: n.clone(),
            })
            .collect(),
        Value::String(s) => match yaml::parse_documents(&file, s) {
            // The string node is anchored at its first content line; shift the inner
            // positions there so findings point at the right line of the template.
            Ok(docs) => docs
                .into_iter()
                .map(|mut n| {
                    n.shift(i.line.saturating_sub(1), i.col.saturating_sub(1));
                    PatchDocument {
                        file: Arc::clone(&file),
                        node: n,
                    }
                })
                .collect(),
            Err(e) => {
                d.error(
                    i,
                    format!("inline patch string is not valid YAML: {}", e.message),
                    "",
                );
                Vec::new()
            }
        },
        other => {
            d.error(
                i,
                format!(
                    "inline patch must be a mapping, a list of mappings or a YAML string, found {}",
                    other.kind()
                ),
                "",
            );
            Vec::new()
        }
    }
}

fn file_documents(
    d: &mut Decoder,
    f: &At<String>,
    base: &Path,
    extra: &mut Vec<Finding>,
) -> Vec<PatchDocument> {
    let path = base.join(&f.value);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let pf = Arc::new(path.clone());
            match yaml::parse_documents(&pf, &text) {
                Ok(docs) => docs
                    .into_iter()
                    .map(|node| PatchDocument {
                        file: Arc::clone(&pf),
                        node,
                    })
                    .collect(),
                Err(e) => {
                    extra.push(Finding::error(
                        SCHEMA_RULE,
                        e.location,
                        format!("patch file is not valid YAML: {}", e.message),
                    ));
                    Vec::new()
                }
            }
        }
        Err(e) => {
            let loc = f.at.clone();
            d.findings.push(
                Finding::error(
                    SCHEMA_RULE,
                    loc,
                    format!("failed to access \"{}\": {e}", path.display()),
                )
                .fix("patch files are relative to the template's directory"),
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_from_files_inline_lists_and_strings_keep_their_positions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("cni.yaml"),
            "cluster:\n  network:\n    cni:\n      name: none\n",
        )
        .unwrap();
        let text = "kind: Cluster\nname: c\npatches:\n  - file: cni.yaml\n  - name: s\n    inline: |\n      machine:\n        nodeLabels:\n          a: b\n  - name: l\n    inline:\n      - {kind: KubeProxyConfig, enabled: false}\n";
        let t = ClusterTemplate::parse(&d.path().join("t.yaml"), text).unwrap();
        assert!(t.findings.is_empty(), "{:?}", t.findings);
        let p = &t.clusters[0].patches;
        let from_file = p[0].documents[0]
            .node
            .path(&["cluster", "network", "cni", "name"])
            .unwrap();
        assert_eq!(
            (&*p[0].documents[0].file, from_file.line),
            (&d.path().join("cni.yaml"), 4)
        );
        let label = p[1].documents[0]
            .node
            .path(&["machine", "nodeLabels"])
            .unwrap()
            .as_map()
            .unwrap()[0]
            .0
            .clone();
        assert_eq!(
            (label.line, label.col),
            (9, 11),
            "inline string positions map into the template"
        );
        assert_eq!(p[2].documents.len(), 1);
    }

    #[test]
    fn sizes_accept_omni_spellings_and_reject_the_rest() {
        let t = ClusterTemplate::parse(Path::new("t.yaml"), "kind: Workers\nmachineClass: {name: w, size: unlimited}\n---\nkind: Workers\nname: b\nmachineClass: {name: w, size: three}\n").unwrap();
        assert_eq!(
            t.workers[0]
                .machine_class
                .as_ref()
                .unwrap()
                .size
                .as_ref()
                .unwrap()
                .value,
            Size::Unlimited
        );
        assert!(t.workers[1].machine_class.as_ref().unwrap().size.is_none());
        assert!(
            t.findings
                .iter()
                .any(|f| f.message.starts_with("invalid machine count three")
                    && f.location.line == 6),
            "{:?}",
            t.findings
        );
    }

    #[test]
    fn a_missing_patch_file_is_a_finding_not_a_crash() {
        let t = ClusterTemplate::parse(
            Path::new("/nonexistent/t.yaml"),
            "kind: Cluster\npatches:\n  - file: gone.yaml\n",
        )
        .unwrap();
        assert!(
            t.findings
                .iter()
                .any(|f| f.message.contains("failed to access") && f.location.line == 3),
            "{:?}",
            t.findings
        );
    }
}

//! `preflight::template` — the Omni cluster template is one Omni will accept and one the plan
//! can live with.
//!
//! Proves (deployment plan): Constraint "CNI disabled in cluster template — Cilium requires
//! kube-proxy disabled at bootstrap time"; Risk "Cilium install fails → verify kube-proxy
//! disabled in template"; the plan's shape (3 control planes, workers) and Step 2's
//! `omnictl cluster template sync` succeeding.
//!
//! Rules (ids as printed by `clusterproof lint`, documented in `docs/rules.md`):
//! - `template.schema`, `template.nested-document` — decoding problems (unknown fields, wrong
//!   types, the whole template nested in one document).
//! - `template.one-cluster`, `template.one-controlplane` — Omni's own count rules, same wording.
//! - `template.controlplane-size` — odd and ≥ 3 (etcd quorum survives one loss).
//! - `template.machine-set` — machines xor machineClass, and Omni's per-kind restrictions.
//! - `template.unique-workers` — Workers names unique and not `control-planes`.
//! - `template.class-exists` — every referenced machine class is among the given class files.
//! - `template.versions` — Talos and Kubernetes versions present and `v`-prefixed.
//! - `template.cluster-name` — a name Proxmox and Kubernetes accept as VM and node name prefix.
//! - `template.cni-disabled`, `template.kube-proxy-disabled`, `template.config-style` — both
//!   Talos config styles (< 1.14 `cluster.network.cni`/`cluster.proxy`, ≥ 1.14
//!   `KubeFlannelCNIConfig`/`KubeProxyConfig` documents), never both for one setting.
//! - `template.node-labels` — no NodeRestriction-protected keys in `machine.nodeLabels`.

use futures::future::BoxFuture;
use harness::model::template::{
    ClusterTemplate, MachineSetDoc, PatchDocument, PatchLevel, SetKind, Size,
};
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario};
use harness::source::{Finding, Location};
use harness::spec::LabSpec;
use harness::yaml::{Node, Value};

pub struct Template;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "preflight::template",
    module: module_path!(),
    phase: Phase::Preflight,
    proves: "Constraint: CNI disabled in cluster template (Cilium requires kube-proxy disabled at bootstrap time)",
    needs: &[Need::Spec],
    after: &[],
};

impl Scenario for Template {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let spec = &cx.lab.spec;
            let findings = check(spec);
            let t = &spec.template;
            let summary = format!(
                "{}: cluster {}, {} control plane(s), {} worker set(s); CNI none and kube-proxy disabled",
                harness::source::display_path(&t.path),
                t.cluster_name().unwrap_or("?"),
                t.control_planes
                    .first()
                    .and_then(|c| c.planned_count())
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into()),
                t.workers.len()
            );
            cx.events.observe(format!(
                "checked {} with {} finding(s)",
                harness::source::display_path(&t.path),
                findings.len()
            ));
            Outcome::from_findings(findings, &summary)
        })
    }
}

/// All template rules. Public so the lint command and tests can call it directly.
pub fn check(spec: &LabSpec) -> Vec<Finding> {
    let t = &spec.template;
    let mut f = t.findings.clone();
    let whole = Location::new(&t.path, 1, 1);
    counts(t, &whole, &mut f);
    for set in t.machine_sets() {
        machine_set(spec, set, &mut f);
    }
    unique_workers(t, &mut f);
    if let Some(cp) = t.control_planes.first() {
        control_plane_size(cp, &mut f);
    }
    let talos = t
        .clusters
        .first()
        .and_then(|c| c.talos_version.as_ref())
        .and_then(|v| talos_minor(&v.value));
    versions_and_name(t, &mut f);
    networking(t, talos, &mut f);
    node_labels(t, &mut f);
    f
}

fn counts(t: &ClusterTemplate, whole: &Location, f: &mut Vec<Finding>) {
    let nested = f.iter().any(|x| x.rule == "template.nested-document");
    if t.clusters.len() != 1 {
        let at = t
            .clusters
            .get(1)
            .map(|c| c.at.clone())
            .unwrap_or_else(|| whole.clone());
        f.push(
            Finding::error(
                "template.one-cluster",
                at,
                format!(
                    "template should contain 1 cluster, got {}",
                    t.clusters.len()
                ),
            )
            .fix("keep exactly one document with `kind: Cluster`"),
        );
    }
    if t.control_planes.len() != 1 && !nested {
        let at = t
            .control_planes
            .get(1)
            .map(|c| c.at.clone())
            .unwrap_or_else(|| whole.clone());
        let fix = if t.control_planes.is_empty() {
            "add a document `kind: ControlPlane` with `machineClass: {name: <class>, size: 3}`"
        } else {
            "merge the ControlPlane documents into one; use `kind: Workers` for the other machine sets"
        };
        f.push(
            Finding::error(
                "template.one-controlplane",
                at,
                format!(
                    "template should contain 1 controlplane, got {}",
                    t.control_planes.len()
                ),
            )
            .fix(fix),
        );
    }
}

fn machine_set(spec: &LabSpec, s: &MachineSetDoc, f: &mut Vec<Finding>) {
    let rule = "template.machine-set";
    match (&s.machines, &s.machine_class) {
        (Some(_), Some(mc)) => f.push(
            Finding::error(
                rule,
                mc.at.clone(),
                "machine set can not have both machines and machine class defined",
            )
            .fix("remove `machines:` to let the provider create VMs from the class"),
        ),
        (None, None) => f.push(
            Finding::error(
                rule,
                s.at.clone(),
                format!(
                    "{} has neither `machineClass` nor `machines`: it would get no machines",
                    s.kind.as_str()
                ),
            )
            .fix("add `machineClass: {name: <class>, size: N}`"),
        ),
        _ => {}
    }
    if let (Some(mc), Some(args)) = (&s.machine_class, &s.kernel_args) {
        let at = args
            .first()
            .map(|a| a.at.clone())
            .unwrap_or_else(|| mc.at.clone());
        f.push(
            Finding::error(
                rule,
                at,
                "kernelArgs cannot be defined for machine set since it uses machine class",
            )
            .fix("move kernel arguments into the machine class (`kernelargs`)"),
        );
    }
    if s.kind == SetKind::ControlPlane {
        if let Some(n) = &s.name {
            f.push(
                Finding::error(
                    rule,
                    n.at.clone(),
                    "custom name is not allowed in the controlplane",
                )
                .fix("remove `name:` from the ControlPlane document"),
            );
        }
        for (st, what) in [
            (&s.update_strategy, "updateStrategy"),
            (&s.delete_strategy, "deleteStrategy"),
        ] {
            if let Some(st) = st {
                f.push(
                    Finding::error(
                        rule,
                        st.at.clone(),
                        format!("{what} is not allowed in the controlplane"),
                    )
                    .fix(format!("remove `{what}` from the ControlPlane document")),
                );
            }
        }
    } else if let Some(b) = &s.bootstrap_spec {
        f.push(
            Finding::error(
                rule,
                Location::new(&spec.template.path, b.line, b.col),
                "bootstrapSpec is not allowed in workers",
            )
            .fix("remove `bootstrapSpec` from the Workers document"),
        );
    }
    // The referenced class must be among the given files.
    if let Some(name) = s.machine_class.as_ref().and_then(|mc| mc.name.as_ref()) {
        if spec.class_files.is_empty() {
            f.push(
                Finding::warning("template.class-exists", name.at.clone(), format!("machine class \"{}\" is not checked: no machine class files were given", name.value))
                    .fix("pass the class files with --classes, or keep them in a `machine-classes/` folder beside or above the template's folder"),
            );
        } else if spec.class(&name.value).is_none() {
            let files: Vec<String> = spec
                .class_files
                .iter()
                .map(|c| c.path.display().to_string())
                .collect();
            let known: Vec<&str> = spec.classes().map(|c| c.id.value.as_str()).collect();
            let hint = harness::yaml::closest(&name.value, &known)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            f.push(
                Finding::error("template.class-exists", name.at.clone(), format!("machine class \"{}\" is not defined in {}", name.value, files.join(", ")))
                    .fix(format!("{hint}add the class file to `machine_classes` in the lab file (or pass it with --classes), or fix the name; defined: {}", if known.is_empty() { "none".into() } else { known.join(", ") })),
            );
        }
    } else if let Some(mc) = &s.machine_class {
        f.push(
            Finding::error(rule, mc.at.clone(), "machineClass has no `name`")
                .fix("set `name:` to a machine class id"),
        );
    }
    if let Some(mc) = &s.machine_class
        && mc.size.is_none()
        && !f.iter().any(|x| {
            x.location.line == mc.at.line && x.rule == harness::model::template::SCHEMA_RULE
        })
    {
        f.push(
            Finding::error(rule, mc.at.clone(), "machineClass has no `size`")
                .fix("set `size:` to the number of machines, e.g. `size: 3`"),
        );
    }
}

fn unique_workers(t: &ClusterTemplate, f: &mut Vec<Finding>) {
    let mut seen: Vec<String> = Vec::new();
    for w in &t.workers {
        let name = w.set_name();
        let at = w
            .name
            .as_ref()
            .map(|n| n.at.clone())
            .unwrap_or_else(|| w.at.clone());
        if name == "control-planes" {
            f.push(
                Finding::error(
                    "template.unique-workers",
                    at.clone(),
                    "name \"control-planes\" cannot be used in workers",
                )
                .fix("choose another workers name"),
            );
        }
        if seen.contains(&name) {
            f.push(
                Finding::error("template.unique-workers", at, format!("duplicate workers with name \"{name}\""))
                    .fix("give each Workers document its own `name:` (the first may stay unnamed: `workers`)"),
            );
        }
        seen.push(name);
    }
}

fn control_plane_size(cp: &MachineSetDoc, f: &mut Vec<Finding>) {
    let rule = "template.controlplane-size";
    let at = cp
        .machine_class
        .as_ref()
        .and_then(|mc| mc.size.as_ref().map(|s| s.at.clone()))
        .or_else(|| {
            cp.machines
                .as_ref()
                .and_then(|m| m.first().map(|x| x.at.clone()))
        })
        .unwrap_or_else(|| cp.at.clone());
    if let Some(Size::Unlimited) = cp
        .machine_class
        .as_ref()
        .and_then(|mc| mc.size.as_ref())
        .map(|s| s.value)
    {
        f.push(
            Finding::warning(
                rule,
                at,
                "control plane size is unlimited: the number of etcd members is not fixed",
            )
            .fix("set `size: 3` for production"),
        );
        return;
    }
    let Some(n) = cp.planned_count() else { return };
    let fix = "set the control plane size to 3 (or 5): an odd etcd membership that survives the loss of one node";
    if n == 0 {
        f.push(
            Finding::error(
                rule,
                at,
                "control plane size is 0: the cluster would have no API server",
            )
            .fix(fix),
        );
    } else if n % 2 == 0 {
        f.push(Finding::error(rule, at, format!("control plane size is {n}: an even etcd membership tolerates no more failures than {}, and splits evenly", n - 1)).fix(fix));
    } else if n < 3 {
        f.push(Finding::error(rule, at, format!("control plane size is {n}: etcd loses quorum when that node fails, so the cluster cannot survive a single node failure (Definition of Done)")).fix(fix));
    }
}

fn versions_and_name(t: &ClusterTemplate, f: &mut Vec<Finding>) {
    let Some(c) = t.clusters.first() else { return };
    let rule = "template.versions";
    for (what, v, example) in [
        ("Talos", &c.talos_version, "v1.11.5"),
        ("Kubernetes", &c.kubernetes.version, "v1.34.2"),
    ] {
        match v {
            None => f.push(
                Finding::error(rule, c.at.clone(), format!("{what} version is required")).fix(
                    format!("set {}.version, e.g. `{example}`", what.to_lowercase()),
                ),
            ),
            Some(v) if !v.value.starts_with('v') => f.push(
                Finding::error(
                    rule,
                    v.at.clone(),
                    format!("{what} version \"{}\" should start with 'v'", v.value),
                )
                .fix(format!("write `v{}`", v.value)),
            ),
            Some(v) if !is_semver(&v.value[1..]) => f.push(
                Finding::error(
                    rule,
                    v.at.clone(),
                    format!("{what} version \"{}\" should be in semver format", v.value),
                )
                .fix(format!("write e.g. `{example}`")),
            ),
            _ => {}
        }
    }
    match &c.name {
        None => f.push(Finding::error("template.cluster-name", c.at.clone(), "cluster name is required").fix("add `name: <cluster name>` to the Cluster document")),
        Some(n) if n.value.is_empty() || !n.value.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') => f.push(
            Finding::error("template.cluster-name", n.at.clone(), format!("cluster name \"{}\" should only contain letters, digits, dashes and underscores", n.value)).fix("use letters, digits and `-` only"),
        ),
        Some(n) if n.value.contains('_') || n.value.starts_with('-') || n.value.ends_with('-') => f.push(
            Finding::error("template.cluster-name", n.at.clone(), format!("cluster name \"{}\" becomes the prefix of VM and node names, which must be DNS names (no `_`, no leading or trailing `-`)", n.value))
                .fix("use lower-case letters, digits and `-` only"),
        ),
        _ => {}
    }
}

fn is_semver(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// `(major, minor)` of a Talos version like `v1.14.0`.
fn talos_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.strip_prefix('v')?.split('.');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.split(['-', '+']).next()?.parse().ok()?,
    ))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    /// `cluster.network.cni` / `cluster.proxy` in the v1alpha1 document (Talos < 1.14 form).
    Legacy,
    /// `KubeFlannelCNIConfig` / `KubeProxyConfig` documents (Talos ≥ 1.14).
    Documents,
}

struct Setting {
    style: Style,
    disabled: bool,
    what: String,
    at: Location,
}

/// CNI and kube-proxy, from the patches that configure the cluster (Cluster and ControlPlane
/// level; `cluster.*` settings only take effect on control-plane nodes).
fn networking(t: &ClusterTemplate, talos: Option<(u32, u32)>, f: &mut Vec<Finding>) {
    let Some(cluster) = t.clusters.first() else {
        return;
    };
    let new_talos = talos.is_some_and(|v| v >= (1, 14));
    let mut cni = Vec::new();
    let mut proxy = Vec::new();
    for (level, p) in t.all_patches() {
        if !matches!(level, PatchLevel::Cluster | PatchLevel::ControlPlane) {
            continue;
        }
        for doc in &p.documents {
            read_network_settings(doc, &mut cni, &mut proxy);
        }
    }
    let version = cluster
        .talos_version
        .as_ref()
        .map(|v| v.value.clone())
        .unwrap_or_else(|| "?".into());
    let cni_fix = if new_talos {
        "add a cluster-level patch: `patches: [{name: disable-default-cni, inline: {apiVersion: v1alpha1, kind: KubeFlannelCNIConfig, $patch: delete}}]`"
    } else {
        "add a cluster-level patch: `patches: [{name: disable-default-cni, inline: {cluster: {network: {cni: {name: none}}}}}]`"
    };
    let proxy_fix = if new_talos {
        "add a cluster-level patch: `patches: [{name: disable-kube-proxy, inline: {apiVersion: v1alpha1, kind: KubeProxyConfig, enabled: false}}]`"
    } else {
        "add to the cluster-level patch: `cluster: {proxy: {disabled: true}}`"
    };
    for (settings, rule, label, fix, doc_kind) in [
        (
            &cni,
            "template.cni-disabled",
            "the default CNI (Flannel)",
            cni_fix,
            "KubeFlannelCNIConfig",
        ),
        (
            &proxy,
            "template.kube-proxy-disabled",
            "kube-proxy",
            proxy_fix,
            "KubeProxyConfig",
        ),
    ] {
        if settings.is_empty() {
            f.push(
                Finding::error(rule, cluster.at.clone(), format!("the template does not disable {label}; Cilium must replace it at bootstrap (plan Constraint: CNI disabled in cluster template)"))
                    .fix(fix),
            );
            continue;
        }
        for s in settings.iter().filter(|s| !s.disabled) {
            f.push(
                Finding::error(
                    rule,
                    s.at.clone(),
                    format!(
                        "{} leaves {label} enabled; Cilium needs it disabled at bootstrap",
                        s.what
                    ),
                )
                .fix(fix),
            );
        }
        let legacy = settings.iter().find(|s| s.style == Style::Legacy);
        let docs = settings.iter().find(|s| s.style == Style::Documents);
        if let (Some(l), Some(d)) = (legacy, docs) {
            f.push(
                Finding::error("template.config-style", d.at.clone(), format!("{} and the deprecated field at {} configure the same setting; Talos rejects a configuration that sets both", d.what, l.at))
                    .fix("keep one style: the documents for Talos ≥ 1.14, the `cluster.*` fields before"),
            );
        }
        if let (Some(d), false) = (docs, new_talos) {
            f.push(
                Finding::error("template.config-style", d.at.clone(), format!("`kind: {doc_kind}` documents exist only from Talos 1.14; this template installs Talos {version}"))
                    .fix(fix),
            );
        }
    }
}

fn read_network_settings(doc: &PatchDocument, cni: &mut Vec<Setting>, proxy: &mut Vec<Setting>) {
    let n = &doc.node;
    if let Some(name) = n.path(&["cluster", "network", "cni", "name"]) {
        let v = name.scalar_text().unwrap_or_default();
        cni.push(Setting {
            style: Style::Legacy,
            disabled: v == "none",
            what: format!("`cluster.network.cni.name: {v}`"),
            at: doc.loc(name),
        });
    }
    if let Some(proxy_node) = n.path(&["cluster", "proxy"]) {
        let disabled = proxy_node.get("disabled");
        let is_true = disabled.is_some_and(|d| d.value == Value::Bool(true));
        let at = disabled.unwrap_or(proxy_node);
        proxy.push(Setting {
            style: Style::Legacy,
            disabled: is_true,
            what: format!(
                "`cluster.proxy.disabled: {}`",
                disabled
                    .and_then(Node::scalar_text)
                    .unwrap_or_else(|| "unset".into())
            ),
            at: doc.loc(at),
        });
    }
    match n.get("kind").and_then(Node::as_str) {
        Some("KubeFlannelCNIConfig") => {
            let deleted = n.get("$patch").and_then(Node::as_str) == Some("delete");
            cni.push(Setting {
                style: Style::Documents,
                disabled: deleted,
                what: if deleted {
                    "`KubeFlannelCNIConfig` with `$patch: delete`".into()
                } else {
                    "a `KubeFlannelCNIConfig` document without `$patch: delete`".into()
                },
                at: doc.loc(n.get("kind").unwrap_or(n)),
            });
        }
        Some("KubeProxyConfig") => {
            let enabled = n.get("enabled");
            let off = enabled.is_some_and(|e| e.value == Value::Bool(false));
            proxy.push(Setting {
                style: Style::Documents,
                disabled: off,
                what: format!(
                    "`KubeProxyConfig` with `enabled: {}`",
                    enabled
                        .and_then(Node::scalar_text)
                        .unwrap_or_else(|| "unset (true)".into())
                ),
                at: doc.loc(enabled.unwrap_or(n)),
            });
        }
        _ => {}
    }
}

/// Labels the kubelet may set on its own Node under the NodeRestriction admission plugin
/// (kubernetes `pkg/kubelet/apis/well_known_labels.go`: kubeletLabels, kubeletLabelNamespaces).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Whether NodeRestriction forbids the kubelet to set this label on its node.
pub fn is_protected_node_label(key: &str) -> bool {
    let Some((ns, _)) = key.split_once('/') else {
        return false;
    };
    let in_ns = |ns: &str, domain: &str| ns == domain || ns.ends_with(&format!(".{domain}"));
    if !(in_ns(ns, "kubernetes.io") || in_ns(ns, "k8s.io")) {
        return false;
    }
    if ns == "node-restriction.kubernetes.io" {
        return true;
    }
    !(KUBELET_LABELS.contains(&key)
        || in_ns(ns, "kubelet.kubernetes.io")
        || in_ns(ns, "node.kubernetes.io"))
}

fn node_labels(t: &ClusterTemplate, f: &mut Vec<Finding>) {
    for (_, p) in t.all_patches() {
        for doc in &p.documents {
            let Some(labels) = doc
                .node
                .path(&["machine", "nodeLabels"])
                .and_then(Node::as_map)
            else {
                continue;
            };
            for (k, _) in labels {
                let Some(key) = k.as_str() else { continue };
                if is_protected_node_label(key) {
                    let fix = if key.starts_with("node-role.kubernetes.io/") {
                        "remove it: Talos sets node-role.kubernetes.io/control-plane itself; for workers label them after join (`kubectl label node ...`) or use your own prefix, e.g. `example.com/role: worker`"
                    } else {
                        "use a label under your own domain (e.g. `example.com/...`), or a kubelet-allowed key (`node.kubernetes.io/...`, `kubelet.kubernetes.io/...`)"
                    };
                    f.push(
                        Finding::error("template.node-labels", doc.loc(k), format!("machine.nodeLabels sets \"{key}\", which the NodeRestriction admission plugin forbids a kubelet to set: the node would fail to register"))
                            .fix(fix),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_protected_node_label as p;

    #[test]
    fn node_restriction_rules_match_the_kubelet_allow_list() {
        assert!(p("node-role.kubernetes.io/worker"));
        assert!(p("node-role.kubernetes.io/control-plane"));
        assert!(p("kubernetes.io/role"));
        assert!(p("example.k8s.io/x"));
        assert!(p("node-restriction.kubernetes.io/x"));
        assert!(!p(
            "node.kubernetes.io/exclude-from-external-load-balancers"
        ));
        assert!(!p("kubelet.kubernetes.io/x"));
        assert!(!p("topology.kubernetes.io/zone"));
        assert!(!p("kubernetes.io/hostname"));
        assert!(!p("example.com/role"));
        assert!(!p("plain"));
    }
}

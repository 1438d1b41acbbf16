//! Workload controllers: Deployments (one ReplicaSet per pod-template hash; old ones scaled
//! to zero at once rather than rolled), ReplicaSets (create or delete pods to match
//! `spec.replicas`) and DaemonSets (one pod per node that should run it, bound directly,
//! with the tolerations the DaemonSet controller adds), and the status each reports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::super::defaults::{TAINT_NOT_READY, TAINT_UNREACHABLE, node_selector_matches};
use super::super::select::{Filter, LabelSelector, string_map};
use super::super::store::{Store, now_time};
use super::super::types::Gvr;
use super::pods::{affinity_matches, fits, owned_pods, pod_ready};
use super::{
    controlled_by, deleting, gvr_nodes, gvr_pods, name_of, ns_of, owner_ref, remove, set_condition,
    tolerates_taints, uid_of, write, write_status,
};

fn gvr_deployments() -> Gvr {
    Gvr::new("apps", "v1", "deployments")
}
fn gvr_replicasets() -> Gvr {
    Gvr::new("apps", "v1", "replicasets")
}
fn gvr_daemonsets() -> Gvr {
    Gvr::new("apps", "v1", "daemonsets")
}

fn live(store: &Store, gvr: &Gvr) -> Vec<Arc<Value>> {
    store
        .list(gvr, None, &Filter::default())
        .into_iter()
        .filter(|o| !deleting(o))
        .collect()
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

/// `pod-template-hash`: a short hash of the pod template.
fn template_hash(template: &Value) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let h = Sha256::digest(template.to_string().as_bytes());
    h.iter()
        .take(10)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn create(store: &mut Store, gvr: &Gvr, ns: &str, obj: Value) {
    if let Err(e) = store.create(gvr, ns, obj, false) {
        tracing::warn!("kube twin: cannot create a {} in {ns}: {e}", gvr.plural);
    }
}

/// Deployment → ReplicaSet for the current template, old ReplicaSets scaled to zero.
pub(crate) fn deployments(store: &mut Store) {
    let rsg = gvr_replicasets();
    for d in live(store, &gvr_deployments()) {
        let ns = ns_of(&d).to_string();
        let mut template = d["spec"]["template"].clone();
        let hash = template_hash(&template);
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let rs_name = format!("{}-{hash}", name_of(&d));
        let want = replicas(&d);
        let owned: Vec<Arc<Value>> = store
            .list(&rsg, Some(&ns), &Filter::default())
            .into_iter()
            .filter(|rs| controlled_by(rs, uid_of(&d)))
            .collect();
        match owned.iter().find(|rs| name_of(rs) == rs_name) {
            Some(rs) if replicas(rs) != want => {
                let mut new = (**rs).clone();
                new["spec"]["replicas"] = json!(want);
                write(store, &rsg, new);
            }
            Some(_) => {}
            None if store.get(&rsg, &ns, &rs_name).is_some() => {
                tracing::warn!(
                    "kube twin: replicaset {ns}/{rs_name} exists but is not owned by its deployment"
                );
            }
            None => {
                let mut selector = d["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let revision = owned.len() + 1;
                let rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs_name, "namespace": ns,
                        "labels": template["metadata"]["labels"].clone(),
                        "annotations": {"deployment.kubernetes.io/revision": revision.to_string(),
                            "deployment.kubernetes.io/desired-replicas": want.to_string()},
                        "ownerReferences": [owner_ref("apps/v1", "Deployment", &d)]},
                    "spec": {"replicas": want, "selector": selector, "template": template,
                        "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0)},
                });
                create(store, &rsg, &ns, rs);
            }
        }
        for old in owned
            .iter()
            .filter(|rs| name_of(rs) != rs_name && replicas(rs) > 0)
        {
            let mut new = (**old).clone();
            new["spec"]["replicas"] = json!(0);
            write(store, &rsg, new);
        }
    }
}

fn pod_from_template(owner: &Value, api_version: &str, kind: &str, name: String) -> Value {
    let t = &owner["spec"]["template"];
    let mut meta = t["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(name);
    meta["namespace"] = json!(ns_of(owner));
    meta["ownerReferences"] = json!([owner_ref(api_version, kind, owner)]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": t["spec"].clone()})
}

/// Deletion order when scaling down: unscheduled, then not ready, then newest.
fn scale_down_rank(p: &Value) -> (bool, bool, std::cmp::Reverse<String>) {
    (
        p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        pod_ready(p),
        std::cmp::Reverse(
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
    )
}

/// ReplicaSet → pods.
pub(crate) fn replicasets(store: &mut Store) {
    for rs in live(store, &gvr_replicasets()) {
        let ns = ns_of(&rs).to_string();
        let mut pods: Vec<Arc<Value>> = owned_pods(store, uid_of(&rs));
        let want = replicas(&rs) as usize;
        if pods.len() < want {
            for _ in pods.len()..want {
                let name = format!("{}-{}", name_of(&rs), store.name_suffix(5));
                let pod = pod_from_template(&rs, "apps/v1", "ReplicaSet", name);
                create(store, &gvr_pods(), &ns, pod);
            }
        } else if pods.len() > want {
            pods.sort_by_key(|p| scale_down_rank(p));
            for p in pods.iter().take(pods.len() - want) {
                remove(store, &gvr_pods(), p, "replicaset scaled down");
            }
        }
    }
}

/// The tolerations the DaemonSet controller adds to its pods.
fn daemon_tolerations(spec: &Value) -> Vec<Value> {
    let mut tol = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let mut add = vec![
        (TAINT_NOT_READY, "NoExecute"),
        (TAINT_UNREACHABLE, "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec["hostNetwork"].as_bool() == Some(true) {
        add.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    for (key, effect) in add {
        if !tol
            .iter()
            .any(|t| t["key"] == json!(key) && t["effect"] == json!(effect))
        {
            tol.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    tol
}

/// Where a DaemonSet's pods may run, per node: what [`daemonsets`] and its status decide
/// for each (DaemonSet, node), kept while neither the DaemonSet's spec (its generation) nor
/// the node (its resourceVersion) changed, so a pass costs a lookup per node instead of
/// matching the pod template's tolerations and affinity against every node again.
#[derive(Default)]
pub(crate) struct DaemonFit(BTreeMap<(String, String), (i64, String, Fit)>);

#[derive(Clone, Copy)]
struct Fit {
    /// The node takes a new daemon pod (`fits`).
    should_run: bool,
    /// A daemon pod already there may stay (selectors and NoExecute taints).
    may_continue: bool,
}

impl DaemonFit {
    fn of(&mut self, ds: &Value, probe: &Value, tol: &[Value], node: &Value) -> Fit {
        let key = (uid_of(ds).to_string(), name_of(node).to_string());
        let generation = ds["metadata"]["generation"].as_i64().unwrap_or(0);
        let rv = node["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if let Some((g, r, fit)) = self.0.get(&key)
            && *g == generation
            && r == rv
        {
            return *fit;
        }
        let fit = Fit {
            should_run: fits(probe, node),
            may_continue: node_selector_matches(&probe["spec"], node)
                && affinity_matches(&probe["spec"], node)
                && tolerates_taints(tol, node, &["NoExecute"]),
        };
        self.0.insert(key, (generation, rv.to_string(), fit));
        fit
    }

    /// Forget the pairs whose DaemonSet or node is gone.
    fn prune(&mut self, daemons: &[Arc<Value>], nodes: &[Arc<Value>]) {
        if self.0.len() <= 2 * daemons.len() * nodes.len() {
            return;
        }
        let ds: BTreeSet<&str> = daemons.iter().map(|d| uid_of(d)).collect();
        let ns: BTreeSet<&str> = nodes.iter().map(|n| name_of(n)).collect();
        self.0
            .retain(|(d, n), _| ds.contains(d.as_str()) && ns.contains(n.as_str()));
    }
}

/// The pod a DaemonSet's controller would create, with the tolerations it adds.
fn daemon_probe(ds: &Value) -> (Value, Vec<Value>) {
    let mut probe = pod_from_template(ds, "apps/v1", "DaemonSet", String::new());
    let tol = daemon_tolerations(&probe["spec"]);
    probe["spec"]["tolerations"] = json!(tol);
    (probe, tol)
}

/// DaemonSet → one pod per node that should run it.
pub(crate) fn daemonsets(store: &mut Store, fit: &mut DaemonFit) {
    let nodes = store.list(&gvr_nodes(), None, &Filter::default());
    let daemons = live(store, &gvr_daemonsets());
    fit.prune(&daemons, &nodes);
    for ds in daemons {
        let ns = ns_of(&ds).to_string();
        let (probe, tol) = daemon_probe(&ds);
        let pods: Vec<Arc<Value>> = owned_pods(store, uid_of(&ds));
        // The daemon's pods by node, once: proportional to the pods, not nodes × pods.
        let mut by_node: BTreeMap<&str, Vec<&Arc<Value>>> = BTreeMap::new();
        for p in &pods {
            if let Some(n) = p["spec"]["nodeName"].as_str() {
                by_node.entry(n).or_default().push(p);
            }
        }
        for node in &nodes {
            let node_name = name_of(node);
            let here: Vec<&Arc<Value>> = by_node.get(node_name).cloned().unwrap_or_default();
            let Fit {
                should_run,
                may_continue,
            } = fit.of(&ds, &probe, &tol, node);
            if here.is_empty() && should_run {
                let name = format!("{}-{}", name_of(&ds), store.name_suffix(5));
                let mut pod = pod_from_template(&ds, "apps/v1", "DaemonSet", name);
                pod["spec"]["tolerations"] = json!(tol);
                pod["spec"]["nodeName"] = json!(node_name);
                pod["metadata"]["labels"]["pod-template-generation"] = json!(
                    ds["metadata"]["generation"]
                        .as_i64()
                        .unwrap_or(1)
                        .to_string()
                );
                create(store, &gvr_pods(), &ns, pod);
            } else if !here.is_empty() && !may_continue {
                for p in here {
                    remove(
                        store,
                        &gvr_pods(),
                        p,
                        "daemonset pod may not run on this node",
                    );
                }
            } else {
                for p in here.iter().skip(1) {
                    remove(store, &gvr_pods(), p, "extra daemonset pod");
                }
            }
        }
        // Pods bound to nodes that no longer exist are the pod GC's.
    }
}

/// Status of ReplicaSets, Deployments and DaemonSets from their pods.
pub(crate) fn rollups(store: &mut Store, fit: &mut DaemonFit) {
    let rsg = gvr_replicasets();
    for rs in live(store, &rsg) {
        let pods: Vec<Arc<Value>> = owned_pods(store, uid_of(&rs));
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let mut status = rs["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["replicas"] = json!(pods.len());
        status["fullyLabeledReplicas"] = json!(pods.len());
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(ready);
        status["observedGeneration"] = rs["metadata"]["generation"].clone();
        write_status(store, &rsg, &rs, status);
    }
    for d in live(store, &gvr_deployments()) {
        deployment_status(store, &d);
    }
    let nodes = store.list(&gvr_nodes(), None, &Filter::default());
    for ds in live(store, &gvr_daemonsets()) {
        daemonset_status(store, &ds, &nodes, fit);
    }
}

fn deployment_status(store: &mut Store, d: &Value) {
    let owned: Vec<Arc<Value>> = store
        .list(&gvr_replicasets(), Some(ns_of(d)), &Filter::default())
        .into_iter()
        .filter(|rs| controlled_by(rs, uid_of(d)))
        .collect();
    let hash = template_hash(&d["spec"]["template"]);
    let sum = |f: &str| -> i64 {
        owned
            .iter()
            .map(|rs| rs["status"][f].as_i64().unwrap_or(0))
            .sum()
    };
    let updated = owned
        .iter()
        .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == json!(hash))
        .map_or(0, |rs| rs["status"]["replicas"].as_i64().unwrap_or(0));
    let want = replicas(d);
    let (total, ready, available) = (
        sum("replicas"),
        sum("readyReplicas"),
        sum("availableReplicas"),
    );
    let now = now_time();
    let mut status = d["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    status["observedGeneration"] = d["metadata"]["generation"].clone();
    status["replicas"] = json!(total);
    status["updatedReplicas"] = json!(updated);
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(available);
    status["unavailableReplicas"] = json!((want - available).max(0));
    let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
    let times = ["lastUpdateTime"];
    // Available: at least `replicas - maxUnavailable` available (`deploymentutil.
    // MaxUnavailable`: a percentage rounds down; 25% by default).
    if available >= want - max_unavailable(d, want) {
        set_condition(
            &mut conds,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now,
            &times,
        );
    } else {
        set_condition(
            &mut conds,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now,
            &times,
        );
    }
    let (reason, msg) = if updated == want && available >= want {
        (
            "NewReplicaSetAvailable",
            format!(
                "ReplicaSet \"{}-{hash}\" has successfully progressed.",
                name_of(d)
            ),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{}-{hash}\" is progressing.", name_of(d)),
        )
    };
    set_condition(
        &mut conds,
        "Progressing",
        "True",
        reason,
        &msg,
        &now,
        &times,
    );
    status["conditions"] = json!(conds);
    write_status(store, &gvr_deployments(), d, status);
}

/// A rolling update's `maxUnavailable` in pods for `want` replicas.
fn max_unavailable(d: &Value, want: i64) -> i64 {
    let v = &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"];
    let n = match (v.as_i64(), v.as_str()) {
        (Some(n), _) => n,
        (None, Some(p)) => {
            let pct: i64 = p.trim_end_matches('%').parse().unwrap_or(25);
            want * pct / 100
        }
        (None, None) if d["spec"]["strategy"]["type"] == "Recreate" => 0,
        (None, None) => want * 25 / 100,
    };
    n.clamp(0, want)
}

fn daemonset_status(store: &mut Store, ds: &Value, nodes: &[Arc<Value>], fit: &mut DaemonFit) {
    let (probe, tol) = daemon_probe(ds);
    let pods: Vec<Arc<Value>> = owned_pods(store, uid_of(ds));
    let mut by_node: BTreeMap<&str, Vec<&Arc<Value>>> = BTreeMap::new();
    for p in &pods {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            by_node.entry(n).or_default().push(p);
        }
    }
    let (mut desired, mut current, mut misscheduled, mut ready) = (0, 0, 0, 0);
    for node in nodes {
        let here: Vec<&Arc<Value>> = by_node.get(name_of(node)).cloned().unwrap_or_default();
        if fit.of(ds, &probe, &tol, node).should_run {
            desired += 1;
            if !here.is_empty() {
                current += 1;
            }
            if here.iter().any(|p| pod_ready(p)) {
                ready += 1;
            }
        } else if !here.is_empty() {
            misscheduled += 1;
        }
    }
    let mut status = json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": current,
        "observedGeneration": ds["metadata"]["generation"].clone(),
    });
    if desired > ready {
        status["numberUnavailable"] = json!(desired - ready);
    }
    write_status(store, &gvr_daemonsets(), ds, status);
}

/// Selector helper kept for services: whether `selector` (a plain map) selects `pod`.
pub(crate) fn selects(selector: &Value, pod: &Value) -> bool {
    let map = string_map(selector);
    !map.is_empty() && LabelSelector::from_object(&json!({"matchLabels": map})).matches(pod)
}

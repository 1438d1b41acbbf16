//! Pods: the scheduler (taints and tolerations, nodeSelector, required node affinity, least
//! loaded node first), the kubelet's pod status (Running and Ready once the node's network
//! is up, `ContainerCreating` before; hostNetwork pods need no CNI), the node lifecycle
//! controller's `MarkPodsNotReady`, taint-based eviction (NoExecute taints against
//! `tolerationSeconds`), the garbage collector and the pod GC of deleted nodes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Value, json};

use super::super::defaults::node_selector_matches;
use super::super::select::{FieldSelector, Filter, LabelSelector, labels_of};
use super::super::store::{Store, now_time};
use super::super::types::Gvr;
use super::{
    Clock, NodeSim, Sim, Wake, condition_status, deleting, gvr_nodes, gvr_pods, name_of, ns_of,
    remove, set_condition, tolerates, uid_of, write, write_status,
};

fn pods_on(store: &Store, node: &str) -> Vec<std::sync::Arc<Value>> {
    let filter = Filter {
        labels: LabelSelector::default(),
        fields: FieldSelector::parse(&format!("spec.nodeName={node}")).unwrap_or_default(),
    };
    store.list(&gvr_pods(), None, &filter)
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn tolerations(pod: &Value) -> Vec<Value> {
    pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Taint-based eviction: pods on a node with a NoExecute taint they do not tolerate are
/// deleted at once; tolerated ones after the smallest `tolerationSeconds` (scaled),
/// counted from when the taint appeared; without `tolerationSeconds`, never.
pub(crate) fn evict(store: &mut Store, sim: &mut Sim, clock: Clock, wake: &mut Wake) {
    let nodes = store.list(&gvr_nodes(), None, &Filter::default());
    let mut seen = BTreeMap::new();
    for node in &nodes {
        for t in node["spec"]["taints"].as_array().into_iter().flatten() {
            if t["effect"] == "NoExecute" {
                let k = (
                    name_of(node).to_string(),
                    t["key"].as_str().unwrap_or_default().to_string(),
                );
                let since = sim.taints_seen.get(&k).copied().unwrap_or(clock.now);
                seen.insert(k, since);
            }
        }
    }
    sim.taints_seen = seen;
    for node in &nodes {
        let taints: Vec<&Value> = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["effect"] == "NoExecute")
            .collect();
        if taints.is_empty() {
            continue;
        }
        for pod in pods_on(store, name_of(node)) {
            if deleting(&pod) {
                continue;
            }
            let tol = tolerations(&pod);
            let mut deadline = None;
            let mut now = false;
            for taint in &taints {
                let matching: Vec<&Value> = tol.iter().filter(|t| tolerates(t, taint)).collect();
                if matching.is_empty() {
                    now = true;
                    break;
                }
                let secs = matching
                    .iter()
                    .filter_map(|t| t["tolerationSeconds"].as_i64())
                    .min();
                let key = (
                    name_of(node).to_string(),
                    taint["key"].as_str().unwrap_or_default().to_string(),
                );
                if let (Some(s), Some(since)) = (secs, sim.taints_seen.get(&key)) {
                    let d = *since + clock.dur(s.max(0) as f64);
                    deadline = Some(deadline.map_or(d, |x: std::time::Instant| x.min(d)));
                }
            }
            match deadline {
                _ if now => remove(
                    store,
                    &gvr_pods(),
                    &pod,
                    "taint manager: untolerated NoExecute taint",
                ),
                Some(d) if d <= clock.now => remove(
                    store,
                    &gvr_pods(),
                    &pod,
                    "taint manager: toleration expired",
                ),
                Some(d) => wake.at(d),
                None => {}
            }
        }
    }
}

/// The garbage collector (objects whose owners are all gone) and the pod GC (pods bound
/// to a node that was deleted).
pub(crate) fn collect_garbage(store: &mut Store, sim: &mut Sim) {
    let uids: HashSet<String> = store.all().map(|(_, v)| uid_of(v).to_string()).collect();
    let orphans: Vec<(Gvr, Value)> = store
        .all()
        .filter(|(_, v)| {
            v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    !refs.is_empty()
                        && refs
                            .iter()
                            .all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()))
                })
        })
        .map(|(k, v)| (k.gvr.clone(), (**v).clone()))
        .collect();
    for (gvr, obj) in orphans {
        remove(store, &gvr, &obj, "garbage collector: owner gone");
    }
    let current: BTreeSet<String> = store
        .list(&gvr_nodes(), None, &Filter::default())
        .iter()
        .map(|n| name_of(n).to_string())
        .collect();
    let gone: Vec<String> = sim.known_nodes.difference(&current).cloned().collect();
    for node in gone {
        for pod in pods_on(store, &node) {
            remove(store, &gvr_pods(), &pod, "pod GC: node deleted");
        }
    }
    sim.known_nodes = current;
}

/// Required node affinity (`nodeSelectorTerms`, ORed; expressions ANDed).
pub(crate) fn affinity_matches(spec: &Value, node: &Value) -> bool {
    let terms = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    let Some(terms) = terms.as_array() else {
        return true;
    };
    terms.iter().any(|term| {
        let labels_ok = LabelSelector::from_object(
            &json!({"matchExpressions": term["matchExpressions"].clone()}),
        )
        .matches_labels(&labels_of(node));
        let fields_ok = term["matchFields"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|f| {
                let vals: Vec<&str> = f["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let has = vals.contains(&name_of(node));
                f["key"] == "metadata.name" && if f["operator"] == "NotIn" { !has } else { has }
            });
        labels_ok && fields_ok
    })
}

/// Why `node` cannot take `pod`, or None if it can.
fn unfit(pod: &Value, node: &Value) -> Option<String> {
    let tol = tolerations(pod);
    let cordon = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
    if node["spec"]["unschedulable"].as_bool() == Some(true)
        && !tol.iter().any(|t| tolerates(t, &cordon))
    {
        return Some("node(s) were unschedulable".into());
    }
    if let Some(t) = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
        .find(|taint| !tol.iter().any(|t| tolerates(t, taint)))
    {
        return Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t["key"].as_str().unwrap_or_default(),
            t["value"].as_str().unwrap_or_default()
        ));
    }
    if !node_selector_matches(&pod["spec"], node) || !affinity_matches(&pod["spec"], node) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    None
}

/// Whether a pod's tolerations and selectors admit `node` (DaemonSets use this too).
pub(crate) fn fits(pod: &Value, node: &Value) -> bool {
    unfit(pod, node).is_none()
}

/// Bind pending pods to the least loaded fitting node.
pub(crate) fn schedule(store: &mut Store) {
    let nodes = store.list(&gvr_nodes(), None, &Filter::default());
    let pods = store.list(&gvr_pods(), None, &Filter::default());
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    for p in pods.iter().filter(|p| !terminal(p)) {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            *load.entry(n.to_string()).or_default() += 1;
        }
    }
    let now = now_time();
    for pod in pods.iter().filter(|p| {
        p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) && !deleting(p) && !terminal(p)
    }) {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let best = nodes
            .iter()
            .filter(|n| match unfit(pod, n) {
                None => true,
                Some(r) => {
                    *reasons.entry(r).or_default() += 1;
                    false
                }
            })
            .min_by_key(|n| {
                (
                    load.get(name_of(n)).copied().unwrap_or(0),
                    name_of(n).to_string(),
                )
            });
        let mut status = pod["status"].clone();
        let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
        match best {
            Some(node) => {
                let node_name = name_of(node).to_string();
                *load.entry(node_name.clone()).or_default() += 1;
                let mut bound = (**pod).clone();
                bound["spec"]["nodeName"] = json!(node_name);
                write(store, &gvr_pods(), bound);
                set_condition(&mut conds, "PodScheduled", "True", "", "", &now, &[]);
                status["conditions"] = json!(conds);
                if let Some(p) = store.get(&gvr_pods(), ns_of(pod), name_of(pod)) {
                    write_status(store, &gvr_pods(), &p, status);
                }
            }
            None => {
                let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                let msg = format!(
                    "0/{} nodes are available: {}.",
                    nodes.len(),
                    detail.join(", ")
                );
                set_condition(
                    &mut conds,
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                    &msg,
                    &now,
                    &[],
                );
                status["conditions"] = json!(conds);
                write_status(store, &gvr_pods(), pod, status);
            }
        }
    }
}

fn container_id(pod: &Value, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{}/{name}", uid_of(pod)).as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("containerd://{hex}")
}

/// The kubelet's view of one pod on a node whose kubelet is posting.
fn kubelet_status(
    pod: &Value,
    n: &NodeSim,
    net_ok: bool,
    sim_ip: impl FnOnce() -> String,
) -> Value {
    let now = now_time();
    let old = &pod["status"];
    let mut status = old.clone();
    let was_running = old["phase"] == "Running";
    let running = net_ok || was_running;
    let ready = net_ok;
    let host_net = pod["spec"]["hostNetwork"].as_bool() == Some(true);
    status["phase"] = json!(if running { "Running" } else { "Pending" });
    status["hostIP"] = json!(n.ip());
    status["hostIPs"] = json!([{"ip": n.ip()}]);
    if status.get("startTime").is_none() {
        status["startTime"] = json!(now);
    }
    if running && status.get("podIP").is_none() {
        let ip = if host_net { n.ip() } else { sim_ip() };
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let old_cs = old["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let prev = old_cs.iter().find(|s| s["name"] == json!(name));
            let state = if running {
                let started = prev
                    .and_then(|p| p["state"]["running"]["startedAt"].as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| now.clone());
                json!({"running": {"startedAt": started}})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            };
            json!({"name": name, "image": c["image"].clone(), "imageID": "",
                "containerID": container_id(pod, name), "ready": ready, "started": running,
                "restartCount": 0, "state": state})
        })
        .collect();
    status["containerStatuses"] = json!(statuses);
    let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
    let b = |x: bool| if x { "True" } else { "False" };
    let unready = if ready {
        String::new()
    } else {
        format!("containers with unready status: [{}]", names.join(" "))
    };
    let reason = if ready { "" } else { "ContainersNotReady" };
    set_condition(
        &mut conds,
        "PodReadyToStartContainers",
        b(running),
        "",
        "",
        &now,
        &[],
    );
    set_condition(&mut conds, "Initialized", "True", "", "", &now, &[]);
    set_condition(&mut conds, "Ready", b(ready), reason, &unready, &now, &[]);
    set_condition(
        &mut conds,
        "ContainersReady",
        b(ready),
        reason,
        &unready,
        &now,
        &[],
    );
    set_condition(&mut conds, "PodScheduled", "True", "", "", &now, &[]);
    status["conditions"] = json!(conds);
    status
}

/// Pod status for every pod bound to a joined node.
pub(crate) fn kubelet_pods(store: &mut Store, sim: &mut Sim, clock: Clock) {
    let pods = store.list(&gvr_pods(), None, &Filter::default());
    for pod in pods.iter().filter(|p| !deleting(p) && !terminal(p)) {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        let Some(n) = sim.nodes.get(node).cloned() else {
            continue;
        };
        if !n.posting(clock) {
            if !n.fresh(clock) && condition_status(pod, "Ready") == Some("True") {
                // MarkPodsNotReady: the node lifecycle controller's part.
                let mut status = pod["status"].clone();
                let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
                set_condition(
                    &mut conds,
                    "Ready",
                    "False",
                    "NodeNotReady",
                    "",
                    &now_time(),
                    &[],
                );
                status["conditions"] = json!(conds);
                write_status(store, &gvr_pods(), pod, status);
            }
            continue;
        }
        let net_ok = n.cni_ready || pod["spec"]["hostNetwork"].as_bool() == Some(true);
        let next = sim.pod_ip_next.entry(node.to_string()).or_insert(1);
        let status = kubelet_status(pod, &n, net_ok, || {
            *next = *next % 253 + 1;
            format!("{}.{}", n.pod_prefix(), *next + 1)
        });
        write_status(store, &gvr_pods(), pod, status);
    }
}

/// Whether a pod counts as ready.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && condition_status(pod, "Ready") == Some("True")
}

/// Pods of a namespace, active (not terminal, not being deleted).
pub(crate) fn active_pods(store: &Store, ns: &str) -> Vec<std::sync::Arc<Value>> {
    store
        .list(&gvr_pods(), Some(ns), &Filter::default())
        .into_iter()
        .filter(|p| !deleting(p) && !terminal(p))
        .collect()
}

/// Whether a pod sits on a node whose Ready condition is True.
pub(crate) fn on_ready_node(store: &Store, pod: &Value) -> bool {
    pod["spec"]["nodeName"]
        .as_str()
        .and_then(|n| store.get(&gvr_nodes(), "", n))
        .is_some_and(|n| condition_status(&n, "Ready") == Some("True"))
}

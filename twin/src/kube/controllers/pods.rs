//! Pods: the scheduler (taints and tolerations, nodeSelector, required node affinity,
//! required pod anti-affinity per node, then the node with the fewest pods the preferred
//! anti-affinity avoids, then the least loaded), the kubelet's pod status (the containers of
//! [`super::runtime`]: Running and Ready once the node's network is up, `ContainerCreating`
//! before; hostNetwork pods need no CNI; a pod IP from the node's pod CIDR per sandbox), the
//! node lifecycle controller's `MarkPodsNotReady`, taint-based eviction (NoExecute taints
//! against `tolerationSeconds`), the garbage collector and the pod GC of deleted nodes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Value, json};

use super::super::defaults::node_selector_matches;
use super::super::select::{Filter, LabelSelector, labels_of};
use super::super::store::{Store, now_time};
use super::super::types::Gvr;
use super::runtime::{CRASH_RUN_SECS, Crash, PodRuntime};
use super::{
    Clock, NodeSim, Sim, Wake, condition_status, deleting, gvr_nodes, gvr_pods, name_of, ns_of,
    remove, set_condition, tolerates, uid_of, write, write_status,
};
use crate::kube::{Transition, TransitionKind};

fn pods_on(store: &Store, node: &str) -> Vec<std::sync::Arc<Value>> {
    store.pods_on_node(node)
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
            let kubelet = sim
                .nodes
                .get(name_of(node))
                .is_some_and(|n| n.posting(clock));
            match deadline {
                _ if now => terminate(
                    store,
                    &pod,
                    kubelet,
                    "taint manager: untolerated NoExecute taint",
                ),
                Some(d) if d <= clock.now => {
                    terminate(store, &pod, kubelet, "taint manager: toleration expired")
                }
                Some(d) => wake.at(d),
                None => {}
            }
        }
    }
}

/// Delete a pod as the API server does: with a posting kubelet the containers stop and the
/// pod is gone at once (the twin does not emulate the grace period); on a node whose kubelet
/// is gone, the pod is Terminating (`deletionTimestamp` set) until the kubelet returns or
/// the node is deleted.
fn terminate(store: &mut Store, pod: &Value, kubelet: bool, why: &str) {
    if kubelet || terminal(pod) {
        remove(store, &gvr_pods(), pod, why);
        return;
    }
    tracing::info!(
        "kube twin: pod {}/{} Terminating ({why}); its kubelet is gone",
        ns_of(pod),
        name_of(pod)
    );
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30);
    store.mark_terminating(&gvr_pods(), ns_of(pod), name_of(pod), grace);
}

/// The kubelet's graceful node shutdown of `node`'s pods (see
/// `KubeTwin::begin_node_shutdown`): DaemonSet pods and the node's mirror pods are left
/// to the shutdown of the machine itself.
pub(crate) fn shutdown_pods(store: &mut Store, sim: &mut Sim, node: &str) {
    const MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";
    let now = now_time();
    for pod in pods_on(store, node) {
        if terminal(&pod) || deleting(&pod) {
            continue;
        }
        let owner = pod["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["controller"] == true)
            .and_then(|r| r["kind"].as_str())
            .unwrap_or_default()
            .to_string();
        if owner == "DaemonSet" || owner == "Node" {
            continue;
        }
        let was_ready = condition_status(&pod, "Ready") == Some("True");
        let mut status = pod["status"].clone();
        status["phase"] = json!("Failed");
        status["reason"] = json!("Terminated");
        status["message"] = json!(MESSAGE);
        let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
        set_condition(
            &mut conds,
            "DisruptionTarget",
            "True",
            "TerminationByKubelet",
            MESSAGE,
            &now,
            &[],
        );
        for ty in ["Ready", "ContainersReady"] {
            set_condition(&mut conds, ty, "False", "PodFailed", "", &now, &[]);
        }
        for c in &mut conds {
            c["lastProbeTime"] = Value::Null;
        }
        status["conditions"] = json!(conds);
        // The containers were stopped with SIGTERM (128 + 15).
        if let Some(cs) = status["containerStatuses"].as_array_mut() {
            for c in cs {
                let started = c["state"]["running"]["startedAt"].clone();
                c["state"] = json!({"terminated": {"exitCode": 143, "reason": "Error",
                    "startedAt": started, "finishedAt": now, "containerID": c["containerID"].clone()}});
                c["ready"] = json!(false);
                c["started"] = json!(false);
            }
        }
        write_status(store, &gvr_pods(), &pod, status);
        if was_ready {
            let name = format!("{}/{}", ns_of(&pod), name_of(&pod));
            sim.transitions
                .push(Transition::now(TransitionKind::Pod, &name, node, "False"));
        }
        // The runtime's containers of this pod are gone.
        sim.runtimes.remove(uid_of(&pod));
    }
}

/// The garbage collector (objects whose owners are all gone) and the pod GC (pods bound
/// to a node that was deleted).
pub(crate) fn collect_garbage(store: &mut Store, sim: &mut Sim) {
    // Orphans appear only when objects come, go or change owners. The epoch is taken
    // before collecting: the collector's own deletions change it, so the next pass looks
    // again and collects what those deletions orphaned (a cascade, one level per pass).
    let epoch = store.ownership_epoch();
    if sim.gc_epoch != Some(epoch) {
        collect_orphans(store);
        sim.gc_epoch = Some(epoch);
    }
    collect_pods_of_deleted_nodes(store, sim);
}

/// The garbage collector: objects whose owners are all gone.
fn collect_orphans(store: &mut Store) {
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
}

/// The pod GC (pods bound to a node that was deleted).
fn collect_pods_of_deleted_nodes(store: &mut Store, sim: &mut Sim) {
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

/// The pod's anti-affinity terms of one kind (`requiredDuringSchedulingIgnoredDuringExecution`
/// terms, or the `podAffinityTerm`s of the preferred ones with their weights) whose topology
/// is the node (`kubernetes.io/hostname`, the only topology the twin's nodes have).
fn anti_affinity(pod: &Value, required: bool) -> Vec<(i64, LabelSelector, Vec<String>)> {
    let aa = &pod["spec"]["affinity"]["podAntiAffinity"];
    let key = if required {
        "requiredDuringSchedulingIgnoredDuringExecution"
    } else {
        "preferredDuringSchedulingIgnoredDuringExecution"
    };
    aa[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let (weight, term) = if required {
                (1, t)
            } else {
                (t["weight"].as_i64().unwrap_or(1), &t["podAffinityTerm"])
            };
            (term["topologyKey"] == "kubernetes.io/hostname").then(|| {
                let mut namespaces: Vec<String> = term["namespaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect();
                if namespaces.is_empty() {
                    namespaces.push(ns_of(pod).to_string());
                }
                (
                    weight,
                    LabelSelector::from_object(&term["labelSelector"]),
                    namespaces,
                )
            })
        })
        .collect()
}

/// Sum of the weights of the pod's anti-affinity terms that pods already on the node match.
fn anti_affinity_hits(pod: &Value, required: bool, on_node: &[Value]) -> i64 {
    anti_affinity(pod, required)
        .iter()
        .filter(|(_, sel, nss)| {
            on_node
                .iter()
                .any(|p| nss.iter().any(|n| n == ns_of(p)) && sel.matches(p))
        })
        .map(|(w, _, _)| *w)
        .sum()
}

/// Bind pending pods to a fitting node: required pod anti-affinity respected, then the node
/// with the fewest pods the preferred anti-affinity avoids, then the least loaded.
pub(crate) fn schedule(store: &mut Store) {
    let nodes = store.list(&gvr_nodes(), None, &Filter::default());
    let pods = store.list(&gvr_pods(), None, &Filter::default());
    // Most passes have nothing to schedule: skip building the per-node view (a copy of every
    // bound pod) unless a pod waits for a node.
    if !pods.iter().any(|p| {
        p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) && !deleting(p) && !terminal(p)
    }) {
        return;
    }
    let mut on_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in pods.iter().filter(|p| !terminal(p) && !deleting(p)) {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            on_node
                .entry(n.to_string())
                .or_default()
                .push((**p).clone());
        }
    }
    let now = now_time();
    for pod in pods.iter().filter(|p| {
        p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) && !deleting(p) && !terminal(p)
    }) {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let here = |n: &Value| {
            on_node
                .get(name_of(n))
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let best = nodes
            .iter()
            .filter(|n| {
                let why = unfit(pod, n).or_else(|| {
                    (anti_affinity_hits(pod, true, here(n)) > 0)
                        .then(|| "node(s) didn't match pod anti-affinity rules".to_string())
                });
                match why {
                    None => true,
                    Some(r) => {
                        *reasons.entry(r).or_default() += 1;
                        false
                    }
                }
            })
            .min_by_key(|n| {
                (
                    anti_affinity_hits(pod, false, here(n)),
                    here(n).len(),
                    name_of(n).to_string(),
                )
            })
            .cloned();
        let mut status = pod["status"].clone();
        let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
        match best {
            Some(node) => {
                let node_name = name_of(&node).to_string();
                let mut bound = (**pod).clone();
                bound["spec"]["nodeName"] = json!(node_name);
                on_node
                    .entry(node_name.clone())
                    .or_default()
                    .push(bound.clone());
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

/// The kubelet's view of one pod on a node whose kubelet is posting: phase, IPs,
/// conditions and the container statuses of the runtime.
fn kubelet_status(
    pod: &Value,
    n: &NodeSim,
    net_ok: bool,
    rt: &PodRuntime,
    ip: Option<String>,
    clock: Clock,
) -> Value {
    let now = now_time();
    let mut status = pod["status"].clone();
    let started = rt.started();
    let host_net = pod["spec"]["hostNetwork"].as_bool() == Some(true);
    status["phase"] = json!(if started { "Running" } else { "Pending" });
    status["hostIP"] = json!(n.ip());
    status["hostIPs"] = json!([{"ip": n.ip()}]);
    if status.get("startTime").is_none() {
        status["startTime"] = json!(now);
    }
    if let Some(ip) = ip.or_else(|| host_net.then(|| n.ip())).filter(|_| started) {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    let (containers, init) = rt.statuses(pod, clock);
    status["containerStatuses"] = json!(containers);
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| c["ready"] != true)
        .filter_map(|c| c["name"].as_str())
        .collect();
    let ready = net_ok && started && unready.is_empty();
    let b = |x: bool| if x { "True" } else { "False" };
    let (reason, message) = if ready {
        ("", String::new())
    } else {
        let names = if unready.is_empty() {
            containers
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect()
        } else {
            unready
        };
        (
            "ContainersNotReady",
            format!("containers with unready status: [{}]", names.join(" ")),
        )
    };
    let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
    set_condition(
        &mut conds,
        "PodReadyToStartContainers",
        b(started),
        "",
        "",
        &now,
        &[],
    );
    if init.is_empty() || started {
        set_condition(&mut conds, "Initialized", "True", "", "", &now, &[]);
    } else {
        let names: Vec<&str> = init.iter().filter_map(|c| c["name"].as_str()).collect();
        set_condition(
            &mut conds,
            "Initialized",
            "False",
            "ContainersNotInitialized",
            &format!("containers with incomplete status: [{}]", names.join(" ")),
            &now,
            &[],
        );
    }
    set_condition(&mut conds, "Ready", b(ready), reason, &message, &now, &[]);
    set_condition(
        &mut conds,
        "ContainersReady",
        b(ready),
        reason,
        &message,
        &now,
        &[],
    );
    set_condition(&mut conds, "PodScheduled", "True", "", "", &now, &[]);
    for c in &mut conds {
        // Pod conditions carry a probe time the kubelet leaves empty.
        c["lastProbeTime"] = Value::Null;
    }
    status["conditions"] = json!(conds);
    status
}

/// Pod status for every pod bound to a joined node, after running its containers to now.
pub(crate) fn kubelet_pods(store: &mut Store, sim: &mut Sim, clock: Clock, wake: &mut Wake) {
    let pods = store.list(&gvr_pods(), None, &Filter::default());
    let live: BTreeSet<String> = pods.iter().map(|p| uid_of(p).to_string()).collect();
    sim.runtimes.retain(|uid, _| live.contains(uid));
    sim.pod_posted.retain(|uid, _| live.contains(uid));
    if sim.crash_victim.as_ref().is_some_and(|v| !live.contains(v)) {
        sim.crash_victim = None;
    }
    // A kubelet that is back finishes the deletion of its pods that were Terminating.
    for pod in pods.iter().filter(|p| deleting(p)) {
        let posting = pod["spec"]["nodeName"]
            .as_str()
            .and_then(|n| sim.nodes.get(n))
            .is_some_and(|n| n.posting(clock));
        if posting
            && pod["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            remove(store, &gvr_pods(), pod, "kubelet: pod terminated");
        }
    }
    for pod in pods.iter().filter(|p| !deleting(p) && !terminal(p)) {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        let Some(n) = sim.nodes.get(node).cloned() else {
            continue;
        };
        let was_ready = condition_status(pod, "Ready") == Some("True");
        let pod_name = format!("{}/{}", ns_of(pod), name_of(pod));
        if !n.posting(clock) {
            if !n.fresh(clock) && was_ready {
                sim.transitions.push(Transition::now(
                    TransitionKind::Pod,
                    &pod_name,
                    node,
                    "False",
                ));
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
        let host_net = pod["spec"]["hostNetwork"].as_bool() == Some(true);
        let net_ok = host_net || sim.pod_network(node);
        let uid = uid_of(pod).to_string();
        if sim.faults.crashloop && sim.crash_victim.is_none() && crash_candidate(pod) && net_ok {
            sim.crash_victim = Some(uid.clone());
        }
        let crash = (sim.crash_victim.as_deref() == Some(uid.as_str())).then_some(Crash {
            exit_code: 1,
            run_secs: CRASH_RUN_SECS,
        });
        let rt = sim.runtimes.entry(uid).or_insert_with(|| PodRuntime {
            boot: n.boot,
            ..Default::default()
        });
        let new_sandbox = rt.advance(
            pod,
            net_ok,
            n.boot,
            n.died_at.as_deref(),
            crash.as_ref(),
            clock,
            wake,
        );
        // A new sandbox gets a new address from the node's pod CIDR.
        let ip = if host_net {
            None
        } else if new_sandbox {
            let next = sim.pod_ip_next.entry(node.to_string()).or_insert(1);
            *next = *next % 253 + 1;
            Some(format!("{}.{}", n.pod_prefix(), *next + 1))
        } else {
            pod["status"]["podIP"].as_str().map(str::to_string)
        };
        let rt = &sim.runtimes[uid_of(pod)];
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (rt.digest(), n.index, n.boot, net_ok, &ip).hash(&mut h);
            h.finish()
        };
        let rv = pod["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if sim
            .pod_posted
            .get(uid_of(pod))
            .is_some_and(|(r, d)| r == rv && *d == digest)
        {
            // Nothing the status is made of changed: the pod is as last posted.
            if was_ready
                && n.agent_wait
                && agent_pod(pod)
                && let Some(m) = sim.nodes.get_mut(node)
            {
                m.agent_wait = false;
            }
            continue;
        }
        let status = kubelet_status(pod, &n, net_ok, rt, ip, clock);
        let ready_now = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        write_status(store, &gvr_pods(), pod, status);
        if let Some(after) = store.get(&gvr_pods(), ns_of(pod), name_of(pod)) {
            let rv = after["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            sim.pod_posted
                .insert(uid_of(pod).to_string(), (rv.to_string(), digest));
        }
        if ready_now != was_ready {
            let to = if ready_now { "True" } else { "False" };
            sim.transitions
                .push(Transition::now(TransitionKind::Pod, &pod_name, node, to));
        }
        // The node's Cilium agent is ready in this boot: pod networking works again.
        if ready_now
            && n.agent_wait
            && agent_pod(pod)
            && let Some(m) = sim.nodes.get_mut(node)
        {
            m.agent_wait = false;
        }
    }
    // Nodes without an agent pod do not wait for one.
    let waiting: Vec<String> = sim
        .nodes
        .iter()
        .filter(|(_, n)| n.agent_wait)
        .map(|(k, _)| k.clone())
        .collect();
    for node in waiting {
        if !pods_on(store, &node)
            .iter()
            .any(|p| agent_pod(p) && !deleting(p))
            && let Some(m) = sim.nodes.get_mut(&node)
        {
            m.agent_wait = false;
        }
    }
}

/// The Cilium agent's pod (`k8s-app=cilium` in kube-system, the DaemonSet of the install).
fn agent_pod(pod: &Value) -> bool {
    ns_of(pod) == "kube-system" && pod["metadata"]["labels"]["k8s-app"] == "cilium"
}

/// The pods `crashloop-pod` picks from: CoreDNS's (`k8s-app=kube-dns` in kube-system).
fn crash_candidate(pod: &Value) -> bool {
    ns_of(pod) == "kube-system" && pod["metadata"]["labels"]["k8s-app"] == "kube-dns"
}

/// Whether a pod counts as ready.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && condition_status(pod, "Ready") == Some("True")
}

/// The active pods (not terminal, not being deleted) whose controller has `owner_uid`.
pub(crate) fn owned_pods(store: &Store, owner_uid: &str) -> Vec<std::sync::Arc<Value>> {
    store
        .controlled_by(&gvr_pods(), owner_uid)
        .into_iter()
        .filter(|p| !deleting(p) && !terminal(p))
        .collect()
}

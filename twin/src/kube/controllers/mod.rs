//! The controllers that run inside the twin's API server, as one tokio task: a kubelet per
//! joined node (Lease renewal, node status, its pods' containers and their status, the mirror
//! pods of Talos's static pods), Talos's bootstrap manifests, the node lifecycle controller
//! (Ready `Unknown` and the unreachable taints after the grace period), taint-based
//! eviction, the garbage collector (ownerReferences), the Deployment, ReplicaSet and
//! DaemonSet controllers and a scheduler. The faults of [`Faults`] act here.
//!
//! Each pass reconciles from the store's current state, writing only what differs, so
//! passes are deterministic and converge. A pass does work in proportion to what changed:
//! the kubelets skip a node or a pod whose object and inputs are as they last posted them
//! (`NodeSim::posted`, `Sim::pod_posted`), the DaemonSet controller keeps its per-node
//! decisions while neither the DaemonSet's generation nor the node changed
//! (`workloads::DaemonFit`), the garbage collector looks only after objects came, went or
//! changed owners, pods are found by node and by controller through the store's indexes,
//! and the Endpoints/EndpointSlice controllers ([`endpoints`]) re-sync only the Services
//! the changes since their last pass touch. The loop runs again at once when a pass wrote
//! something other than its own Lease renewals or a request changed the store meanwhile,
//! wakes on every change to the emulated machines, and otherwise sleeps until the next
//! time-driven event (a Lease renewal, a grace period or a toleration running out). All
//! durations are Kubernetes' defaults multiplied by `time_scale`.

mod endpoints;
mod nodes;
mod pods;
mod runtime;
mod talos;
mod workloads;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::store::{Store, Sub};
use super::types::Gvr;
use super::{Shared, World};

pub(crate) use nodes::{NodeSim, join_node};
pub(crate) use pods::{pod_ready, shutdown_pods};
pub(crate) use runtime::PodRuntime;
pub(crate) use workloads::selects as workloads_selects;

/// The durations the controllers use, in real seconds (from the twin's [`crate::timing::Timing`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct KubeTiming {
    /// kube-controller-manager `--node-monitor-grace-period`.
    pub grace: f64,
    /// kubelet Lease renewal interval.
    pub renew: f64,
    /// kubelet `nodeLeaseDurationSeconds`.
    pub lease_duration: f64,
}

impl From<&crate::timing::Timing> for KubeTiming {
    fn from(t: &crate::timing::Timing) -> Self {
        KubeTiming {
            grace: t.node_monitor_grace,
            renew: t.lease_renew,
            lease_duration: t.lease_duration,
        }
    }
}

impl Default for KubeTiming {
    fn default() -> Self {
        KubeTiming::from(&crate::timing::Timing::default())
    }
}

/// What the controllers remember between passes (the machines' side of the world).
#[derive(Default)]
pub(crate) struct Sim {
    pub nodes: BTreeMap<String, NodeSim>,
    pub next_node_index: u32,
    /// NoExecute taints as first seen: (node, key) → when.
    pub taints_seen: BTreeMap<(String, String), Instant>,
    /// Nodes that existed as objects, to collect pods of deleted nodes.
    pub known_nodes: BTreeSet<String>,
    /// Pod IPs handed out per node.
    pub pod_ip_next: BTreeMap<String, u32>,
    /// How far the Endpoints/EndpointSlice controllers have read the change history.
    pub endpoints: endpoints::EndpointsSync,
    /// The container runtime's side of every pod a kubelet runs, by pod uid.
    pub runtimes: BTreeMap<String, PodRuntime>,
    /// What each kubelet last posted for a pod, by pod uid: the pod's resourceVersion after
    /// the write and a digest of the inputs (node, network, runtime). A pass that finds both
    /// unchanged skips building the status again.
    pub pod_posted: BTreeMap<String, (String, u64)>,
    /// Whether Talos's bootstrap manifests (CoreDNS) have been applied.
    pub bootstrapped: bool,
    pub faults: Faults,
    /// `node-never-ready`: the worker whose kubelet never finds its CNI configuration.
    pub never_ready: Option<String>,
    /// `cross-node-drop`: the two workers between which pod traffic is dropped.
    pub dropped: Option<(String, String)>,
    /// `crashloop-pod`: the uid of the CoreDNS pod whose container crash-loops.
    pub crash_victim: Option<String>,
    /// The store's ownership epoch at the garbage collector's last look.
    pub gc_epoch: Option<u64>,
    /// The DaemonSet controller's per-node decisions.
    pub daemon_fit: workloads::DaemonFit,
    /// Source ports handed out for emulated connections.
    pub next_port: u32,
    /// Rotates through a Service's backends, as a load balancer spreads connections.
    pub lb_turn: u64,
    /// Node Ready and pod Ready transitions, in order, with wall-clock times.
    pub transitions: Vec<super::Transition>,
}

/// Faults the Kubernetes twin plays (see `twin::faults::Fault` for what catches each).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Faults {
    pub crashloop: bool,
    pub node_never_ready: bool,
    pub cross_node_drop: bool,
}

impl Sim {
    /// Pick the nodes and pods the faults act on, in join order (workers by node index):
    /// the first worker never turns Ready, the first two workers lose pod traffic between
    /// them. Cleared when the fault is switched off.
    pub fn designate(&mut self) {
        let mut workers: Vec<(&String, &NodeSim)> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.control_plane)
            .collect();
        workers.sort_by_key(|(_, n)| n.index);
        if !self.faults.node_never_ready {
            self.never_ready = None;
        } else if self.never_ready.is_none() {
            self.never_ready = workers.first().map(|(name, _)| (*name).clone());
        }
        if !self.faults.cross_node_drop {
            self.dropped = None;
        } else if self.dropped.is_none()
            && let [(a, _), (b, _), ..] = workers.as_slice()
        {
            self.dropped = Some(((*a).clone(), (*b).clone()));
        }
        if !self.faults.crashloop {
            self.crash_victim = None;
        }
    }

    /// Whether pods on `node` have a network: its CNI runs and its kubelet found the CNI
    /// configuration.
    pub fn pod_network(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.cni_ready && !n.agent_wait && !n.cni_broken)
            && self.never_ready.as_deref() != Some(node)
    }

    /// Whether pod traffic between the two nodes is dropped (`cross-node-drop`).
    pub fn drops(&self, a: &str, b: &str) -> bool {
        self.dropped
            .as_ref()
            .is_some_and(|(x, y)| (x == a && y == b) || (x == b && y == a))
    }
}

/// Scaled durations.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    pub now: Instant,
    pub scale: f64,
    pub t: KubeTiming,
}

impl Clock {
    pub fn dur(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.scale).max(0.0))
    }

    /// An emulated instant as a Kubernetes `Time`, the wall clock's now minus how long ago it
    /// was (in the twin's unscaled clock).
    pub fn time_at(&self, t: Instant) -> String {
        let ago = self.now.saturating_duration_since(t);
        let wall = chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default();
        wall.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

/// Earliest of the wake-up times the passes ask for.
#[derive(Default)]
pub(crate) struct Wake(Option<Instant>);

impl Wake {
    pub fn at(&mut self, t: Instant) {
        self.0 = Some(self.0.map_or(t, |c| c.min(t)));
    }
}

/// The controller task: reconcile, then wait for a change, a poke or the next deadline.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut changes = super::lock(&shared.world).store.subscribe();
    let mut stop = shared.stop.clone();
    loop {
        let (next, seen, again) = {
            let mut w = super::lock(&shared.world);
            let before = w.store.resource_version();
            let next = reconcile(
                &mut w,
                Clock {
                    now: Instant::now(),
                    scale: shared.time_scale,
                    t: shared.timing,
                },
            );
            // The pass's own Lease renewals need no pass of their own (at 500 nodes they
            // are thousands of writes a second); any other write of the pass may be
            // something a controller earlier in the pass reacts to.
            let again = w.store.changed_since(before, |gvr| gvr.plural != "leases");
            (next, w.store.resource_version(), again)
        };
        // Changes up to `seen` were in the world this pass reconciled; later ones (a
        // request that came in since) wake the next pass at once.
        if again || *changes.borrow_and_update() > seen {
            tokio::task::yield_now().await;
            if *stop.borrow() {
                break;
            }
            continue;
        }
        // Every timed event asks for its wake-up; the bound is only a safety net.
        let cap = Instant::now() + Duration::from_secs(1);
        let until = next.map_or(cap, |n| n.min(cap));
        tokio::select! {
            r = changes.changed() => if r.is_err() { break },
            _ = shared.poke.notified() => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// One pass of every controller.
pub(crate) fn reconcile(w: &mut World, clock: Clock) -> Option<Instant> {
    let mut wake = Wake::default();
    let World { store, sim } = w;
    sim.designate();
    talos::bootstrap(store, sim);
    nodes::kubelets_and_lifecycle(store, sim, clock, &mut wake);
    talos::mirror_pods(store, sim);
    pods::evict(store, sim, clock, &mut wake);
    pods::collect_garbage(store, sim);
    workloads::deployments(store);
    workloads::replicasets(store);
    workloads::daemonsets(store, &mut sim.daemon_fit);
    pods::schedule(store);
    pods::kubelet_pods(store, sim, clock, &mut wake);
    workloads::rollups(store, &mut sim.daemon_fit);
    let _synced = endpoints::reconcile(store, &mut sim.endpoints);
    wake.0
}

// ---- small helpers over JSON objects ----

pub(crate) fn gvr_pods() -> Gvr {
    Gvr::new("", "v1", "pods")
}
pub(crate) fn gvr_nodes() -> Gvr {
    Gvr::new("", "v1", "nodes")
}

pub(crate) fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}
pub(crate) fn ns_of(v: &Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or_default()
}
pub(crate) fn uid_of(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or_default()
}
pub(crate) fn deleting(v: &Value) -> bool {
    v["metadata"].get("deletionTimestamp").is_some()
}

/// Whether `v` names `owner_uid` as its controller.
pub(crate) fn controlled_by(v: &Value, owner_uid: &str) -> bool {
    v["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"].as_str() == Some(owner_uid) && r["controller"].as_bool() == Some(true))
}

pub(crate) fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name_of(owner),
        "uid": uid_of(owner), "controller": true, "blockOwnerDeletion": true})
}

/// The status of condition `ty`, if present.
pub(crate) fn condition_status<'a>(obj: &'a Value, ty: &str) -> Option<&'a str> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(ty))?["status"]
        .as_str()
}

/// Set a condition in `conds`, keeping `lastTransitionTime` when the status is unchanged.
pub(crate) fn set_condition(
    conds: &mut Vec<Value>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
    extra_times: &[&str],
) {
    let old = conds.iter().position(|c| c["type"] == json!(ty));
    let mut c = json!({"type": ty, "status": status});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    let keep = old.filter(|&i| conds[i]["status"] == json!(status));
    for field in std::iter::once("lastTransitionTime").chain(extra_times.iter().copied()) {
        c[field] = match keep {
            Some(i) if conds[i].get(field).is_some() => conds[i][field].clone(),
            _ => json!(now),
        };
    }
    match old {
        Some(i) => conds[i] = c,
        None => conds.push(c),
    }
}

/// Write `status` to an object's status subresource if it differs.
pub(crate) fn write_status(store: &mut Store, gvr: &Gvr, obj: &Value, status: Value) {
    if obj.get("status") == Some(&status) {
        return;
    }
    let mut new = obj.clone();
    new["status"] = status;
    if let Err(e) = store.update(gvr, ns_of(obj), name_of(obj), new, Sub::Status, false) {
        tracing::warn!(
            "kube twin: cannot update {} {}/{} status: {e}",
            gvr.plural,
            ns_of(obj),
            name_of(obj)
        );
    }
}

/// Write a changed object (main resource) back.
pub(crate) fn write(store: &mut Store, gvr: &Gvr, new: Value) {
    let (ns, name) = (ns_of(&new).to_string(), name_of(&new).to_string());
    if let Err(e) = store.update(gvr, &ns, &name, new, Sub::Main, false) {
        tracing::warn!("kube twin: cannot update {} {ns}/{name}: {e}", gvr.plural);
    }
}

/// Delete an object, logging failures.
pub(crate) fn remove(store: &mut Store, gvr: &Gvr, obj: &Value, why: &str) {
    tracing::info!(
        "kube twin: deleting {} {}/{} ({why})",
        gvr.plural,
        ns_of(obj),
        name_of(obj)
    );
    if let Err(e) = store.delete(gvr, ns_of(obj), name_of(obj), &Default::default(), false) {
        tracing::warn!("kube twin: cannot delete {}: {e}", name_of(obj));
    }
}

/// Kubernetes toleration matching (`Toleration.ToleratesTaint`).
pub(crate) fn tolerates(t: &Value, taint: &Value) -> bool {
    let effect = t["effect"].as_str().unwrap_or_default();
    if !effect.is_empty() && taint["effect"].as_str() != Some(effect) {
        return false;
    }
    let key = t["key"].as_str().unwrap_or_default();
    let op = t["operator"].as_str().unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if taint["key"].as_str() != Some(key) {
        return false;
    }
    match op {
        "Exists" => true,
        _ => t["value"].as_str().unwrap_or_default() == taint["value"].as_str().unwrap_or_default(),
    }
}

/// Whether every taint of `node` with one of `effects` is tolerated.
pub(crate) fn tolerates_taints(tolerations: &[Value], node: &Value, effects: &[&str]) -> bool {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| effects.iter().any(|e| t["effect"].as_str() == Some(*e)))
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toleration_semantics() {
        let taint = json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"});
        assert!(tolerates(&json!({"operator": "Exists"}), &taint));
        assert!(tolerates(
            &json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists"}),
            &taint
        ));
        assert!(!tolerates(
            &json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}),
            &taint
        ));
        assert!(!tolerates(
            &json!({"key": "other", "operator": "Exists"}),
            &taint
        ));
    }

    #[test]
    fn conditions_keep_transition_time() {
        let mut c = vec![];
        set_condition(&mut c, "Ready", "False", "R", "", "t1", &[]);
        set_condition(&mut c, "Ready", "False", "R2", "", "t2", &[]);
        assert_eq!(c[0]["lastTransitionTime"], json!("t1"));
        set_condition(&mut c, "Ready", "True", "R", "", "t3", &[]);
        assert_eq!(c[0]["lastTransitionTime"], json!("t3"));
    }
}

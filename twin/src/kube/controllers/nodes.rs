//! Nodes: the kubelet's side (registration, Lease renewal in `kube-node-lease`, the Ready
//! condition it posts) and the node lifecycle controller's side (Ready `Unknown` once the
//! Lease is older than the grace period, the `not-ready`/`unreachable` taints).
//!
//! Shapes follow a Talos node: `node-role.kubernetes.io/control-plane` label and
//! `NoSchedule` taint on control planes, kubelet v1.34.2, containerd, the kubelet's
//! `KubeletNotReady` message while no CNI config exists.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::super::defaults::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use super::super::status::ApiError;
use super::super::store::{Store, Sub, now_micro, now_time};
use super::super::types::Gvr;
use super::{
    Clock, Sim, Wake, condition_status, gvr_nodes, name_of, set_condition, write, write_status,
};
use crate::kube::{Transition, TransitionKind};

pub(crate) const KUBELET_VERSION: &str = "v1.34.2";
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
const NETWORK_NOT_READY: &str = "container runtime network not ready: NetworkReady=false \
    reason:NetworkPluginNotReady message:Network plugin returns error: network plugin is not \
    ready: cni config uninitialized";
const STOPPED_POSTING: &str = "Kubelet stopped posting node status.";
/// The kubelet's node shutdown manager makes the runtime state not ready
/// (`pkg/kubelet/nodeshutdown` `ShutdownStatus`).
const SHUTTING_DOWN: &str = "node is shutting down";

/// One emulated machine running a kubelet.
#[derive(Clone, Debug)]
pub(crate) struct NodeSim {
    pub alive: bool,
    pub cni_ready: bool,
    pub system_uuid: String,
    pub control_plane: bool,
    pub index: u32,
    pub joined_at: Instant,
    pub last_renew: Option<Instant>,
    /// Counts the machine's boots: a kubelet that comes back after its VM stopped runs in a
    /// new boot, and the containers of the old one are gone.
    pub boot: u64,
    /// When the kubelet last died (the finish time its containers get after a reboot).
    pub died_at: Option<String>,
    /// After a boot: pod networking waits until the node's Cilium agent pod is ready again
    /// (cleared by the kubelet once it posts that pod Ready in this boot, or at once when
    /// the node has no agent pod).
    pub agent_wait: bool,
    /// What the kubelet last posted: the node's resourceVersion after the write, the health
    /// and the boot. A pass in which all three are unchanged has nothing to post.
    pub posted: Option<(String, Health, u64)>,
    /// The kubelet's graceful node shutdown has begun: the node reports NotReady.
    pub shutting_down: bool,
    /// The kubelet never finds the CNI configuration (`node-never-recovers`).
    pub cni_broken: bool,
}

impl NodeSim {
    /// The node's InternalIP.
    pub fn ip(&self) -> String {
        format!("10.5.{}.{}", self.index / 250, self.index % 250 + 2)
    }

    /// The pod CIDR's first three octets: a /24 per node, the cluster's pods in 10.244.0.0/14
    /// and up (node index 256 gets 10.245.0.0/24), so no two nodes share a CIDR however large
    /// the twin.
    pub fn pod_prefix(&self) -> String {
        let n = (244 << 8) + self.index;
        format!("10.{}.{}", (n >> 8) & 255, n & 255)
    }

    /// Whether the node's Lease is within the grace period.
    pub fn fresh(&self, clock: Clock) -> bool {
        clock.now < self.last_renew.unwrap_or(self.joined_at) + clock.dur(clock.t.grace)
    }

    /// Whether the kubelet runs and its heartbeats are current.
    pub fn posting(&self, clock: Clock) -> bool {
        self.alive && self.fresh(clock)
    }

    /// The node's `bootID` (changes with every boot, as the kernel's random boot id does).
    pub fn boot_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(format!("{}/{}", self.system_uuid, self.boot).as_bytes());
        let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &x[0..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..32]
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Health {
    Ready,
    NotReady,
    ShuttingDown,
    Unknown,
}

fn lease_gvr() -> Gvr {
    Gvr::new("coordination.k8s.io", "v1", "leases")
}

/// Register (or re-register) a node: the Node object, NotReady until the CNI is ready.
pub(crate) fn join_node(
    store: &mut Store,
    sim: &mut Sim,
    name: &str,
    labels: &BTreeMap<String, String>,
    system_uuid: &str,
    control_plane: bool,
) -> Result<(), ApiError> {
    let now = Instant::now();
    let index = match sim.nodes.get(name) {
        Some(n) => n.index,
        None => {
            sim.next_node_index += 1;
            sim.next_node_index
        }
    };
    let old = sim.nodes.get(name);
    let cni_ready = old.is_some_and(|n| n.cni_ready);
    let node = NodeSim {
        alive: true,
        cni_ready,
        system_uuid: system_uuid.into(),
        control_plane,
        index,
        joined_at: now,
        last_renew: None,
        boot: old.map_or(1, |n| n.boot),
        died_at: old.and_then(|n| n.died_at.clone()),
        agent_wait: false,
        posted: None,
        shutting_down: false,
        cni_broken: old.is_some_and(|n| n.cni_broken),
    };
    let mut all = labels.clone();
    all.insert("kubernetes.io/hostname".into(), name.into());
    for (k, v) in [
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ] {
        all.entry(k.into()).or_insert_with(|| v.into());
    }
    if control_plane {
        all.insert(CONTROL_PLANE_LABEL.into(), String::new());
    }
    let g = gvr_nodes();
    match store.get(&g, "", name) {
        None => {
            store.create(&g, "", node_object(name, &all, &node), false)?;
        }
        Some(existing) => {
            let mut obj = (*existing).clone();
            for (k, v) in &all {
                obj["metadata"]["labels"][k] = json!(v);
            }
            let obj = store.update(&g, "", name, obj, Sub::Main, false)?;
            let mut obj = (*obj).clone();
            obj["status"]["nodeInfo"]["systemUUID"] = json!(system_uuid);
            store.update(&g, "", name, obj, Sub::Status, false)?;
        }
    }
    sim.nodes.insert(name.into(), node);
    Ok(())
}

fn node_object(name: &str, labels: &BTreeMap<String, String>, n: &NodeSim) -> Value {
    let now = now_time();
    let mut taints = vec![json!({"key": TAINT_NOT_READY, "effect": "NoSchedule"})];
    if n.control_plane {
        taints.insert(
            0,
            json!({"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}),
        );
    }
    let cidr = format!("{}.0/24", n.pod_prefix());
    let resources = json!({"cpu": "4", "memory": "8131588Ki", "pods": "110",
        "ephemeral-storage": "40973032Ki", "hugepages-2Mi": "0"});
    let mut conditions = Vec::new();
    pressure_conditions(&mut conditions, false, &now);
    set_condition(
        &mut conditions,
        "Ready",
        "False",
        "KubeletNotReady",
        NETWORK_NOT_READY,
        &now,
        &["lastHeartbeatTime"],
    );
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "taints": taints},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": n.ip()}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:0>32}", n.index),
                "systemUUID": n.system_uuid,
                "bootID": n.boot_id(),
                "kernelVersion": "6.12.57-talos",
                "osImage": "Talos (v1.11.5)",
                "containerRuntimeVersion": "containerd://2.1.5",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

fn pressure_conditions(conds: &mut Vec<Value>, unknown: bool, now: &str) {
    for (ty, reason, msg) in [
        (
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    ] {
        if unknown {
            set_condition(
                conds,
                ty,
                "Unknown",
                "NodeStatusUnknown",
                STOPPED_POSTING,
                now,
                &["lastHeartbeatTime"],
            );
        } else {
            set_condition(conds, ty, "False", reason, msg, now, &["lastHeartbeatTime"]);
        }
    }
}

/// Renew the node's Lease (create it if missing), as the kubelet does.
fn renew_lease(store: &mut Store, node: &Value, lease_duration: f64) {
    let g = lease_gvr();
    let name = name_of(node);
    let result = match store.get(&g, "kube-node-lease", name) {
        Some(l) => {
            let mut l = (*l).clone();
            l["spec"]["renewTime"] = json!(now_micro());
            l["spec"]["holderIdentity"] = json!(name);
            store.update(&g, "kube-node-lease", name, l, Sub::Main, false)
        }
        None => store.create(
            &g,
            "kube-node-lease",
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                        "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": lease_duration as i64,
                    "renewTime": now_micro()},
            }),
            false,
        ),
    };
    if let Err(e) = result {
        tracing::warn!("kube twin: cannot renew the lease of {name}: {e}");
    }
}

/// The kubelets and the node lifecycle controller, for every joined node.
pub(crate) fn kubelets_and_lifecycle(
    store: &mut Store,
    sim: &mut Sim,
    clock: Clock,
    wake: &mut Wake,
) {
    let g = gvr_nodes();
    let names: Vec<String> = sim.nodes.keys().cloned().collect();
    for name in names {
        let Some(node) = store.get(&g, "", &name) else {
            continue;
        };
        let Some(n) = sim.nodes.get_mut(&name) else {
            continue;
        };
        if n.alive {
            // A Lease at least half-way through its renewal interval is renewed in any pass
            // that runs anyway: renewals gather into a few passes per interval instead of one
            // pass per node (each pass is work over every object).
            let due = n
                .last_renew
                .is_none_or(|t| clock.now >= t + clock.dur(clock.t.renew / 2.0));
            if due {
                renew_lease(store, &node, clock.t.lease_duration);
                n.last_renew = Some(clock.now);
            }
            if let Some(t) = n.last_renew {
                wake.at(t + clock.dur(clock.t.renew));
            }
        }
        let fresh = n.fresh(clock);
        if fresh {
            wake.at(n.last_renew.unwrap_or(n.joined_at) + clock.dur(clock.t.grace));
        }
        let network = n.cni_ready
            && !n.agent_wait
            && !n.cni_broken
            && sim.never_ready.as_deref() != Some(name.as_str());
        let shutting_down = n.shutting_down;
        let health = match (fresh, n.alive) {
            (false, _) => Health::Unknown,
            (true, true) if shutting_down => Health::ShuttingDown,
            (true, true) if network => Health::Ready,
            (true, true) => Health::NotReady,
            // The kubelet died but the grace period has not run out: nothing changes yet.
            (true, false) => continue,
        };
        let memo = (
            node["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            health,
            n.boot,
        );
        if n.posted.as_ref() == Some(&memo) {
            continue;
        }
        let boot = n.boot;
        let boot_id = n.boot_id();
        let before = condition_status(&node, "Ready").map(str::to_string);
        post_conditions(store, &node, health, &boot_id);
        let after = store
            .get(&g, "", &name)
            .and_then(|n| condition_status(&n, "Ready").map(str::to_string));
        if let Some(to) = after.filter(|a| before.as_ref() != Some(a)) {
            sim.transitions
                .push(Transition::now(TransitionKind::Node, &name, &name, &to));
        }
        if let Some(node) = store.get(&g, "", &name) {
            set_taints(&node, health, store);
        }
        let rv = store.get(&g, "", &name).map(|n| {
            n["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        if let (Some(rv), Some(n)) = (rv, sim.nodes.get_mut(&name)) {
            n.posted = Some((rv, health, boot));
        }
    }
}

fn post_conditions(store: &mut Store, node: &Value, health: Health, boot_id: &str) {
    let now = now_time();
    let mut status = node["status"].clone();
    if health != Health::Unknown {
        status["nodeInfo"]["bootID"] = json!(boot_id);
    }
    let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
    pressure_conditions(&mut conds, health == Health::Unknown, &now);
    let (st, reason, msg) = match health {
        Health::Ready => ("True", "KubeletReady", "kubelet is posting ready status"),
        Health::NotReady => ("False", "KubeletNotReady", NETWORK_NOT_READY),
        Health::ShuttingDown => ("False", "KubeletNotReady", SHUTTING_DOWN),
        Health::Unknown => ("Unknown", "NodeStatusUnknown", STOPPED_POSTING),
    };
    set_condition(
        &mut conds,
        "Ready",
        st,
        reason,
        msg,
        &now,
        &["lastHeartbeatTime"],
    );
    status["conditions"] = json!(conds);
    write_status(store, &gvr_nodes(), node, status);
}

fn set_taints(node: &Value, health: Health, store: &mut Store) {
    let existing: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let managed =
        |t: &Value| t["key"] == json!(TAINT_UNREACHABLE) || t["key"] == json!(TAINT_NOT_READY);
    let mut taints: Vec<Value> = existing.iter().filter(|t| !managed(t)).cloned().collect();
    let key = match health {
        Health::Ready => None,
        Health::NotReady | Health::ShuttingDown => Some(TAINT_NOT_READY),
        Health::Unknown => Some(TAINT_UNREACHABLE),
    };
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            let old = existing
                .iter()
                .find(|t| t["key"] == json!(key) && t["effect"] == json!(effect));
            taints.push(match old {
                Some(t) => t.clone(),
                None if effect == "NoExecute" => {
                    json!({"key": key, "effect": effect, "timeAdded": now_time()})
                }
                None => json!({"key": key, "effect": effect}),
            });
        }
    }
    if taints != existing {
        let mut new = node.clone();
        if taints.is_empty() {
            if let Value::Object(m) = &mut new["spec"] {
                m.remove("taints");
            }
        } else {
            new["spec"]["taints"] = json!(taints);
        }
        write(store, &gvr_nodes(), new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_stay_distinct_beyond_256_nodes() {
        let prefix = |index| {
            NodeSim {
                alive: true,
                cni_ready: true,
                system_uuid: String::new(),
                control_plane: false,
                index,
                joined_at: Instant::now(),
                last_renew: None,
                boot: 1,
                died_at: None,
                agent_wait: false,
                posted: None,
                shutting_down: false,
                cni_broken: false,
            }
            .pod_prefix()
        };
        assert_eq!(prefix(1), "10.244.1");
        assert_eq!(prefix(255), "10.244.255");
        assert_eq!(prefix(256), "10.245.0");
        assert_eq!(prefix(501), "10.245.245");
        let all: std::collections::BTreeSet<String> = (0..1000).map(prefix).collect();
        assert_eq!(all.len(), 1000);
    }
}

//! The world inside the Kubernetes twin, as `kubectl get pods -n kube-system -o wide` sees a
//! Talos cluster with CNI none and kube-proxy disabled: the mirror pods of the static control
//! plane on each control-plane node (no etcd pod, no kube-proxy), CoreDNS Pending until a
//! node's CNI runs, Cilium's pods as its chart installs them; container statuses; the
//! kubelet's CrashLoopBackOff; the `node-never-ready` fault. Observed with the real kube-rs
//! client over HTTPS.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, DeleteParams, WatchEvent, WatchParams};
use support::*;
use twin::kube::KubeFault;

fn annotations(p: &Pod) -> BTreeMap<String, String> {
    p.metadata.annotations.clone().unwrap_or_default()
}

async fn install_cilium(t: &twin::kube::KubeTwin, values: &BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, t.kubeconfig_yaml("talos-prod-01", "clusterproof")).unwrap();
    let k = harness::kube::KubeClient::from_kubeconfig(&kc)
        .await
        .unwrap();
    for obj in twin::cilium::render(values).unwrap() {
        k.apply(&obj, "cilium-cli").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_system_is_a_talos_cluster_with_cilium() {
    let t = start(0.01).await;
    let c = client(&t).await;
    let cps = ["cp-1", "cp-2", "cp-3"];
    for n in cps {
        join(&t, n, true);
    }
    for n in ["w-1", "w-2"] {
        join(&t, n, false);
    }
    let nodes: Api<Node> = Api::all(c.clone());

    // Before the CNI: the static pods' mirror pods run (host network), CoreDNS is Pending.
    let mirrors = eventually("9 mirror pods running", || async {
        let l = pods(&c, "kube-system", "tier=control-plane").await;
        (l.len() == 9
            && l.iter()
                .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
        .then_some(l)
    })
    .await;
    let names: BTreeSet<String> = mirrors
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    for n in cps {
        for component in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            assert!(names.contains(&format!("{component}-{n}")), "{names:?}");
        }
    }
    for p in &mirrors {
        let a = annotations(p);
        assert_eq!(a["kubernetes.io/config.source"], "file");
        assert_eq!(
            a["kubernetes.io/config.mirror"],
            a["kubernetes.io/config.hash"]
        );
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), Some(owner.name.as_str())),
            ("Node", p.spec.as_ref().unwrap().node_name.as_deref())
        );
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(
            spec.priority_class_name.as_deref(),
            Some("system-cluster-critical")
        );
        assert_eq!(spec.priority, Some(2_000_000_000));
        // Host network: the pod IP is the node's.
        let node = nodes.get(&node_of(p)).await.unwrap();
        let node_ip = &node.status.unwrap().addresses.unwrap()[0].address;
        assert_eq!(p.status.as_ref().unwrap().pod_ip.as_ref(), Some(node_ip));
    }
    let all = pods(&c, "kube-system", "").await;
    assert!(all.iter().all(|p| {
        let n = p.metadata.name.as_deref().unwrap();
        !n.starts_with("etcd") && !n.starts_with("kube-proxy")
    }));
    let coredns = eventually("2 CoreDNS pods, unschedulable", || async {
        let l = pods(&c, "kube-system", "k8s-app=kube-dns").await;
        let unschedulable = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
        };
        (l.len() == 2 && l.iter().all(unschedulable)).then_some(l)
    })
    .await;
    let msg = coredns[0]
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()[0]
        .message
        .clone()
        .unwrap();
    assert!(
        msg.contains("untolerated taint {node.kubernetes.io/not-ready: }"),
        "{msg}"
    );
    assert_eq!(
        coredns[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    let svcs: Api<Service> = Api::namespaced(c.clone(), "kube-system");
    let dns = svcs.get("kube-dns").await.unwrap().spec.unwrap();
    assert_eq!(dns.cluster_ip.as_deref(), Some("10.96.0.10"));
    let ports: Vec<(i32, String)> = dns
        .ports
        .unwrap()
        .iter()
        .map(|p| (p.port, p.protocol.clone().unwrap()))
        .collect();
    assert_eq!(
        ports,
        [(53, "UDP".into()), (53, "TCP".into()), (9153, "TCP".into())]
    );
    let kubernetes = Api::<Service>::namespaced(c.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    assert_eq!(
        kubernetes.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.1")
    );

    // Cilium as its chart installs it; the CNI physics is the test's: every agent's node.
    install_cilium(&t, &harness::model::lab::default_cilium_values()).await;
    let agents = eventually("5 cilium agents", || async {
        let l = pods(&c, "kube-system", "k8s-app=cilium").await;
        (l.len() == 5).then_some(l)
    })
    .await;
    for a in &agents {
        t.set_cni_ready(&node_of(a), true).unwrap();
    }
    eventually("5 nodes Ready", || async {
        let l = nodes.list(&Default::default()).await.unwrap().items;
        l.iter()
            .all(|n| node_ready(n).as_deref() == Some("True"))
            .then_some(())
    })
    .await;
    let envoys = eventually("5 envoys", || async {
        let l = pods(&c, "kube-system", "k8s-app=cilium-envoy").await;
        (l.len() == 5 && l.iter().all(ready)).then_some(l)
    })
    .await;
    assert_eq!(envoys.iter().map(node_of).collect::<BTreeSet<_>>().len(), 5);
    let operators = eventually("2 operators ready", || async {
        let l = pods(&c, "kube-system", "io.cilium/app=operator").await;
        (l.len() == 2 && l.iter().all(ready)).then_some(l)
    })
    .await;
    assert_ne!(
        node_of(&operators[0]),
        node_of(&operators[1]),
        "anti-affinity: one per node"
    );
    let coredns = eventually("CoreDNS running", || async {
        let l = pods(&c, "kube-system", "k8s-app=kube-dns").await;
        (l.len() == 2 && l.iter().all(ready)).then_some(l)
    })
    .await;
    for p in &coredns {
        let node = nodes.get(&node_of(p)).await.unwrap();
        let cidr = node.spec.unwrap().pod_cidr.unwrap();
        let prefix = cidr.trim_end_matches("0/24");
        let s = p.status.as_ref().unwrap();
        assert!(pod_ip(p).starts_with(prefix), "{} in {cidr}", pod_ip(p));
        assert_eq!(
            s.host_ip.as_ref(),
            Some(&node.status.unwrap().addresses.unwrap()[0].address)
        );
        assert_eq!(s.qos_class.as_deref(), Some("Burstable"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.image, "registry.k8s.io/coredns/coredns:v1.12.1");
        assert!(
            cs.image_id
                .starts_with("registry.k8s.io/coredns/coredns@sha256:"),
            "{}",
            cs.image_id
        );
        let id = cs.container_id.as_deref().unwrap();
        assert!(
            id.starts_with("containerd://") && id.len() == "containerd://".len() + 64,
            "{id}"
        );
        assert_eq!(
            (cs.ready, cs.started, cs.restart_count),
            (true, Some(true), 0)
        );
        assert!(
            cs.state
                .as_ref()
                .unwrap()
                .running
                .as_ref()
                .unwrap()
                .started_at
                .is_some()
        );
        let kinds: Vec<&str> = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        for k in [
            "PodScheduled",
            "Initialized",
            "ContainersReady",
            "Ready",
            "PodReadyToStartContainers",
        ] {
            assert!(kinds.contains(&k), "{kinds:?}");
        }
        assert!(
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .all(|c| c.last_transition_time.is_some())
        );
    }
    // The agent's init containers completed.
    let init = agents[0].clone();
    let init = Api::<Pod>::namespaced(c.clone(), "kube-system")
        .get(init.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    let inits = init.status.unwrap().init_container_statuses.unwrap();
    assert!(!inits.is_empty());
    assert!(inits.iter().all(|i| {
        i.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .is_some_and(|t| t.reason.as_deref() == Some("Completed"))
    }));

    // A deleted mirror pod comes back: the kubelet recreates it.
    let kpods: Api<Pod> = Api::namespaced(c.clone(), "kube-system");
    let old_uid = kpods.get("kube-apiserver-cp-1").await.unwrap().metadata.uid;
    kpods
        .delete("kube-apiserver-cp-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("mirror pod recreated", || async {
        let p = kpods.get_opt("kube-apiserver-cp-1").await.unwrap()?;
        (p.metadata.uid != old_uid).then_some(())
    })
    .await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_replicas_are_honoured_one_per_node() {
    let t = start(0.01).await;
    let c = client(&t).await;
    join_ready(&t, &[("w-1", false), ("w-2", false)]);
    let values = BTreeMap::from([("operator.replicas".to_string(), "3".to_string())]);
    install_cilium(&t, &values).await;
    let ops = eventually("2 of 3 operators placed", || async {
        let l = pods(&c, "kube-system", "io.cilium/app=operator").await;
        (l.len() == 3 && l.iter().filter(|p| ready(p)).count() == 2).then_some(l)
    })
    .await;
    let pending = ops.iter().find(|p| !ready(p)).unwrap();
    let cond = &pending
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()[0];
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert!(
        cond.message
            .as_deref()
            .unwrap()
            .contains("didn't match pod anti-affinity rules"),
        "{cond:?}"
    );
    t.shutdown().await;
}

/// One CoreDNS replica crash-loops: terminated (Error, exit 1), then CrashLoopBackOff with
/// windows growing 10s → 20s → 40s → 1m20s, restarts counting up, the last termination kept.
/// At this time scale the kubelet's minute and a half takes under a second. (The exact
/// timing, with the brief `terminated` state before each back-off, is the stepped-clock unit
/// test in `controllers/runtime.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashlooping_pod_backs_off_like_the_kubelet() {
    let t = start(0.01).await;
    let c = client(&t).await;
    t.set_fault(KubeFault::CrashLoopPod, true);
    let api: Api<Pod> = Api::namespaced(c.clone(), "kube-system");
    let mut events = api
        .watch(&WatchParams::default().labels("k8s-app=kube-dns"), "0")
        .await
        .unwrap()
        .boxed();
    join_ready(&t, &[("cp-1", true), ("w-1", false)]);
    let mut seen: Vec<(i32, String)> = Vec::new();
    let mut victim = None;
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = events.try_next().await.unwrap() {
            let (WatchEvent::Added(p) | WatchEvent::Modified(p)) = ev else {
                continue;
            };
            let Some(cs) = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|v| v.first().cloned())
            else {
                continue;
            };
            let state = cs.state.clone().unwrap_or_default();
            let what = if let Some(tm) = &state.terminated {
                format!(
                    "terminated {} {}",
                    tm.reason.clone().unwrap_or_default(),
                    tm.exit_code
                )
            } else if let Some(w) = &state.waiting {
                format!(
                    "waiting {} {}",
                    w.reason.clone().unwrap_or_default(),
                    w.message.clone().unwrap_or_default()
                )
            } else {
                "running".to_string()
            };
            if what != "running" {
                victim = p.metadata.name.clone();
            }
            if victim.is_some() && victim != p.metadata.name {
                continue;
            }
            if cs.restart_count > 0 {
                let last = cs
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .expect("lastState kept");
                assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
            }
            if seen.last().map(|(r, w)| (r, w)) != Some((&cs.restart_count, &what)) {
                seen.push((cs.restart_count, what.clone()));
            }
            if what.contains("back-off 1m20s") {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no back-off of 1m20s; saw {seen:?}"));
    let victim = victim.unwrap();
    assert_eq!(
        t.fault_targets().crash_pod.as_deref(),
        Some(victim.as_str())
    );
    // Order and growth: the windows double, restarts grow.
    let windows: Vec<&str> = seen
        .iter()
        .filter_map(|(_, w)| w.strip_prefix("waiting CrashLoopBackOff back-off "))
        .map(|m| m.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(windows, ["10s", "20s", "40s", "1m20s"], "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "restarts never go down: {seen:?}"
    );
    assert_eq!(seen.last().unwrap().0, 4, "{seen:?}");
    let msg = &seen.last().unwrap().1;
    assert!(
        msg.contains(&format!(
            "restarting failed container=coredns pod={victim}_kube-system("
        )),
        "{msg}"
    );
    // The other replica is fine, and CoreDNS stays available (maxUnavailable 1).
    let others: Vec<Pod> = pods(&c, "kube-system", "k8s-app=kube-dns")
        .await
        .into_iter()
        .filter(|p| p.metadata.name.as_deref() != Some(victim.as_str()))
        .collect();
    assert_eq!(others.len(), 1);
    assert_eq!(
        others[0]
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .restart_count,
        0
    );
    let d = Api::<Deployment>::namespaced(c.clone(), "kube-system")
        .get("coredns")
        .await
        .unwrap();
    let available = d
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_never_ready_keeps_one_worker_not_ready() {
    let t = start(0.01).await;
    let c = client(&t).await;
    t.set_fault(KubeFault::NodeNeverReady, true);
    join_ready(&t, &[("cp-1", true), ("w-1", false), ("w-2", false)]);
    let nodes: Api<Node> = Api::all(c.clone());
    eventually("cp-1 and w-2 Ready", || async {
        let ok = |n: &str| {
            let nodes = nodes.clone();
            let n = n.to_string();
            async move { node_ready(&nodes.get(&n).await.unwrap()).as_deref() == Some("True") }
        };
        (ok("cp-1").await && ok("w-2").await).then_some(())
    })
    .await;
    let w1 = nodes.get("w-1").await.unwrap();
    let cond = w1
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("KubeletNotReady"))
    );
    assert!(cond.message.unwrap().contains("cni config uninitialized"));
    let taints: Vec<String> = w1
        .spec
        .unwrap()
        .taints
        .unwrap()
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    assert!(
        taints.contains(&"node.kubernetes.io/not-ready:NoSchedule".to_string()),
        "{taints:?}"
    );
    assert_eq!(t.fault_targets().never_ready_node.as_deref(), Some("w-1"));
    // Switched off, the node turns Ready.
    t.set_fault(KubeFault::NodeNeverReady, false);
    eventually("w-1 Ready once the fault is off", || async {
        (node_ready(&nodes.get("w-1").await.unwrap()).as_deref() == Some("True")).then_some(())
    })
    .await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_restarts_the_containers_with_a_new_sandbox() {
    let t = start(0.01).await;
    let c = client(&t).await;
    join_ready(&t, &[("w-1", false)]);
    netexec_pod(&c, "web-0", "w-1", "web").await;
    let before = running(&c, "web", 1).await.remove(0);
    t.set_kubelet_alive("w-1", false).unwrap();
    t.set_kubelet_alive("w-1", true).unwrap();
    let after = eventually("restarted after the reboot", || async {
        let p = pods(&c, "default", "app=web").await.pop()?;
        let cs = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        (cs.restart_count == 1 && ready(&p)).then_some((p, cs))
    })
    .await;
    let last = after.1.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (255, Some("Unknown"))
    );
    assert_ne!(
        pod_ip(&after.0),
        pod_ip(&before),
        "a new sandbox, a new pod IP"
    );
    assert_ne!(
        after.1.container_id,
        before.status.unwrap().container_statuses.unwrap()[0].container_id
    );
    t.shutdown().await;
}

//! What Talos puts into a cluster's `kube-system` (a cluster whose template sets CNI `none` and
//! disables kube-proxy, as the seed's does):
//!
//! - the bootstrap manifests its control plane applies once the API server is up, minus the
//!   CNI and kube-proxy: CoreDNS — ServiceAccount and ConfigMap `coredns`, Deployment
//!   `coredns` (2 replicas, `k8s-app=kube-dns`, tolerating the control-plane taint but not
//!   `not-ready`, so Pending until some node's CNI runs) and Service `kube-dns` on
//!   `10.96.0.10` (53/UDP, 53/TCP, 9153). Source: siderolabs/talos
//!   `internal/app/machined/pkg/controllers/k8s/internal/k8stemplates/testdata/coredns-*.yaml`,
//!   image `registry.k8s.io/coredns/coredns:v1.12.1` (`pkg/machinery/constants`
//!   `DefaultCoreDNSVersion`).
//! - on every control-plane node, the kubelet's mirror pods of the static pods Talos writes
//!   (`kube-apiserver`, `kube-controller-manager`, `kube-scheduler`; labels, host network and
//!   `system-cluster-critical` from `k8stemplates/testdata/{apiserver-minimal,
//!   controller-manager,scheduler}.yaml`), named `<pod>-<node>` with the kubelet's
//!   `kubernetes.io/config.{hash,mirror,seen,source}` annotations and the Node as controller
//!   owner. etcd is a Talos service, not a pod, so there is no `etcd-<node>`; there is no
//!   kube-proxy either.
//!
//! The kubelet recreates a mirror pod that is deleted while its node lives; deleting the Node
//! collects them (owner gone).

use serde_json::{Value, json};

use super::super::store::{Store, now_micro};
use super::super::types::Gvr;
use super::nodes::KUBELET_VERSION;
use super::{Sim, gvr_nodes, gvr_pods, uid_of};

pub(crate) const COREDNS_IMAGE: &str = "registry.k8s.io/coredns/coredns:v1.12.1";
/// The cluster DNS address Talos gives CoreDNS (the 10th address of the service CIDR).
pub(crate) const DNS_SERVICE_IP: &str = "10.96.0.10";

const COREFILE: &str = ".:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    log . {
        class error
    }
    prometheus :9153

    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
";

fn create(store: &mut Store, gvr: Gvr, obj: Value) {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Err(e) = store.create(&gvr, "kube-system", obj, false)
        && e.code != 409
    {
        tracing::warn!(
            "kube twin: cannot create {} kube-system/{name}: {e}",
            gvr.plural
        );
    }
}

/// Apply CoreDNS once the first control plane has joined (its API server is up).
pub(crate) fn bootstrap(store: &mut Store, sim: &mut Sim) {
    if sim.bootstrapped || !sim.nodes.values().any(|n| n.control_plane) {
        return;
    }
    sim.bootstrapped = true;
    let labels = json!({"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"});
    create(
        store,
        Gvr::new("", "v1", "serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "coredns", "namespace": "kube-system"}}),
    );
    create(
        store,
        Gvr::new("", "v1", "configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": COREFILE}}),
    );
    create(
        store,
        Gvr::new("apps", "v1", "deployments"),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                                "topologyKey": "kubernetes.io/hostname"}}]}},
                        "containers": [{
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "env": [{"name": "GOMEMLIMIT", "value": "161MiB"}],
                            "ports": [
                                {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                            "livenessProbe": {"failureThreshold": 5, "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                "initialDelaySeconds": 60, "successThreshold": 1, "timeoutSeconds": 5},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
                            "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": false,
                                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}, "readOnlyRootFilesystem": true},
                            "volumeMounts": [{"mountPath": "/etc/coredns", "name": "config-volume", "readOnly": true}],
                        }],
                        "dnsPolicy": "Default",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "priorityClassName": "system-cluster-critical",
                        "serviceAccountName": "coredns",
                        "tolerations": [
                            {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
                            {"effect": "NoSchedule", "key": "node.cloudprovider.kubernetes.io/uninitialized", "operator": "Exists"}],
                        "volumes": [{"configMap": {"items": [{"key": "Corefile", "path": "Corefile"}], "name": "coredns"}, "name": "config-volume"}],
                    }
                }
            }
        }),
    );
    create(
        store,
        Gvr::new("", "v1", "services"),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
            "spec": {
                "clusterIP": DNS_SERVICE_IP, "clusterIPs": [DNS_SERVICE_IP],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
                "selector": {"k8s-app": "kube-dns"},
            }
        }),
    );
}

/// The static pods Talos writes on a control plane: (name, image, command, container ports).
fn static_pods() -> [(&'static str, String, Vec<&'static str>); 3] {
    let v = KUBELET_VERSION;
    [
        (
            "kube-apiserver",
            format!("registry.k8s.io/kube-apiserver:{v}"),
            vec![
                "/usr/local/bin/kube-apiserver",
                "--etcd-servers=https://127.0.0.1:2379",
                "--secure-port=6443",
            ],
        ),
        (
            "kube-controller-manager",
            format!("registry.k8s.io/kube-controller-manager:{v}"),
            vec![
                "/usr/local/bin/kube-controller-manager",
                "--use-service-account-credentials",
                "--allocate-node-cidrs=true",
            ],
        ),
        (
            "kube-scheduler",
            format!("registry.k8s.io/kube-scheduler:{v}"),
            vec![
                "/usr/local/bin/kube-scheduler",
                "--bind-address=127.0.0.1",
                "--leader-elect=true",
            ],
        ),
    ]
}

fn hash32(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The kubelet of every live control plane keeps a mirror pod for each static pod.
pub(crate) fn mirror_pods(store: &mut Store, sim: &Sim) {
    for (node_name, n) in sim.nodes.iter().filter(|(_, n)| n.control_plane && n.alive) {
        let Some(node) = store.get(&gvr_nodes(), "", node_name) else {
            continue;
        };
        for (component, image, command) in static_pods() {
            let name = format!("{component}-{node_name}");
            if store.get(&gvr_pods(), "kube-system", &name).is_some() {
                continue;
            }
            // The static pod's uid is the hash of its manifest; the mirror pod names it.
            let hash = hash32(&format!(
                "{node_name}/{component}/{image}/{}",
                n.system_uuid
            ));
            let version = KUBELET_VERSION.trim_start_matches('v');
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": name, "namespace": "kube-system",
                    "annotations": {
                        "kubernetes.io/config.hash": hash,
                        "kubernetes.io/config.mirror": hash,
                        "kubernetes.io/config.seen": now_micro(),
                        "kubernetes.io/config.source": "file",
                        "talos.dev/config-version": "1",
                        "talos.dev/secrets-version": "1",
                    },
                    "labels": {
                        "app.kubernetes.io/component": "control-plane",
                        "app.kubernetes.io/managed-by": "Talos",
                        "app.kubernetes.io/name": component,
                        "app.kubernetes.io/version": version,
                        "component": component,
                        "k8s-app": component,
                        "tier": "control-plane",
                    },
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                        "uid": uid_of(&node), "controller": true}],
                },
                "spec": {
                    "nodeName": node_name,
                    "hostNetwork": true,
                    "priorityClassName": "system-cluster-critical",
                    "containers": [{
                        "name": component, "image": image, "command": command,
                        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                        "securityContext": {"allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true,
                            "seccompProfile": {"type": "RuntimeDefault"}},
                    }],
                    "securityContext": {"runAsNonRoot": true},
                    // The kubelet gives file static pods this toleration so that node problems
                    // never evict them (`pkg/kubelet/config/common.go` `applyDefaults`).
                    "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
                },
            });
            if let Err(e) = store.create(&gvr_pods(), "kube-system", pod, false) {
                tracing::warn!("kube twin: cannot create the mirror pod kube-system/{name}: {e}");
            }
        }
    }
}

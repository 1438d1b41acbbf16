//! The twin's `cilium` CLI (run as `clusterproof twin cilium`): what `cilium install` and
//! `cilium status` do to a cluster, done to the cluster its `KUBECONFIG` points at — through
//! the Kubernetes API, like the real CLI (cilium-cli in Helm mode, Cilium 1.18).
//!
//! `install --set key=value…` renders what the Cilium Helm chart
//! (`install/kubernetes/cilium`) installs for these values over its own defaults (the shim's
//! knowledge of the chart: `MTU: 0`, `ipam.mode: cluster-pool`, `kubeProxyReplacement:
//! "false"`, `operator.replicas: 2`, `routingMode: tunnel`, `tunnelProtocol: vxlan`,
//! `envoy.enabled` true, `cgroup.autoMount.enabled` true, the default agent capabilities):
//! ServiceAccounts `cilium`, `cilium-envoy`, `cilium-operator`; ConfigMap `cilium-config`
//! (keys of `templates/cilium-configmap.yaml`; `mtu` only when `MTU` is not 0); DaemonSet
//! `cilium` (`k8s-app=cilium`, agent container `cilium-agent` first, its init containers,
//! host network, every taint tolerated, `system-node-critical`, `KUBERNETES_SERVICE_HOST/
//! PORT` from `k8sServiceHost/Port`, capabilities from `securityContext.capabilities.*`);
//! DaemonSet `cilium-envoy` (`k8s-app=cilium-envoy`); Deployment `cilium-operator`
//! (`io.cilium/app=operator`, `name=cilium-operator`, `operator.replicas`, one per node by
//! required pod anti-affinity, `maxUnavailable: 100%` with one replica); Service
//! `hubble-peer`. Every object carries Helm's release labels.
//!
//! `status [-o json] [--wait [--wait-duration D]] [--ignore-warnings]` collects what
//! cilium-cli's `status/k8s.go` collects, from the Kubernetes objects: the agent and Envoy
//! DaemonSets and the operator Deployment (desired/ready/available, "N pods of DaemonSet X
//! are not ready" errors), Hubble Relay/UI and ClusterMesh (disabled when absent), the pods
//! (phase and image counts, "pod is pending" warnings, "container cilium-agent is in
//! CrashLoopBackOff, exited with code N" errors) and the cluster's pod count; it prints the
//! summary (`status/status.go` `Format`) or `-o json` in that struct's JSON shape
//! (`image_count`, `phase_count`, `pod_state`, `pods_count`, `cilium_status`, `errors`,
//! `collection_errors`, `helm_chart_version`; one-space indent). Exit 1 on collection errors
//! ("status check failed: […]") or when `--wait` times out.
//!
//! The twin's wrapper may put shim options before the command: `--twin-fault=cilium-mtu-
//! autodetect` (install ignores `MTU`, as if auto-detecting) and `--twin-time-scale=F`
//! (`--wait` durations scaled like the rest of the twin).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;
use serde_json::{Value, json};

/// The Cilium version (and chart version) the twin installs.
pub const VERSION: &str = "1.18.4";
const ENVOY_IMAGE: &str = "quay.io/cilium/cilium-envoy:v1.34.10";
const NAMESPACE: &str = "kube-system";

/// The shim's own options (before the command).
#[derive(Debug, Clone, PartialEq)]
struct Shim {
    ignore_mtu: bool,
    time_scale: f64,
}

/// Run the shim with `args` (without the program name). Returns the exit code.
pub async fn main_with(args: Vec<String>) -> i32 {
    harness::proxmox::tls::install_default_provider();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

fn shim_options(args: Vec<String>) -> Result<(Shim, Vec<String>), String> {
    let mut shim = Shim {
        ignore_mtu: false,
        time_scale: 1.0,
    };
    let mut rest = Vec::new();
    for a in args {
        if let Some(f) = a.strip_prefix("--twin-fault=") {
            match f {
                "cilium-mtu-autodetect" => shim.ignore_mtu = true,
                other => return Err(format!("the cilium shim has no fault {other:?}")),
            }
        } else if let Some(s) = a.strip_prefix("--twin-time-scale=") {
            shim.time_scale = s
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("--twin-time-scale={s}: expected a positive number"))?;
        } else {
            rest.push(a);
        }
    }
    Ok((shim, rest))
}

async fn run(args: Vec<String>) -> Result<i32, String> {
    let (shim, args) = shim_options(args)?;
    let Some((cmd, rest)) = args.split_first() else {
        return Err("missing command; usage: cilium install|status|version".into());
    };
    match cmd.as_str() {
        "version" => {
            println!(
                "cilium-cli: v0.18.8 compiled with go1.25.3 on linux/amd64\ncilium image (default): v{VERSION}\ncilium image (stable): v{VERSION}"
            );
            Ok(0)
        }
        "install" => install(rest, &shim).await,
        "status" => status(rest, &shim).await,
        other => Err(format!("unknown command \"{other}\" for \"cilium\"")),
    }
}

async fn client() -> Result<harness::kube::KubeClient, String> {
    let path = std::env::var("KUBECONFIG").map_err(|_| "KUBECONFIG is not set".to_string())?;
    let first = path.split(':').next().unwrap_or(&path).to_string();
    harness::kube::KubeClient::from_kubeconfig(std::path::Path::new(&first))
        .await
        .map_err(|e| e.to_string())
}

/// Parse `--set k=v` pairs (also `--set=k=v`).
pub fn parse_sets(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let kv = if a == "--set" {
            it.next().ok_or("--set needs key=value")?.clone()
        } else if let Some(kv) = a.strip_prefix("--set=") {
            kv.to_string()
        } else if a == "--version" || a == "--namespace" || a == "-n" {
            it.next();
            continue;
        } else if a == "--wait" {
            continue;
        } else {
            return Err(format!("unknown flag: {a}"));
        };
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv}: expected key=value"))?;
        values.insert(k.to_string(), v.to_string());
    }
    Ok(values)
}

/// `{CHOWN,KILL}` → `["CHOWN","KILL"]`.
fn helm_list(v: &str) -> Vec<String> {
    v.trim_matches(['{', '}'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The values of one install: the `--set`s over the chart's defaults.
struct Values<'a>(&'a BTreeMap<String, String>);

impl Values<'_> {
    fn get(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
    fn on(&self, k: &str, default: bool) -> bool {
        self.0.get(k).map_or(default, |v| v == "true")
    }
    fn list(&self, k: &str, default: &[&str]) -> Vec<String> {
        self.0.get(k).map_or_else(
            || default.iter().map(|s| s.to_string()).collect(),
            |v| helm_list(v),
        )
    }
}

/// What `helm install cilium` labels every object with.
fn helm_owned(mut obj: Value) -> Value {
    obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("Helm");
    obj["metadata"]["annotations"]["meta.helm.sh/release-name"] = json!("cilium");
    obj["metadata"]["annotations"]["meta.helm.sh/release-namespace"] = json!(NAMESPACE);
    obj
}

/// The objects `cilium install` creates for these values (every value honoured).
pub fn render(values: &BTreeMap<String, String>) -> Result<Vec<Value>, String> {
    render_chart(values, false)
}

fn render_chart(values: &BTreeMap<String, String>, ignore_mtu: bool) -> Result<Vec<Value>, String> {
    let v = Values(values);
    let kpr = v.get("kubeProxyReplacement", "false");
    if kpr != "true" && kpr != "false" {
        return Err("kubeProxyReplacement must be explicitly set to a valid value (true or false) to continue.".into());
    }
    let replicas: u32 = v.get("operator.replicas", "2").parse().map_err(|_| {
        format!(
            "operator.replicas: {:?} is not a number",
            v.get("operator.replicas", "")
        )
    })?;
    let image = format!("quay.io/cilium/cilium:v{VERSION}");
    let gateway = v.on("gatewayAPI.enabled", false);

    // cilium-config: the chart's keys for these values.
    let mut data = BTreeMap::new();
    let mut put = |k: &str, val: String| {
        data.insert(k.to_string(), val);
    };
    put("identity-allocation-mode", "crd".into());
    put("debug", v.get("debug.enabled", "false"));
    put("enable-ipv4", v.get("ipv4.enabled", "true"));
    put("enable-ipv6", v.get("ipv6.enabled", "false"));
    put("cluster-name", v.get("cluster.name", "default"));
    put("routing-mode", v.get("routingMode", "tunnel"));
    put("tunnel-protocol", v.get("tunnelProtocol", "vxlan"));
    let mtu = if ignore_mtu {
        "0".to_string()
    } else {
        v.get("MTU", "0")
    };
    if mtu != "0" && !mtu.is_empty() {
        put("mtu", mtu);
    }
    put("kube-proxy-replacement", kpr.clone());
    put("ipam", v.get("ipam.mode", "cluster-pool"));
    put("enable-hubble", v.get("hubble.enabled", "true"));
    put("external-envoy-proxy", v.get("envoy.enabled", "true"));
    put("cni-exclusive", "true".into());
    put(
        "write-cni-conf-when-ready",
        "/host/etc/cni/net.d/05-cilium.conflist".into(),
    );
    if gateway {
        let alpn = v.on("gatewayAPI.enableAlpn", false);
        put("enable-envoy-config", "true".into());
        put("enable-gateway-api", "true".into());
        put("enable-gateway-api-secrets-sync", "true".into());
        put(
            "enable-gateway-api-proxy-protocol",
            v.get("gatewayAPI.enableProxyProtocol", "false"),
        );
        put(
            "enable-gateway-api-app-protocol",
            (alpn || v.on("gatewayAPI.enableAppProtocol", false)).to_string(),
        );
        put("enable-gateway-api-alpn", alpn.to_string());
        put("gateway-api-secrets-namespace", "cilium-secrets".into());
    }
    let auto_mount = v.on("cgroup.autoMount.enabled", true);
    put(
        "cgroup-root",
        v.get("cgroup.hostRoot", "/run/cilium/cgroupv2"),
    );

    let mut env = vec![
        json!({"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        json!({"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}),
    ];
    if let Some(h) = values.get("k8sServiceHost") {
        env.push(json!({"name": "KUBERNETES_SERVICE_HOST", "value": h}));
        env.push(
            json!({"name": "KUBERNETES_SERVICE_PORT", "value": v.get("k8sServicePort", "6443")}),
        );
    }
    let agent_caps = v.list(
        "securityContext.capabilities.ciliumAgent",
        &[
            "CHOWN",
            "KILL",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "SYS_MODULE",
            "SYS_ADMIN",
            "SYS_RESOURCE",
            "DAC_OVERRIDE",
            "FOWNER",
            "SETGID",
            "SETUID",
        ],
    );
    let clean_caps = v.list(
        "securityContext.capabilities.cleanCiliumState",
        &["NET_ADMIN", "SYS_MODULE", "SYS_ADMIN", "SYS_RESOURCE"],
    );
    let init = |name: &str, command: Vec<&str>, caps: Vec<String>| {
        json!({"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
            "securityContext": {"capabilities": {"add": caps, "drop": ["ALL"]}},
            "terminationMessagePolicy": "FallbackToLogsOnError"})
    };
    let mut init_containers = vec![init("config", vec!["cilium-dbg", "build-config"], vec![])];
    if auto_mount {
        init_containers.push(init(
            "mount-cgroup",
            vec!["sh", "-ec"],
            vec!["SYS_ADMIN".into(), "SYS_CHROOT".into(), "SYS_PTRACE".into()],
        ));
    }
    init_containers.push(init(
        "apply-sysctl-overwrites",
        vec!["sh", "-ec"],
        vec!["SYS_ADMIN".into(), "SYS_CHROOT".into(), "SYS_PTRACE".into()],
    ));
    init_containers.push(init("mount-bpf-fs", vec!["/bin/bash", "-c", "--"], vec![]));
    init_containers.push(init(
        "clean-cilium-state",
        vec!["/init-container.sh"],
        clean_caps,
    ));
    init_containers.push(init(
        "install-cni-binaries",
        vec!["/install-plugin.sh"],
        vec![],
    ));
    let probe = |failures: i64| {
        json!({"httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": 9879, "scheme": "HTTP",
        "httpHeaders": [{"name": "brief", "value": "true"}]}, "failureThreshold": failures, "periodSeconds": 2, "successThreshold": 1})
    };
    let os_linux = json!({"kubernetes.io/os": "linux"});
    let agent_labels = json!({"k8s-app": "cilium", "app.kubernetes.io/part-of": "cilium", "app.kubernetes.io/name": "cilium-agent"});
    let agent = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "cilium", "namespace": NAMESPACE, "labels": agent_labels},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "cilium"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "cilium-agent"}, "labels": agent_labels},
                "spec": {
                    "containers": [{
                        "name": "cilium-agent", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": ["cilium-agent"], "args": ["--config-dir=/tmp/cilium/config-map"],
                        "env": env,
                        "startupProbe": probe(300), "livenessProbe": probe(10), "readinessProbe": probe(3),
                        "securityContext": {"seLinuxOptions": {"level": "s0", "type": "spc_t"},
                            "capabilities": {"add": agent_caps, "drop": ["ALL"]}},
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "initContainers": init_containers,
                    "restartPolicy": "Always",
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "cilium",
                    "automountServiceAccountToken": true,
                    "terminationGracePeriodSeconds": 1,
                    "hostNetwork": true,
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"k8s-app": "cilium"}}, "topologyKey": "kubernetes.io/hostname"}]}},
                    "nodeSelector": os_linux,
                    "tolerations": [{"operator": "Exists"}],
                }
            }
        }
    });
    let envoy_labels = json!({"k8s-app": "cilium-envoy", "app.kubernetes.io/part-of": "cilium",
        "app.kubernetes.io/name": "cilium-envoy", "name": "cilium-envoy"});
    let envoy = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "cilium-envoy", "namespace": NAMESPACE, "labels": envoy_labels},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "cilium-envoy"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
            "template": {
                "metadata": {"labels": envoy_labels},
                "spec": {
                    "containers": [{
                        "name": "cilium-envoy", "image": ENVOY_IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": ["/usr/bin/cilium-envoy-starter"],
                        "args": ["--", "-c /var/run/cilium/envoy/bootstrap-config.json", "--base-id 0"],
                        "ports": [{"name": "envoy-metrics", "containerPort": 9964, "hostPort": 9964, "protocol": "TCP"}],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "restartPolicy": "Always",
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "cilium-envoy",
                    "automountServiceAccountToken": true,
                    "terminationGracePeriodSeconds": 1,
                    "hostNetwork": true,
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                        "matchExpressions": [{"key": "cilium.io/no-schedule", "operator": "NotIn", "values": ["true"]}]}]}}},
                    "nodeSelector": os_linux,
                    "tolerations": [{"operator": "Exists"}],
                }
            }
        }
    });
    let op_labels = json!({"io.cilium/app": "operator", "name": "cilium-operator",
        "app.kubernetes.io/part-of": "cilium", "app.kubernetes.io/name": "cilium-operator"});
    // With one replica the chart lets an update take the only operator down.
    let max_unavailable = if replicas == 1 {
        json!("100%")
    } else {
        json!("50%")
    };
    let mut op_env = vec![
        json!({"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        json!({"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}),
        json!({"name": "CILIUM_DEBUG", "valueFrom": {"configMapKeyRef": {"key": "debug", "name": "cilium-config", "optional": true}}}),
    ];
    op_env.extend(
        env.iter()
            .filter(|e| {
                e["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("KUBERNETES_"))
            })
            .cloned(),
    );
    let operator = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cilium-operator", "namespace": NAMESPACE, "labels": op_labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"io.cilium/app": "operator", "name": "cilium-operator"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": max_unavailable}},
            "template": {
                "metadata": {"labels": op_labels},
                "spec": {
                    "containers": [{
                        "name": "cilium-operator", "image": format!("quay.io/cilium/operator-generic:v{VERSION}"),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["cilium-operator-generic"],
                        "args": ["--config-dir=/tmp/cilium/config-map", "--debug=$(CILIUM_DEBUG)"],
                        "env": op_env,
                        "livenessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": 9234, "scheme": "HTTP"},
                            "initialDelaySeconds": 60, "periodSeconds": 10, "timeoutSeconds": 3},
                        "readinessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": 9234, "scheme": "HTTP"},
                            "initialDelaySeconds": 0, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 5},
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "hostNetwork": true,
                    "restartPolicy": "Always",
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "cilium-operator",
                    "automountServiceAccountToken": true,
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"io.cilium/app": "operator"}}, "topologyKey": "kubernetes.io/hostname"}]}},
                    "nodeSelector": os_linux,
                    "tolerations": [{"operator": "Exists"}],
                }
            }
        }
    });
    let sa = |name: &str| json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NAMESPACE}});
    let hubble_peer = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "hubble-peer", "namespace": NAMESPACE,
            "labels": {"k8s-app": "cilium", "app.kubernetes.io/part-of": "cilium", "app.kubernetes.io/name": "hubble-peer"}},
        "spec": {"selector": {"k8s-app": "cilium"}, "internalTrafficPolicy": "Local",
            "ports": [{"name": "peer-service", "port": 443, "protocol": "TCP", "targetPort": 4244}]}
    });
    let mut objs = vec![sa("cilium"), sa("cilium-envoy"), sa("cilium-operator")];
    objs.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": NAMESPACE}, "data": data}));
    if v.on("hubble.enabled", true) {
        objs.push(hubble_peer);
    }
    objs.push(agent);
    if v.on("envoy.enabled", true) {
        objs.push(envoy);
    }
    objs.push(operator);
    Ok(objs.into_iter().map(helm_owned).collect())
}

async fn install(args: &[String], shim: &Shim) -> Result<i32, String> {
    let values = parse_sets(args)?;
    let objs = render_chart(&values, shim.ignore_mtu)?;
    let kube = client().await?;
    println!("ℹ️  Using Cilium version {VERSION}");
    println!("🔮 Auto-detected cluster name: {}", kube.server());
    let kube_proxy = Api::<DaemonSet>::namespaced(kube.client(), NAMESPACE)
        .get_opt("kube-proxy")
        .await
        .map_err(|e| e.to_string())?;
    if kube_proxy.is_none() {
        println!("🔮 Auto-detected kube-proxy has not been installed");
    }
    if values.get("kubeProxyReplacement").map(String::as_str) == Some("true") {
        println!("ℹ️  Cilium will fully replace all functionalities of kube-proxy");
    }
    for obj in objs {
        kube.apply(&obj, "cilium-cli")
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(0)
}

// ---- status ----

/// `status.PodStateCount`.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
#[allow(non_snake_case)]
struct PodStateCount {
    Type: String,
    Desired: i64,
    Ready: i64,
    Available: i64,
    Unavailable: i64,
}

/// `status.ErrorCount`: Go's `error` values marshal as `{}`.
#[derive(Debug, Clone, Default, PartialEq)]
struct ErrorCount {
    errors: Vec<String>,
    warnings: Vec<String>,
    disabled: bool,
}

impl Serialize for ErrorCount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let as_go = |v: &[String]| (!v.is_empty()).then(|| vec![json!({}); v.len()]);
        let mut st = s.serialize_struct("ErrorCount", 3)?;
        st.serialize_field("Errors", &as_go(&self.errors))?;
        st.serialize_field("Warnings", &as_go(&self.warnings))?;
        st.serialize_field("Disabled", &self.disabled)?;
        st.end()
    }
}

#[derive(Serialize, Debug, Clone, Default, PartialEq)]
struct PodsCount {
    all: i64,
    by_cilium: i64,
}

/// `status.Status`, with its JSON field names and order.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
struct Status {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    image_count: BTreeMap<String, BTreeMap<String, i64>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    phase_count: BTreeMap<String, BTreeMap<String, i64>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pod_state: BTreeMap<String, PodStateCount>,
    pods_count: PodsCount,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    cilium_status: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    errors: BTreeMap<String, BTreeMap<String, ErrorCount>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    collection_errors: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    helm_chart_version: String,
}

impl Status {
    fn entry(&mut self, deployment: &str, pod: &str) -> &mut ErrorCount {
        self.errors
            .entry(deployment.into())
            .or_default()
            .entry(pod.into())
            .or_default()
    }
    fn error(&mut self, deployment: &str, pod: &str, e: String) {
        self.entry(deployment, pod).errors.push(e);
    }
    fn warning(&mut self, deployment: &str, pod: &str, e: String) {
        self.entry(deployment, pod).warnings.push(e);
    }
    fn total(&self, warnings: bool) -> usize {
        self.errors
            .values()
            .flat_map(|m| m.values())
            .map(|c| {
                if warnings {
                    c.warnings.len()
                } else {
                    c.errors.len()
                }
            })
            .sum()
    }
    fn ready(&self, ignore_warnings: bool) -> bool {
        self.total(false) == 0 && (ignore_warnings || self.total(true) == 0)
    }

    /// `statusSummary`.
    fn summary(&self, name: &str) -> String {
        let Some(a) = self.errors.get(name) else {
            return format!("{GREEN}OK{RESET}");
        };
        let errors: usize = a.values().map(|c| c.errors.len()).sum();
        let warnings: usize = a.values().map(|c| c.warnings.len()).sum();
        let mut parts = Vec::new();
        if errors > 0 {
            parts.push(format!("{RED}{errors} errors{RESET}"));
        }
        if warnings > 0 {
            parts.push(format!("{YELLOW}{warnings} warnings{RESET}"));
        }
        if a.values().any(|c| c.disabled) {
            parts.push(format!("{CYAN}disabled{RESET}"));
        }
        if parts.is_empty() {
            format!("{GREEN}OK{RESET}")
        } else {
            parts.join(", ")
        }
    }
}

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const GREEN: &str = "\x1b[32m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

fn state_count(
    kind: &str,
    desired: i64,
    ready: i64,
    available: i64,
    unavailable: i64,
) -> PodStateCount {
    PodStateCount {
        Type: kind.into(),
        Desired: desired,
        Ready: ready,
        Available: available,
        Unavailable: unavailable,
    }
}

/// `daemonSetStatus`: Ok(true) when absent.
async fn daemon_set_status(c: &kube::Client, s: &mut Status, name: &str) -> Result<bool, String> {
    let Some(ds) = Api::<DaemonSet>::namespaced(c.clone(), NAMESPACE)
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(true);
    };
    let st = ds.status.clone().unwrap_or_default();
    let (desired, ready) = (
        i64::from(st.desired_number_scheduled),
        i64::from(st.number_ready),
    );
    let unavailable = i64::from(st.number_unavailable.unwrap_or(0));
    s.pod_state.insert(
        name.into(),
        state_count(
            "DaemonSet",
            desired,
            ready,
            i64::from(st.number_available.unwrap_or(0)),
            unavailable,
        ),
    );
    let not_ready = desired - ready;
    if not_ready > 0 {
        s.error(
            name,
            name,
            format!("{not_ready} pods of DaemonSet {name} are not ready"),
        );
    }
    if unavailable - not_ready > 0 {
        s.warning(
            name,
            name,
            format!(
                "{} pods of DaemonSet {name} are not available",
                unavailable - not_ready
            ),
        );
    }
    if ds.metadata.generation != st.observed_generation {
        s.error(
            name,
            name,
            format!("daemonset {name} is updated but rollout has not started"),
        );
    }
    let updated = i64::from(st.updated_number_scheduled.unwrap_or(0));
    if updated < desired {
        s.error(
            name,
            name,
            format!("daemonset {name} is rolling out - {updated} out of {desired} pods updated"),
        );
    }
    Ok(false)
}

/// `deploymentStatus`: Ok(true) when absent.
async fn deployment_status(c: &kube::Client, s: &mut Status, name: &str) -> Result<bool, String> {
    let Some(d) = Api::<Deployment>::namespaced(c.clone(), NAMESPACE)
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(true);
    };
    let st = d.status.clone().unwrap_or_default();
    let count = state_count(
        "Deployment",
        i64::from(st.replicas.unwrap_or(0)),
        i64::from(st.ready_replicas.unwrap_or(0)),
        i64::from(st.available_replicas.unwrap_or(0)),
        i64::from(st.unavailable_replicas.unwrap_or(0)),
    );
    let not_ready = count.Desired - count.Ready;
    let unavailable = count.Unavailable - not_ready;
    s.pod_state.insert(name.into(), count);
    // cilium-cli says "DaemonSet" here too.
    if not_ready > 0 {
        s.error(
            name,
            name,
            format!("{not_ready} pods of DaemonSet {name} are not ready"),
        );
    }
    if unavailable > 0 {
        s.warning(
            name,
            name,
            format!("{unavailable} pods of DaemonSet {name} are not available"),
        );
    }
    Ok(false)
}

/// `podStatus`: phases and images of the pods matching `selector`.
async fn pod_status(
    c: &kube::Client,
    s: &mut Status,
    name: &str,
    selector: &str,
) -> Result<Vec<Pod>, String> {
    let pods = Api::<Pod>::namespaced(c.clone(), NAMESPACE)
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| e.to_string())?
        .items;
    let (mut phases, mut images) = (BTreeMap::new(), BTreeMap::new());
    for p in &pods {
        let phase = p
            .status
            .as_ref()
            .and_then(|st| st.phase.clone())
            .unwrap_or_default();
        *phases.entry(phase.clone()).or_insert(0) += 1;
        let pod_name = p.metadata.name.clone().unwrap_or_default();
        match phase.as_str() {
            "Pending" => s.warning(name, &pod_name, "pod is pending".into()),
            "Failed" => {
                let st = p.status.clone().unwrap_or_default();
                s.error(
                    name,
                    &pod_name,
                    format!(
                        "pod has failed: {} - {}",
                        st.reason.unwrap_or_default(),
                        st.message.unwrap_or_default()
                    ),
                );
            }
            _ => {}
        }
        for ctr in p.spec.iter().flat_map(|sp| sp.containers.iter()) {
            *images
                .entry(ctr.image.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
    }
    s.phase_count.insert(name.into(), phases);
    s.image_count.insert(name.into(), images);
    Ok(pods)
}

/// What `cilium-dbg status -o json` in a running agent says, from what the agent would see.
fn agent_status_response(kpr: &str) -> Value {
    json!({
        "cilium": {"state": "Ok", "msg": "Ok"},
        "kubernetes": {"state": "Ok", "msg": "1.34 (v1.34.2) [linux/amd64]"},
        "cluster": {"ciliumHealth": {"state": "Ok"}},
        "kube-proxy-replacement": {"mode": if kpr == "true" { "True" } else { "False" }},
    })
}

async fn collect(kube: &harness::kube::KubeClient) -> Status {
    let c = kube.client();
    let mut s = Status {
        helm_chart_version: VERSION.into(),
        ..Default::default()
    };
    let agent = "cilium";
    match daemon_set_status(&c, &mut s, agent).await {
        Ok(true) => {
            let e = format!("daemonsets.apps \"{agent}\" not found");
            s.error(agent, agent, e.clone());
            s.collection_errors.push(e);
        }
        Ok(false) => {}
        Err(e) => {
            s.error(agent, agent, e.clone());
            s.collection_errors.push(e);
        }
    }
    let envoy = "cilium-envoy";
    match daemon_set_status(&c, &mut s, envoy).await {
        Ok(true) => s.entry(envoy, envoy).disabled = true,
        Ok(false) => {
            if let Err(e) = pod_status(&c, &mut s, envoy, "name=cilium-envoy").await {
                s.collection_errors.push(e);
            }
        }
        Err(e) => {
            s.error(envoy, envoy, e.clone());
            s.collection_errors.push(e);
        }
    }
    for (name, selector) in [
        ("cilium-operator", "name=cilium-operator"),
        ("hubble-relay", "k8s-app=hubble-relay"),
        ("hubble-ui", "k8s-app=hubble-ui"),
        ("clustermesh-apiserver", "k8s-app=clustermesh-apiserver"),
    ] {
        match deployment_status(&c, &mut s, name).await {
            Ok(disabled) => {
                s.entry(name, name).disabled = disabled;
                if !disabled && let Err(e) = pod_status(&c, &mut s, name, selector).await {
                    s.collection_errors.push(e);
                }
            }
            Err(e) => {
                s.error(name, name, e.clone());
                s.collection_errors.push(e);
            }
        }
    }
    // The cluster's pods: all (outside the host network), and those Cilium manages (its
    // CiliumEndpoints: pods with an address on a node where the agent runs).
    let all = Api::<Pod>::all(c.clone())
        .list(&ListParams::default())
        .await;
    let kpr = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(c.clone(), NAMESPACE)
        .get_opt("cilium-config")
        .await
        .ok()
        .flatten()
        .and_then(|cm| cm.data?.get("kube-proxy-replacement").cloned())
        .unwrap_or_else(|| "false".into());
    match pod_status(&c, &mut s, agent, "k8s-app=cilium").await {
        Ok(agents) => {
            let agent_nodes: Vec<String> = agents
                .iter()
                .filter(|p| p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running"))
                .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                .collect();
            if let Ok(all) = &all {
                let pods = all.items.iter().filter(|p| {
                    p.spec
                        .as_ref()
                        .is_some_and(|sp| sp.host_network != Some(true))
                });
                s.pods_count.all = pods.clone().count() as i64;
                s.pods_count.by_cilium = pods
                    .filter(|p| p.status.as_ref().is_some_and(|st| st.pod_ip.is_some()))
                    .filter(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|sp| sp.node_name.as_ref())
                            .is_some_and(|n| agent_nodes.contains(n))
                    })
                    .count() as i64;
            }
            for p in agents
                .iter()
                .filter(|p| p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running"))
            {
                let pod_name = p.metadata.name.clone().unwrap_or_default();
                let cs = p
                    .status
                    .as_ref()
                    .and_then(|st| st.container_statuses.as_ref())
                    .and_then(|v| v.iter().find(|c| c.name == "cilium-agent"));
                if cs.is_some_and(|c| c.state.as_ref().is_some_and(|st| st.running.is_some())) {
                    s.cilium_status
                        .insert(pod_name, agent_status_response(&kpr));
                    continue;
                }
                let mut desc = "is not running".to_string();
                if let Some(c) = cs {
                    if c.state
                        .as_ref()
                        .and_then(|st| st.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
                    {
                        desc = "is in CrashLoopBackOff".into();
                    }
                    if let Some(t) = c.last_state.as_ref().and_then(|st| st.terminated.as_ref()) {
                        desc = format!("{desc}, exited with code {}", t.exit_code);
                    }
                }
                s.error(
                    agent,
                    &pod_name,
                    format!(
                        "unable to retrieve cilium status: container cilium-agent {desc}: try 'kubectl -n {NAMESPACE} logs -c cilium-agent {pod_name}'"
                    ),
                );
                s.cilium_status.insert(pod_name, Value::Null);
            }
        }
        Err(e) => s.collection_errors.push(e),
    }
    if let Err(e) = all {
        s.collection_errors.push(e.to_string());
    }
    s
}

/// `PodStateCount.Format`.
fn format_state(c: &PodStateCount) -> String {
    let mut items = Vec::new();
    if c.Desired > 0 {
        items.push(format!("Desired: {}", c.Desired));
    }
    let color = if c.Ready < c.Desired { YELLOW } else { GREEN };
    if c.Ready > 0 {
        items.push(format!("Ready: {color}{}/{}{RESET}", c.Ready, c.Desired));
    }
    if c.Available > 0 {
        items.push(format!(
            "Available: {color}{}/{}{RESET}",
            c.Available, c.Desired
        ));
    }
    if c.Unavailable > 0 {
        items.push(format!(
            "Unavailable: {RED}{}/{}{RESET}",
            c.Unavailable, c.Desired
        ));
    }
    items.join(", ")
}

/// `Status.Format`, through a Go `tabwriter` (padding 4); maps in key order.
fn format_status(s: &Status) -> String {
    let envoy = s
        .summary("cilium-envoy")
        .replace("disabled", "disabled (using embedded mode)");
    let mut out = String::new();
    out.push_str(&format!("{YELLOW}    /¯¯\\\n"));
    out.push_str(&format!(
        "{CYAN} /¯¯{YELLOW}\\__/{GREEN}¯¯\\{RESET}\tCilium:\t{}\n",
        s.summary("cilium")
    ));
    out.push_str(&format!(
        "{CYAN} \\__{RED}/¯¯\\{GREEN}__/{RESET}\tOperator:\t{}\n",
        s.summary("cilium-operator")
    ));
    out.push_str(&format!(
        "{GREEN} /¯¯{RED}\\__/{MAGENTA}¯¯\\{RESET}\tEnvoy DaemonSet:\t{envoy}\n"
    ));
    out.push_str(&format!(
        "{GREEN} \\__{BLUE}/¯¯\\{MAGENTA}__/{RESET}\tHubble Relay:\t{}\n",
        s.summary("hubble-relay")
    ));
    out.push_str(&format!(
        "{BLUE}{BLUE}{BLUE}    \\__/{RESET}\tClusterMesh:\t{}\n",
        s.summary("clustermesh-apiserver")
    ));
    out.push('\n');
    for (name, st) in &s.pod_state {
        out.push_str(&format!("{}\t{name}\t{}\n", st.Type, format_state(st)));
    }
    let mut header = "Containers:";
    for (name, phases) in &s.phase_count {
        let items: Vec<String> = phases
            .iter()
            .map(|(phase, n)| {
                let color = match phase.as_str() {
                    "Failed" | "Unknown" => RED,
                    "Running" | "Pending" | "Succeeded" => GREEN,
                    _ => "",
                };
                format!("{phase}: {color}{n}{RESET}")
            })
            .collect();
        out.push_str(&format!("{header}\t{name}\t{}\n", items.join(", ")));
        header = "";
    }
    out.push_str(&format!(
        "Cluster Pods:\t{}/{} managed by Cilium\n",
        s.pods_count.by_cilium, s.pods_count.all
    ));
    out.push_str(&format!("Helm chart version:\t{}\n", s.helm_chart_version));
    let mut header = "Image versions";
    for (name, images) in &s.image_count {
        for (image, n) in images {
            out.push_str(&format!("{header}\t{name}\t{image}: {n}\n"));
            header = "";
        }
    }
    for (title, warnings) in [("Errors:", false), ("Warnings:", true)] {
        let mut header = title;
        for (deployment, pods) in &s.errors {
            for (pod, c) in pods {
                for e in if warnings { &c.warnings } else { &c.errors } {
                    out.push_str(&format!("{header}\t{deployment}\t{pod}\t{e}\n"));
                    header = "";
                }
            }
        }
    }
    tabwriter(&out, 4)
}

/// Go's `text/tabwriter` (no flags, minwidth 0, pad with spaces): tab-terminated cells are
/// aligned per column block; widths count runes.
fn tabwriter(text: &str, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, padding, &mut out);
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                out.push_str(&" ".repeat(widths[j].saturating_sub(cell.chars().count())));
            }
        }
        out.push('\n');
    }
}

/// A Go duration flag value (`5m`, `30s`, `1m30s`, `500ms`).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() {
                break;
            }
            unit.push(n);
            chars.next();
        }
        let v: f64 = num.parse().ok()?;
        total += v * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        num.clear();
        any = true;
    }
    (any && num.is_empty()).then(|| Duration::from_secs_f64(total))
}

async fn status(args: &[String], shim: &Shim) -> Result<i32, String> {
    let (mut json_out, mut wait, mut ignore_warnings) = (false, false, false);
    let mut wait_for = Duration::from_secs(300);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => json_out = it.next().map(String::as_str) == Some("json"),
            "--output=json" | "-ojson" => json_out = true,
            "--wait" => wait = true,
            "--ignore-warnings" => ignore_warnings = true,
            "--wait-duration" => {
                let v = it.next().ok_or("--wait-duration needs a value")?;
                wait_for = parse_go_duration(v).ok_or_else(|| {
                    format!("invalid argument {v:?} for \"--wait-duration\" flag")
                })?;
            }
            other if other.starts_with("--wait-duration=") => {
                let v = &other["--wait-duration=".len()..];
                wait_for = parse_go_duration(v).ok_or_else(|| {
                    format!("invalid argument {v:?} for \"--wait-duration\" flag")
                })?;
            }
            other if other.starts_with("--output=") || other == "--interactive=false" => {}
            other => return Err(format!("unknown flag: {other}")),
        }
    }
    let kube = client().await?;
    let deadline = tokio::time::Instant::now() + wait_for.mul_f64(shim.time_scale);
    let mut s = collect(&kube).await;
    while wait && !s.ready(ignore_warnings) {
        if tokio::time::Instant::now() >= deadline {
            eprint!("{}", format_status(&s));
            eprintln!(
                "\n❌ Unable to determine status:  timeout while waiting for status to become successful: context deadline exceeded"
            );
            return Ok(1);
        }
        // defaults.WaitRetryInterval
        tokio::time::sleep(Duration::from_secs(2).mul_f64(shim.time_scale)).await;
        s = collect(&kube).await;
    }
    if json_out {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        s.serialize(&mut ser).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf)
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026");
        println!("{text}");
    } else {
        print!("{}", format_status(&s));
    }
    if !s.collection_errors.is_empty() {
        return Err(format!(
            "status check failed: [{}]",
            s.collection_errors.join(", ")
        ));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deployment plan's Step 5 values (seed/deployment-plan.md) plus MTU 1450.
    fn plan_values() -> BTreeMap<String, String> {
        [
            ("ipam.mode", "kubernetes"),
            ("kubeProxyReplacement", "true"),
            ("securityContext.capabilities.ciliumAgent", "{CHOWN,KILL,NET_ADMIN,NET_RAW,IPC_LOCK,SYS_ADMIN,SYS_RESOURCE,DAC_OVERRIDE,FOWNER,SETGID,SETUID}"),
            ("securityContext.capabilities.cleanCiliumState", "{NET_ADMIN,SYS_ADMIN,SYS_RESOURCE}"),
            ("cgroup.autoMount.enabled", "false"),
            ("cgroup.hostRoot", "/sys/fs/cgroup"),
            ("k8sServiceHost", "localhost"),
            ("k8sServicePort", "7445"),
            ("gatewayAPI.enabled", "true"),
            ("gatewayAPI.enableAlpn", "true"),
            ("gatewayAPI.enableAppProtocol", "true"),
            ("MTU", "1450"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn the_plans_values_render_into_config_env_and_capabilities() {
        let values = plan_values();
        let args: Vec<String> = values
            .iter()
            .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")])
            .collect();
        assert_eq!(parse_sets(&args).unwrap(), values);
        let objs = render(&values).unwrap();
        let cm = &find(&objs, "ConfigMap", "cilium-config")["data"];
        assert_eq!(cm["kube-proxy-replacement"], "true");
        assert_eq!(cm["mtu"], "1450");
        assert_eq!(cm["ipam"], "kubernetes");
        assert_eq!(cm["enable-gateway-api"], "true");
        assert_eq!(cm["enable-gateway-api-app-protocol"], "true");
        assert_eq!(cm["cgroup-root"], "/sys/fs/cgroup");
        let agent = &find(&objs, "DaemonSet", "cilium")["spec"]["template"]["spec"];
        let c = &agent["containers"][0];
        assert_eq!(c["name"], "cilium-agent");
        let env: Vec<&Value> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e.get("value").is_some())
            .collect();
        assert_eq!(
            env[0],
            &json!({"name": "KUBERNETES_SERVICE_HOST", "value": "localhost"})
        );
        assert_eq!(
            env[1],
            &json!({"name": "KUBERNETES_SERVICE_PORT", "value": "7445"})
        );
        assert_eq!(
            c["securityContext"]["capabilities"]["add"]
                .as_array()
                .unwrap()
                .len(),
            11
        );
        // autoMount disabled: no mount-cgroup init container.
        let inits: Vec<&str> = agent["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert!(!inits.contains(&"mount-cgroup"), "{inits:?}");
        assert_eq!(
            find(&objs, "Deployment", "cilium-operator")["spec"]["replicas"],
            2
        );
        assert!(
            find(&objs, "DaemonSet", "cilium-envoy")["metadata"]["labels"]["app.kubernetes.io/managed-by"]
                == "Helm"
        );
        assert!(parse_sets(&["--set".into(), "novalue".into()]).is_err());
    }

    #[test]
    fn chart_defaults_apply_where_nothing_is_set() {
        let objs = render(&BTreeMap::new()).unwrap();
        let cm = &find(&objs, "ConfigMap", "cilium-config")["data"];
        assert!(cm.get("mtu").is_none(), "MTU 0 renders no mtu key");
        assert_eq!(cm["ipam"], "cluster-pool");
        assert_eq!(cm["kube-proxy-replacement"], "false");
        let one = BTreeMap::from([("operator.replicas".to_string(), "1".to_string())]);
        let op = render(&one).unwrap();
        let op = &find(&op, "Deployment", "cilium-operator")["spec"];
        assert_eq!(
            (
                op["replicas"].as_i64(),
                op["strategy"]["rollingUpdate"]["maxUnavailable"].as_str()
            ),
            (Some(1), Some("100%"))
        );
        let bad = BTreeMap::from([("kubeProxyReplacement".to_string(), "strict".to_string())]);
        assert!(render(&bad).unwrap_err().contains("must be explicitly set"));
        // The fault: MTU asked for but not honoured.
        let objs = render_chart(&plan_values(), true).unwrap();
        assert!(
            find(&objs, "ConfigMap", "cilium-config")["data"]
                .get("mtu")
                .is_none()
        );
    }

    #[test]
    fn shim_options_come_before_the_command() {
        let (shim, rest) = shim_options(vec![
            "--twin-fault=cilium-mtu-autodetect".into(),
            "--twin-time-scale=0.01".into(),
            "status".into(),
        ])
        .unwrap();
        assert_eq!(
            shim,
            Shim {
                ignore_mtu: true,
                time_scale: 0.01
            }
        );
        assert_eq!(rest, ["status"]);
        assert!(shim_options(vec!["--twin-fault=nope".into()]).is_err());
    }

    #[test]
    fn status_json_has_cilium_clis_shape() {
        let mut s = Status {
            helm_chart_version: VERSION.into(),
            ..Default::default()
        };
        s.pod_state
            .insert("cilium".into(), state_count("DaemonSet", 2, 1, 1, 1));
        s.error(
            "cilium",
            "cilium",
            "1 pods of DaemonSet cilium are not ready".into(),
        );
        s.entry("hubble-relay", "hubble-relay").disabled = true;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["pod_state"]["cilium"],
            json!({"Type": "DaemonSet", "Desired": 2, "Ready": 1, "Available": 1, "Unavailable": 1})
        );
        assert_eq!(
            v["errors"]["cilium"]["cilium"],
            json!({"Errors": [{}], "Warnings": null, "Disabled": false})
        );
        assert_eq!(
            v["errors"]["hubble-relay"]["hubble-relay"]["Disabled"],
            true
        );
        assert_eq!(v["pods_count"], json!({"all": 0, "by_cilium": 0}));
        assert!(v.get("image_count").is_none() && v.get("collection_errors").is_none());
        let text = format_status(&s);
        assert!(text.contains("Cilium:"), "{text}");
        assert!(text.contains("1 errors"), "{text}");
        assert!(text.contains("Hubble Relay:"), "{text}");
        assert!(!s.ready(true));
    }

    #[test]
    fn tabwriter_aligns_column_blocks_like_go() {
        let t = tabwriter("a\tb\tc\nlonger\tb\tc\nsingle\nx\ty\n", 4);
        assert_eq!(t, "a         b    c\nlonger    b    c\nsingle\nx    y\n");
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("x"), None);
    }
}

//! The twin's `cilium` CLI (binary `cilium-twin`): what `cilium install` and `cilium status`
//! do to a cluster, done to the cluster its `KUBECONFIG` points at — through the Kubernetes
//! API, like the real CLI.
//!
//! `install --set key=value…` renders the parts of the Cilium Helm chart that clusterproof
//! checks (key names from the chart's `cilium-configmap.yaml`, see `harness::cilium`): the
//! `cilium-config` ConfigMap, the `cilium` agent DaemonSet (host network, tolerating every
//! taint, `KUBERNETES_SERVICE_HOST/PORT` from `k8sServiceHost/Port`, capabilities from
//! `securityContext.capabilities.ciliumAgent`) and the `cilium-operator` Deployment.
//! `status [-o json]` prints the twin's own summary (the real CLI's JSON is not used by
//! clusterproof, which reads the Kubernetes objects itself). `version` prints the version.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The Cilium version the twin pretends to install.
pub const VERSION: &str = "1.18.4";

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

async fn run(args: Vec<String>) -> Result<i32, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("missing command; usage: cilium-twin install|status|version".into());
    };
    match cmd.as_str() {
        "version" => {
            println!(
                "cilium-cli: v0.18.8-twin compiled with go1.25 on linux/amd64\ncilium image (default): v{VERSION}"
            );
            Ok(0)
        }
        "install" => install(rest).await,
        "status" => status(rest).await,
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

/// The objects `cilium install` creates for these values.
pub fn render(values: &BTreeMap<String, String>) -> Vec<Value> {
    let get = |k: &str| values.get(k).cloned();
    let mut data = serde_json::Map::new();
    data.insert(
        "kube-proxy-replacement".into(),
        json!(get("kubeProxyReplacement").unwrap_or_else(|| "false".into())),
    );
    data.insert(
        "ipam".into(),
        json!(get("ipam.mode").unwrap_or_else(|| "cluster-pool".into())),
    );
    if let Some(mtu) = get("MTU") {
        data.insert("mtu".into(), json!(mtu));
    }
    if get("gatewayAPI.enabled").as_deref() == Some("true") {
        data.insert("enable-gateway-api".into(), json!("true"));
        data.insert(
            "enable-gateway-api-alpn".into(),
            json!(get("gatewayAPI.enableAlpn").unwrap_or_else(|| "false".into())),
        );
        let app = get("gatewayAPI.enableAppProtocol").as_deref() == Some("true")
            || get("gatewayAPI.enableAlpn").as_deref() == Some("true");
        data.insert(
            "enable-gateway-api-app-protocol".into(),
            json!(app.to_string()),
        );
    }
    if let Some(root) = get("cgroup.hostRoot") {
        data.insert("cgroup-root".into(), json!(root));
    }
    let mut env = Vec::new();
    if let Some(h) = get("k8sServiceHost") {
        env.push(json!({"name": "KUBERNETES_SERVICE_HOST", "value": h}));
    }
    if let Some(p) = get("k8sServicePort") {
        env.push(json!({"name": "KUBERNETES_SERVICE_PORT", "value": p}));
    }
    let caps = get("securityContext.capabilities.ciliumAgent")
        .map(|v| helm_list(&v))
        .unwrap_or_default();
    let image = format!("quay.io/cilium/cilium:v{VERSION}");
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": "kube-system"}, "data": data}),
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": "kube-system", "labels": {"k8s-app": "cilium"}},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "cilium"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "cilium"}},
                    "spec": {
                        "hostNetwork": true,
                        "priorityClassName": "system-node-critical",
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "cilium-agent", "image": image, "env": env,
                            "securityContext": {"capabilities": {"add": caps, "drop": ["ALL"]}}}]
                    }
                }
            }
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "cilium-operator", "namespace": "kube-system", "labels": {"io.cilium/app": "operator", "name": "cilium-operator"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"io.cilium/app": "operator", "name": "cilium-operator"}},
                "template": {
                    "metadata": {"labels": {"io.cilium/app": "operator", "name": "cilium-operator"}},
                    "spec": {
                        "hostNetwork": true,
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "cilium-operator", "image": format!("quay.io/cilium/operator-generic:v{VERSION}")}]
                    }
                }
            }
        }),
    ]
}

async fn install(args: &[String]) -> Result<i32, String> {
    let values = parse_sets(args)?;
    if values
        .get("kubeProxyReplacement")
        .is_some_and(|v| v != "true" && v != "false")
    {
        return Err("kubeProxyReplacement must be explicitly set to a valid value (true or false) to continue.".into());
    }
    let kube = client().await?;
    println!("ℹ️  Using Cilium version {VERSION}");
    println!("🔮 Auto-detected cluster name: {}", kube.server());
    if values.get("kubeProxyReplacement").map(String::as_str) == Some("true") {
        println!("ℹ️  Cilium will fully replace all functionalities of kube-proxy");
    }
    for obj in render(&values) {
        let what = kube
            .apply(&obj, "cilium-cli")
            .await
            .map_err(|e| e.to_string())?;
        println!("✅ applied {what}");
    }
    println!("⌛ Cilium was installed; `cilium status --wait` waits for it to be ready");
    Ok(0)
}

async fn status(args: &[String]) -> Result<i32, String> {
    let json_out = args.windows(2).any(|w| w[0] == "-o" && w[1] == "json")
        || args.iter().any(|a| a == "--output=json");
    let kube = client().await?;
    let s = harness::cilium::status(&kube)
        .await
        .map_err(|e| e.to_string())?;
    let ok = s.healthy();
    if json_out {
        let v = json!({
            "cilium": s.agent.map(|(d, r)| json!({"desired": d, "ready": r})),
            "operator": s.operator.map(|(a, d)| json!({"available": a, "desired": d})),
            "config": s.config,
            "ok": ok,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let (d, r) = s.agent.unwrap_or((0, 0));
        println!(
            "    Cilium:             {}",
            if ok { "OK" } else { "not ready" }
        );
        println!("    DaemonSet cilium    Desired: {d}, Ready: {r}/{d}");
        let (a, w) = s.operator.unwrap_or((0, 0));
        println!("    Deployment cilium-operator    Desired: {w}, Available: {a}/{w}");
    }
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_values_render_into_config_env_and_capabilities() {
        let values = harness::model::lab::default_cilium_values();
        let args: Vec<String> = values
            .iter()
            .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")])
            .collect();
        assert_eq!(parse_sets(&args).unwrap(), values);
        let objs = render(&values);
        assert_eq!(objs[0]["data"]["kube-proxy-replacement"], "true");
        assert_eq!(objs[0]["data"]["mtu"], "1450");
        assert_eq!(objs[0]["data"]["ipam"], "kubernetes");
        assert_eq!(objs[0]["data"]["enable-gateway-api"], "true");
        let agent = &objs[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            agent["env"][0],
            json!({"name": "KUBERNETES_SERVICE_HOST", "value": "localhost"})
        );
        assert_eq!(
            agent["env"][1],
            json!({"name": "KUBERNETES_SERVICE_PORT", "value": "7445"})
        );
        assert_eq!(
            agent["securityContext"]["capabilities"]["add"]
                .as_array()
                .unwrap()
                .len(),
            11
        );
        assert!(parse_sets(&["--set".into(), "novalue".into()]).is_err());
    }
}

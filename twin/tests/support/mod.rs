//! Shared by the tests of the world inside the Kubernetes twin (`kube_world.rs`,
//! `pod_proxy.rs`, `cilium_shim.rs`): a twin, its kube-rs client from the kubeconfig it writes,
//! raw HTTP through that client, and bounded waits (never sleeps).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use twin::kube::{KubeSpec, KubeTwin};

pub const WAIT: Duration = Duration::from_secs(30);

pub async fn start(time_scale: f64) -> KubeTwin {
    harness::proxmox::tls::install_default_provider();
    KubeTwin::start(KubeSpec {
        token: "world-test-token".into(),
        time_scale,
        timing: Default::default(),
    })
    .await
    .unwrap()
}

pub async fn client(t: &KubeTwin) -> Client {
    let kc = Kubeconfig::from_yaml(&t.kubeconfig_yaml("talos-prod-01", "tester")).unwrap();
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    // 503s are answers here, not something to retry.
    cfg.default_retry = false;
    Client::try_from(cfg).unwrap()
}

/// Poll `f` until it returns Some, within WAIT.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(WAIT, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if let Some(v) = f().await {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn join(t: &KubeTwin, name: &str, cp: bool) {
    t.join_node(name, BTreeMap::new(), &format!("uuid-{name}"), cp)
        .unwrap();
}

/// Join the nodes and make their CNI ready (as a running Cilium agent would).
pub fn join_ready(t: &KubeTwin, nodes: &[(&str, bool)]) {
    for (n, cp) in nodes {
        join(t, n, *cp);
        t.set_cni_ready(n, true).unwrap();
    }
}

/// A raw request through the client: status, headers, body.
pub async fn raw(c: &Client, method: &str, path: &str) -> (u16, axum::http::HeaderMap, String) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .body(Vec::new())
        .unwrap();
    let resp = c.send(req.map(kube::client::Body::from)).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(axum::body::Body::new(body), 1 << 20)
        .await
        .unwrap();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub async fn get(c: &Client, path: &str) -> (u16, String) {
    let (code, _, body) = raw(c, "GET", path).await;
    (code, body)
}

pub async fn pods(c: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

pub fn ready(p: &Pod) -> bool {
    let Some(s) = &p.status else { return false };
    s.phase.as_deref() == Some("Running")
        && s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn node_ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

pub fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .unwrap()
        .node_name
        .clone()
        .unwrap_or_default()
}

pub fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .unwrap()
        .pod_ip
        .clone()
        .unwrap_or_default()
}

/// agnhost netexec, pinned to `node`, labelled `app=<app>`.
pub async fn netexec_pod(c: &Client, name: &str, node: &str, app: &str) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "netexec", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                "args": ["netexec", "--http-port=8080", "--udp-port=8081"],
                "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 8081, "protocol": "UDP"}]}],
        },
    }))
    .unwrap();
    Api::<Pod>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// Wait until the pods of `app` are Running and Ready, `n` of them.
pub async fn running(c: &Client, app: &str, n: usize) -> Vec<Pod> {
    eventually(&format!("{n} {app} pods ready"), || async {
        let l = pods(c, "default", &format!("app={app}")).await;
        (l.len() == n && l.iter().all(ready)).then_some(l)
    })
    .await
}

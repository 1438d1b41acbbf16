//! `dod::connectivity` — Step 6 "connectivity test passes": pod-to-pod across nodes and
//! pod-to-service.
//!
//! Proves (deployment plan, Step 6 and Definition of Done): done the way Kubernetes' own
//! network e2e tests do it (test/e2e/network: agnhost `netexec` pods, reached through the API
//! server's proxy, asked to `/dial` each other). One probe pod per schedulable node — control
//! planes included (the probe tolerates their taint); NotReady, cordoned or otherwise tainted
//! nodes are left out — plus a Service in `verify.probe_namespace`, image
//! `verify.probe_image` (a mirror's, where registry.k8s.io is unreachable). Each pod dials every
//! other pod by IP (for more than 8 nodes: its next two neighbours), and one pod dials the
//! Service's ClusterIP. The workload is deleted afterwards, also on failure, timeout or
//! cancellation. With `--dry-run` nothing is created: the scenario says what it would create.

use futures::future::BoxFuture;
use harness::kube::KubeClient;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

use super::{kube, name};
use crate::workload::Workload;

pub struct Connectivity;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "dod::connectivity",
    module: module_path!(),
    phase: Phase::Verify,
    proves: "Step 6: connectivity test passes — pod-to-pod across every node pair and pod-to-service (agnhost netexec, as Kubernetes' network e2e tests)",
    needs: &[Need::Spec, Need::Kube],
    after: &[],
};

impl Scenario for Connectivity {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

const PORT: u16 = 8080;
const APP: &str = "clusterproof-netexec";

/// The control-plane taint the probe tolerates: pod networking on control planes matters too.
const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// Ready, not cordoned, and no taint keeping pods off other than the control-plane one.
fn schedulable(n: &Node) -> bool {
    super::ready(n)
        && !n.spec.as_ref().is_some_and(|s| {
            s.unschedulable == Some(true)
                || s.taints.iter().flatten().any(|t| {
                    t.key != CONTROL_PLANE_TAINT
                        && (t.effect == "NoSchedule" || t.effect == "NoExecute")
                })
        })
}

/// `GET …/pods/<from>:8080/proxy/dial?…`: what netexec in `from` got from `host:port`.
async fn dial(
    kube: &KubeClient,
    ns: &str,
    from: &str,
    host: &str,
    port: u16,
) -> Result<String, String> {
    let path = format!(
        "/api/v1/namespaces/{ns}/pods/{from}:{PORT}/proxy/dial?request=hostname&protocol=http&host={host}&port={port}&tries=1"
    );
    let r = kube.raw_get(&path).await.map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!(
            "the API server's proxy to {from} answered {}: {}",
            r.status,
            r.body.trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(&r.body).map_err(|e| format!("netexec answered {:?}: {e}", r.body))?;
    match v["responses"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|x| x.as_str())
    {
        Some(h) => Ok(h.to_string()),
        None => Err(v["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| r.body.trim().to_string())),
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let v = &cx.lab.spec.lab.verify;
    let kube = kube(cx).await?;
    let nodes: Vec<Node> = kube
        .nodes()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?
        .into_iter()
        .filter(schedulable)
        .collect();
    if nodes.len() < 2 {
        return Ok(Outcome::new(
            Verdict::Fail,
            format!(
                "{} schedulable node(s): pod-to-pod across nodes cannot be tested",
                nodes.len()
            ),
        ));
    }
    let ns = v.probe_namespace.clone();
    let pods: Vec<(String, String)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("netexec-{i}"), name(n).to_string()))
        .collect();
    if cx.lab.dry_run {
        return Ok(Outcome::skip(format!(
            "dry run: would create namespace {ns}, {} {} pod(s) (one per schedulable node) and Service {APP}, dial between them, then delete them",
            pods.len(),
            v.probe_image
        )));
    }
    let fail = |what: &str, e: harness::kube::KubeError| Outcome::error(format!("{what}: {e}"));
    let mut guard = Workload::in_namespace(kube, &ns)
        .await
        .map_err(|e| fail("creating the probe namespace", e))?;
    for (pod, node) in &pods {
        guard.apply(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": ns, "labels": {"app": APP}},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node},
                "tolerations": [{"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{
                    "name": "netexec", "image": v.probe_image,
                    "args": ["netexec", format!("--http-port={PORT}"), "--udp-port=-1"],
                    "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                }],
                "terminationGracePeriodSeconds": 0,
            },
        }))
        .await
        .map_err(|e| fail(&format!("creating probe pod {pod}"), e))?;
    }
    guard.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": APP, "namespace": ns},
        "spec": {"selector": {"app": APP}, "ports": [{"port": PORT, "targetPort": PORT, "protocol": "TCP"}]},
    }))
    .await
    .map_err(|e| fail("creating the probe Service", e))?;
    cx.events.observe(format!(
        "created {} netexec pod(s) and Service {APP} in {ns}",
        pods.len()
    ));

    // Wait (watching) for every probe pod to run.
    let papi: Api<Pod> = Api::namespaced(kube.client(), &ns);
    let mut ips = Vec::new();
    for (pod, node) in &pods {
        let waited = tokio::time::timeout(
            v.timeout,
            await_condition(papi.clone(), pod, conditions::is_pod_running()),
        )
        .await;
        let p = match waited {
            Ok(Ok(Some(p))) => p,
            _ => {
                let phase = papi
                    .get_opt(pod)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|p| p.status)
                    .and_then(|s| s.phase)
                    .unwrap_or_else(|| "missing".into());
                guard.remove().await;
                return Ok(Outcome::new(Verdict::Fail, format!("probe pod {pod} on {node} is not running ({phase}) after {}", humantime::format_duration(v.timeout)))
                    .remediation("check that the node can pull the probe image (lab verify.probe_image) and that its CNI runs"));
            }
        };
        let ip = p.status.and_then(|s| s.pod_ip).unwrap_or_default();
        ips.push((pod.clone(), node.clone(), ip));
    }
    let svc: Api<Service> = Api::namespaced(kube.client(), &ns);
    let cluster_ip = svc
        .get(APP)
        .await
        .ok()
        .and_then(|s| s.spec)
        .and_then(|s| s.cluster_ip)
        .unwrap_or_default();

    // Which pairs: all of them for a small cluster, the next two neighbours for a large one.
    let n = ips.len();
    let mut pairs = Vec::new();
    for i in 0..n {
        if n <= 8 {
            pairs.extend((0..n).filter(|j| *j != i).map(|j| (i, j)));
        } else {
            pairs.push((i, (i + 1) % n));
            pairs.push((i, (i + 2) % n));
        }
    }
    let mut failures = Vec::new();
    let mut evidence = Vec::new();
    for (i, j) in &pairs {
        let (from, from_node, _) = &ips[*i];
        let (to, to_node, ip) = &ips[*j];
        match dial(kube, &ns, from, ip, PORT).await {
            Ok(h) if h == *to => evidence.push(format!("{from_node} → {to_node}: {to} answered")),
            Ok(h) => failures.push(format!(
                "{from_node} → {to_node}: {ip} answered as {h}, not {to}"
            )),
            Err(e) => failures.push(format!(
                "{from_node} → {to_node} ({from} → {to} at {ip}): {e}"
            )),
        }
    }
    let (from, from_node, _) = &ips[0];
    let service_ok = match dial(kube, &ns, from, &cluster_ip, PORT).await {
        Ok(h) if ips.iter().any(|(p, _, _)| *p == h) => {
            evidence.push(format!(
                "{from_node} → Service {APP} ({cluster_ip}): {h} answered"
            ));
            true
        }
        Ok(h) => {
            failures.push(format!(
                "Service {APP} ({cluster_ip}) answered as {h}, not a probe pod"
            ));
            false
        }
        Err(e) => {
            failures.push(format!("{from_node} → Service {APP} ({cluster_ip}): {e}"));
            false
        }
    };
    guard.remove().await;
    let ok_pairs = pairs.len() - failures.len() + usize::from(!service_ok);
    let mut o = match failures.first() {
        None => Outcome::pass(format!(
            "pod-to-pod across {n} nodes ({} pairs) and pod-to-service all answered",
            pairs.len()
        )),
        Some(first) => {
            let mut o = Outcome::new(Verdict::Fail, format!("{} of {} path(s) failed: {first}", failures.len(), pairs.len() + 1))
                .remediation("pod traffic between these nodes is dropped: check `cilium status` on both nodes, the MTU (an auto-detected MTU drops large packets) and any firewall between the hosts");
            for f in failures.iter().skip(1) {
                o = o.evidence(f.clone());
            }
            o
        }
    };
    for e in evidence {
        o = o.evidence(e);
    }
    Ok(o.metric("paths_ok", ok_pairs as f64, "paths").metric(
        "paths_tested",
        (pairs.len() + 1) as f64,
        "paths",
    ))
}

//! `dod::connectivity` — Step 6 "connectivity test passes": pod-to-pod across nodes and
//! pod-to-service.
//!
//! Proves (deployment plan, Step 6 and Definition of Done): done the way Kubernetes' own
//! network e2e tests do it (test/e2e/network: agnhost `netexec` pods, reached through the API
//! server's proxy, asked to `/dial` each other). A DaemonSet puts one probe pod on every
//! schedulable node — control planes included (the probe tolerates their taint); NotReady,
//! cordoned or otherwise tainted nodes are left out — with a Service, in
//! `verify.probe_namespace`, image `verify.probe_image` (a mirror's, where registry.k8s.io is
//! unreachable); one watch sees them run. Pods dial each other by IP — every pair on a small
//! cluster, 20 pairs sampled over the nodes on a large one, so the request count does not grow
//! with the cluster — and one pod dials the Service's ClusterIP. The workload is deleted
//! afterwards, also on failure, timeout or cancellation. With `--dry-run` nothing is created:
//! the scenario says what it would create.

use futures::StreamExt;
use futures::future::BoxFuture;
use harness::kube::KubeClient;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::{kube, name};
use crate::workload::{
    CONTROL_PLANE_TAINT, NETEXEC_PORT as PORT, Workload, netexec_pod_spec, netexec_service,
};

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

const APP: &str = "clusterproof-netexec";

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

/// Dials between probe pods: every ordered pair while there are at most this many, else this
/// many pairs sampled over the nodes — so the requests `verify` sends do not grow with the
/// cluster (a scheduled run against 500 nodes costs what one against 5 does).
const MAX_PAIRS: usize = 20;

/// The (from, to) probe indices to dial among `n` probes.
fn pairs(n: usize) -> Vec<(usize, usize)> {
    if n < 2 {
        return Vec::new();
    }
    if n * (n - 1) <= MAX_PAIRS {
        return (0..n)
            .flat_map(|i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
            .collect();
    }
    // Sources spread evenly over the nodes; each dials at a different distance, so both
    // neighbours and far nodes (other hosts, other racks) are covered.
    (0..MAX_PAIRS)
        .map(|k| {
            let i = k * n / MAX_PAIRS;
            let j = (i + 1 + (k * 7) % (n - 1)) % n;
            (i, j)
        })
        .collect()
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let v = &cx.lab.spec.lab.verify;
    let kube = kube(cx).await?;
    let mut nodes: Vec<String> = kube
        .nodes()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?
        .iter()
        .filter(|n| schedulable(n))
        .map(|n| name(n).to_string())
        .collect();
    nodes.sort();
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
    let dials = pairs(nodes.len());
    if cx.lab.dry_run {
        return Ok(Outcome::skip(format!(
            "dry run: would create namespace {ns}, DaemonSet and Service {APP} ({} on each of {} schedulable nodes), dial {} pod pair(s) and the Service, then delete them",
            v.probe_image,
            nodes.len(),
            dials.len()
        )));
    }
    let fail = |what: &str, e: harness::kube::KubeError| Outcome::error(format!("{what}: {e}"));
    let mut guard = Workload::in_namespace(kube, &ns)
        .await
        .map_err(|e| fail("creating the probe namespace", e))?;
    let labels = json!({"app": APP});
    guard
        .apply(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": APP, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    // Only the schedulable nodes: a DaemonSet would also place pods on
                    // cordoned or NotReady ones, which are not what this tests.
                    "spec": netexec_pod_spec(&v.probe_image, json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{
                            "key": "kubernetes.io/hostname", "operator": "In", "values": nodes,
                        }]}],
                    }}})),
                },
            },
        }))
        .await
        .map_err(|e| fail("creating the probe DaemonSet", e))?;
    guard
        .apply(netexec_service(APP, &labels))
        .await
        .map_err(|e| fail("creating the probe Service", e))?;
    cx.events.observe(format!(
        "created DaemonSet and Service {APP} in {ns} for {} node(s)",
        nodes.len()
    ));

    // Wait — one watch of the probe pods — for a running pod with an IP on every node.
    let papi: Api<Pod> = Api::namespaced(kube.client(), &ns);
    let mut running: std::collections::BTreeMap<String, (String, String)> = Default::default();
    let wanted: std::collections::BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
    let watched = tokio::time::timeout(v.timeout, async {
        let cfg = watcher::Config::default().labels(&format!("app={APP}"));
        let mut events = std::pin::pin!(watcher::watcher(papi.clone(), cfg).default_backoff());
        while let Some(ev) = events.next().await {
            let pod = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                _ => continue,
            };
            let (Some(node), Some(st)) = (
                pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                pod.status.as_ref(),
            ) else {
                continue;
            };
            let ip = st.pod_ip.clone().unwrap_or_default();
            if st.phase.as_deref() == Some("Running")
                && !ip.is_empty()
                && pod.metadata.deletion_timestamp.is_none()
            {
                running.insert(node, (pod.metadata.name.clone().unwrap_or_default(), ip));
            } else {
                running.remove(&node);
            }
            if wanted.iter().all(|n| running.contains_key(*n)) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !watched {
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|n| !running.contains_key(**n))
            .copied()
            .collect();
        guard.remove().await;
        return Ok(Outcome::new(
            Verdict::Fail,
            format!(
                "no running probe pod on {} of {} node(s) after {}: {}",
                missing.len(),
                nodes.len(),
                humantime::format_duration(v.timeout),
                missing.iter().take(5).copied().collect::<Vec<_>>().join(", ")
            ),
        )
        .remediation("check that the nodes can pull the probe image (lab verify.probe_image) and that their CNI runs"));
    }
    let ips: Vec<(String, String, String)> = nodes
        .iter()
        .map(|n| {
            let (pod, ip) = running[n].clone();
            (pod, n.clone(), ip)
        })
        .collect();
    let svc: Api<Service> = Api::namespaced(kube.client(), &ns);
    let cluster_ip = svc
        .get(APP)
        .await
        .ok()
        .and_then(|s| s.spec)
        .and_then(|s| s.cluster_ip)
        .unwrap_or_default();

    let n = ips.len();
    let mut failures = Vec::new();
    let mut evidence = Vec::new();
    for (i, j) in &dials {
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
    let ok_pairs = dials.len() - failures.len() + usize::from(!service_ok);
    let mut o = match failures.first() {
        None => Outcome::pass(format!(
            "pod-to-pod across {n} nodes ({} pairs) and pod-to-service all answered",
            dials.len()
        )),
        Some(first) => {
            let mut o = Outcome::new(Verdict::Fail, format!("{} of {} path(s) failed: {first}", failures.len(), dials.len() + 1))
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
        (dials.len() + 1) as f64,
        "paths",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_clusters_dial_every_pair_large_ones_a_fixed_sample() {
        assert_eq!(pairs(1), vec![]);
        assert_eq!(pairs(2), vec![(0, 1), (1, 0)]);
        assert_eq!(pairs(5).len(), 20, "5 nodes: every ordered pair");
        for n in [6, 50, 200, 500] {
            let p = pairs(n);
            assert_eq!(p.len(), MAX_PAIRS, "{n} nodes");
            assert!(
                p.iter().all(|(i, j)| i != j && *i < n && *j < n),
                "{n}: {p:?}"
            );
            let sources: std::collections::BTreeSet<_> = p.iter().map(|(i, _)| *i).collect();
            assert_eq!(
                sources.len(),
                MAX_PAIRS.min(n),
                "{n}: sources spread: {p:?}"
            );
        }
    }
}

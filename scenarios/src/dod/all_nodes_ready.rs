//! `dod::all_nodes_ready` — "kubectl get nodes shows all 5 nodes Ready".
//!
//! Proves (deployment plan, Definition of Done): exactly the nodes the template asks for (its
//! machine sets' sizes summed), all Ready, no stray node (one that is not a VM of this cluster's
//! machine sets: its name does not start with the cluster name), and no
//! `node.kubernetes.io/not-ready` or `unreachable` taint left behind. Waits with a watch up to
//! `verify.timeout`, so a node turning Ready a moment later passes.

use futures::future::BoxFuture;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario};
use k8s_openapi::api::core::v1::Node;

use super::{expected, from_problems, health_taints, kube, name, ready, why_not_ready};

pub struct AllNodesReady;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "dod::all_nodes_ready",
    module: module_path!(),
    phase: Phase::Verify,
    proves: "Definition of Done: kubectl get nodes shows all 5 nodes Ready (exactly the template's nodes, no stray node, no not-ready/unreachable taint)",
    needs: &[Need::Spec, Need::Kube],
    after: &[],
};

impl Scenario for AllNodesReady {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

/// Everything wrong with this set of nodes, first problem first.
fn problems(nodes: &[Node], want: usize, cluster: &str) -> Vec<String> {
    let mut p = Vec::new();
    if nodes.len() != want {
        p.push(format!(
            "{} node(s), the template asks for {want}",
            nodes.len()
        ));
    }
    for n in nodes {
        if !ready(n) {
            p.push(format!("{} is not Ready: {}", name(n), why_not_ready(n)));
        }
        let taints = health_taints(n);
        if !taints.is_empty() {
            p.push(format!("{} still has {}", name(n), taints.join(", ")));
        }
        if !cluster.is_empty() && !name(n).starts_with(cluster) {
            p.push(format!(
                "{} is not a node of cluster {cluster}'s machine sets (a stray node)",
                name(n)
            ));
        }
    }
    p
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let e = expected(cx)?;
    let want = e.control_planes + e.workers;
    let cluster = cx
        .lab
        .spec
        .template
        .cluster_name()
        .unwrap_or_default()
        .to_string();
    let kube = kube(cx).await?;
    let nodes = match kube
        .wait_nodes(
            &format!("exactly {want} nodes, all Ready and untainted"),
            cx.lab.spec.lab.verify.timeout,
            |ns| problems(ns, want, &cluster).is_empty(),
        )
        .await
    {
        Ok(ns) => ns,
        Err(harness::kube::KubeError::Timeout { .. }) => kube
            .nodes()
            .await
            .map_err(|e| Outcome::error(e.to_string()))?,
        Err(err) => return Err(Outcome::error(err.to_string())),
    };
    let found = problems(&nodes, want, &cluster);
    let ready_count = nodes.iter().filter(|n| ready(n)).count();
    let mut o = from_problems(
        &found,
        format!("{want}/{want} nodes Ready, none stray or tainted"),
        "`kubectl describe node NAME` shows why; a node that never turns Ready after the CNI install usually has no CNI configuration (Cilium agent not running there)",
    );
    for n in &nodes {
        o = o.evidence(format!(
            "{}: {}",
            name(n),
            if ready(n) {
                "Ready".into()
            } else {
                why_not_ready(n)
            }
        ));
    }
    Ok(o.metric("nodes_ready", ready_count as f64, "nodes").metric(
        "nodes_expected",
        want as f64,
        "nodes",
    ))
}

//! `provision::kubeconfig` — Step 4: get a kubeconfig and see every node.
//!
//! Proves (deployment plan): Step 4 "Get Kubeconfig" and its validation "All 5 nodes exist,
//! NotReady is expected (no CNI yet)" — the count comes from the template.
//!
//! Corrects the plan: `omnictl kubeconfig -c NAME > file` writes nothing to the file (omnictl
//! never prints the kubeconfig; it merges into ~/.kube/config), and its default kubeconfig logs
//! in through a browser. The harness asks for a service-account kubeconfig written to a path:
//! `omnictl kubeconfig <run dir>/kubeconfig -c NAME --service-account --user clusterproof
//! --merge=false --force` (`shared/reference/omni.md` §8).

use futures::future::BoxFuture;
use harness::kube::describe_nodes;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct Kubeconfig;

/// The token subject of the service-account kubeconfig.
pub const USER: &str = "clusterproof";

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "provision::kubeconfig",
    module: module_path!(),
    phase: Phase::Provision,
    proves: "Step 4: Get Kubeconfig (validation: all nodes exist; NotReady expected before the CNI)",
    needs: &[Need::Spec, Need::Omni],
    after: &[&super::cluster::META],
};

impl Scenario for Kubeconfig {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let lab = &cx.lab;
    let omni = lab.omni()?;
    let cluster = lab
        .spec
        .template
        .cluster_name()
        .ok_or_else(|| Outcome::error("the template names no cluster"))?;
    let path = lab.kubeconfig_path();
    omni.kubeconfig(cluster, &path, USER)
        .await
        .map_err(|e| Outcome::new(Verdict::Fail, format!("omnictl kubeconfig failed: {e}")))?;
    cx.events.observe(format!(
        "service-account kubeconfig written to {}",
        path.display()
    ));
    let kube = lab
        .kube()
        .await
        .map_err(|e| Outcome::new(Verdict::Fail, e.to_string()))?;
    let want = lab.spec.planned_vms().0.len();
    let timeout = lab.spec.lab.cluster.provision_timeout;
    match kube
        .wait_nodes(&format!("{want} nodes to exist"), timeout, |n| {
            n.len() >= want
        })
        .await
    {
        Ok(nodes) => Ok(Outcome::pass(format!(
            "kubeconfig works; {}/{want} nodes exist ({})",
            nodes.len(),
            describe_nodes(&nodes)
        ))
        .evidence(format!("API server {}", kube.server()))),
        Err(e) => Ok(Outcome::new(
            Verdict::Fail,
            format!("the cluster does not show {want} nodes: {e}"),
        )),
    }
}

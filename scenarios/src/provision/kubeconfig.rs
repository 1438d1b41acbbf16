//! `provision::kubeconfig` — Step 4: get a kubeconfig and see every node.
//!
//! Proves (deployment plan): Step 4 "Get Kubeconfig" and its validation "All 5 nodes exist,
//! NotReady is expected (no CNI yet)" — the count comes from the template.
//!
//! Corrects the plan: `omnictl kubeconfig -c NAME > file` writes nothing to the file (omnictl
//! never prints the kubeconfig; it merges into ~/.kube/config), and its default kubeconfig logs
//! in through a browser. Unless the lab names a kubeconfig, the harness asks for a
//! service-account kubeconfig written to a private file under the state directory (never the
//! report directory: it holds a bearer token): `omnictl kubeconfig <file> -c NAME
//! --service-account --user clusterproof --merge=false --force` (`shared/reference/omni.md` §8;
//! see `Lab::kube`).

use futures::future::BoxFuture;
use harness::kube::describe_nodes;
use harness::model::lab::Kubernetes;
use harness::scenario::{
    Context, Meta, Need, Outcome, Phase, SERVICE_ACCOUNT_USER, Scenario, Verdict,
};

pub struct Kubeconfig;

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
    let kube = lab
        .kube()
        .await
        .map_err(|e| Outcome::new(Verdict::Fail, e.to_string()))?;
    cx.events.observe(match &lab.spec.lab.kubernetes {
        Kubernetes::Kubeconfig { path, .. } => {
            format!("using the lab's kubeconfig {}", path.display())
        }
        Kubernetes::Omni => format!(
            "service-account kubeconfig for user {SERVICE_ACCOUNT_USER} obtained from Omni (kept in a private file under {})",
            lab.spec.lab.state_dir.display()
        ),
    });
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

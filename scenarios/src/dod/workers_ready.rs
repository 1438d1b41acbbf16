//! `dod::workers_ready` — "2 worker nodes running and Ready".
//!
//! Proves (deployment plan, Definition of Done): the sum of the template's Workers sizes of
//! nodes without the control-plane role, each Ready (waiting with a watch up to
//! `verify.timeout`); Omni agrees (each worker machine's ClusterMachineStatus ready, RUNNING and
//! connected).

use futures::future::BoxFuture;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario};

use super::{expected, kube, omni_members, omni_problems, role_outcome, wait_role};

pub struct WorkersReady;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "dod::workers_ready",
    module: module_path!(),
    phase: Phase::Verify,
    proves: "Definition of Done: 2 worker nodes running and Ready (count from the template's Workers sizes)",
    needs: &[Need::Spec, Need::Kube],
    after: &[],
};

impl Scenario for WorkersReady {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let want = expected(cx)?.workers;
    let kube = kube(cx).await?;
    let (nodes, held) = wait_role(cx, kube, false, want).await?;
    let omni = omni_members(cx, "omni.sidero.dev/role-worker")
        .await?
        .map(|m| omni_problems(&m, want, "worker"));
    Ok(role_outcome("worker", want, &nodes, held, omni).metric(
        "worker_nodes_ready",
        nodes.iter().filter(|n| super::ready(n)).count() as f64,
        "nodes",
    ))
}

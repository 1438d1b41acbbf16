//! `provision::cilium` — Step 5: Gateway API CRDs, `cilium install` with the Talos settings,
//! and every node turns Ready.
//!
//! Proves (deployment plan): Step 5 "Install Cilium" (validation: `cilium status --wait`, all
//! nodes Ready); Risk "Cilium install fails → use exact Talos settings". The values are the lab's
//! `[cilium.values]` (default: the plan's values plus MTU 1450); the CRDs come from
//! `cilium.gateway_api_crds` (URL or file).
//!
//! Idempotent: when Cilium already runs with the asked configuration, nothing is installed.

use futures::future::BoxFuture;
use harness::kube::{describe_nodes, node_ready};
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct Cilium;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "provision::cilium",
    module: module_path!(),
    phase: Phase::Provision,
    proves: "Step 5: Install Cilium with the Talos settings (validation: all nodes Ready)",
    needs: &[Need::Spec, Need::Kube],
    after: &[&super::kubeconfig::META],
};

impl Scenario for Cilium {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    super::may_change(cx)?;
    let lab = &cx.lab;
    let c = &lab.spec.lab.cilium;
    let kube = lab
        .kube()
        .await
        .map_err(|e| Outcome::new(Verdict::Fail, e.to_string()))?;

    // Gateway API CRDs, as `kubectl apply -f <url or file>`.
    let manifest = harness::cilium::read_manifest(&c.gateway_api_crds)
        .await
        .map_err(|e| Outcome::new(Verdict::Fail, e.to_string()))?;
    let applied = kube
        .apply_yaml(&manifest, "clusterproof")
        .await
        .map_err(|e| Outcome::new(Verdict::Fail, format!("applying the Gateway API CRDs: {e}")))?;
    cx.events
        .observe(format!("applied {} Gateway API object(s)", applied.len()));

    let before = harness::cilium::status(kube)
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let installed = if before.agent.is_some() && before.config_mismatches(&c.values).is_empty() {
        "already installed with these values".to_string()
    } else {
        let kubeconfig = lab
            .kubeconfig_file()
            .await
            .map_err(|e| Outcome::new(Verdict::Fail, e.to_string()))?;
        let out = harness::cilium::install(&c.cli, kubeconfig, &c.values, lab.spec.lab.cluster.provision_timeout.max(std::time::Duration::from_secs(60)))
            .await
            .map_err(|e| Outcome::new(Verdict::Fail, format!("{e}")).remediation("Risk \"Cilium install fails\": check that the template disables kube-proxy and the default CNI (preflight::template) and use the exact Talos values"))?;
        cx.events
            .observe_with("cilium install", serde_json::json!({ "stdout": out }));
        format!("installed with {} value(s)", c.values.len())
    };

    let want = lab.spec.planned_vms().0.len();
    let ready = kube
        .wait_nodes(
            &format!("{want} nodes Ready"),
            lab.spec.lab.cluster.provision_timeout,
            |n| n.len() >= want && n.iter().all(|x| node_ready(x) == Some("True")),
        )
        .await;
    let status = harness::cilium::status(kube)
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let mismatches = status.config_mismatches(&c.values);
    match ready {
        Ok(nodes) if mismatches.is_empty() => Ok(Outcome::pass(format!("Cilium {installed}; {}/{want} nodes Ready", nodes.len())).evidence(describe_nodes(&nodes))),
        Ok(_) => Ok(Outcome::new(Verdict::Fail, format!("nodes are Ready but Cilium runs with other settings: {}", mismatches.join("; ")))),
        Err(e) => Ok(Outcome::new(Verdict::Fail, format!("Cilium {installed}, but {e}")).remediation("nodes stay NotReady until the Cilium agent runs on them: `cilium status --wait` and the agent pods' logs tell why")),
    }
}

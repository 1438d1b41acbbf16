//! `dod::cilium_healthy` — "Cilium installed and healthy".
//!
//! Proves (deployment plan, Definition of Done; Step 5 and Risk "Cilium install fails → use
//! exact Talos settings"): the agent DaemonSet is scheduled and ready on every node, the operator
//! is available at its configured replica count, and `cilium-config` matches the install: kube-
//! proxy replacement, KubePrism `localhost:7445` as the agent's API server, IPAM kubernetes,
//! Gateway API when asked, and the lab's MTU. A missing `mtu` means Cilium auto-detects it
//! from the host interface — on the plan's network that is the silent cause of large packets
//! being dropped — so it fails with that diagnosis. Waits for the agents with a watch on the
//! DaemonSet (`await_condition`) up to `verify.timeout`.

use futures::future::BoxFuture;
use harness::cilium::{AGENT, NAMESPACE};
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::Api;
use kube::runtime::wait::await_condition;

use super::kube;

pub struct CiliumHealthy;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "dod::cilium_healthy",
    module: module_path!(),
    phase: Phase::Verify,
    proves: "Definition of Done: Cilium installed and healthy (agent on every node, operator available, config as installed: kube-proxy replacement, KubePrism localhost:7445, IPAM, Gateway API, MTU)",
    needs: &[Need::Spec, Need::Kube],
    after: &[],
};

impl Scenario for CiliumHealthy {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let kube = kube(cx).await?;
    let nodes = kube
        .nodes()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?
        .len() as i32;
    // Wait (watching) for an agent on every node, all ready.
    let api: Api<DaemonSet> = Api::namespaced(kube.client(), NAMESPACE);
    let all_ready = move |ds: Option<&DaemonSet>| {
        ds.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.desired_number_scheduled == nodes && s.number_ready == nodes)
    };
    let waited = tokio::time::timeout(
        cx.lab.spec.lab.verify.timeout,
        await_condition(api, AGENT, all_ready),
    )
    .await;
    cx.events.observe(match &waited {
        Ok(_) => format!("cilium agents ready on all {nodes} nodes"),
        Err(_) => format!("cilium agents not ready on all {nodes} nodes within verify.timeout"),
    });
    let s = harness::cilium::status(kube)
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let values = &cx.lab.spec.lab.cilium.values;
    let mut problems = Vec::new();
    match s.agent {
        None => {
            problems.push("Cilium is not installed: no DaemonSet kube-system/cilium".to_string())
        }
        Some((desired, ready)) => {
            if desired != nodes {
                problems.push(format!(
                    "the Cilium agent is scheduled on {desired} of {nodes} nodes"
                ));
            }
            if ready != desired {
                problems.push(format!("{ready} of {desired} Cilium agents are ready"));
            }
        }
    }
    let operator_want = values
        .get("operator.replicas")
        .and_then(|v| v.parse::<i32>().ok());
    match s.operator {
        None => problems.push("no cilium-operator Deployment".to_string()),
        Some((avail, spec)) => {
            let want = operator_want.unwrap_or(spec);
            if avail < want {
                problems.push(format!(
                    "cilium-operator has {avail} of {want} replicas available"
                ));
            }
        }
    }
    let mismatches = s.config_mismatches(values);
    let mtu_problem = mismatches.iter().find(|m| m.starts_with("MTU=")).cloned();
    problems.extend(
        mismatches
            .iter()
            .filter(|m| !m.starts_with("MTU="))
            .cloned(),
    );
    if let Some(m) = &mtu_problem {
        let tunnel = s.config.get("routing-mode").is_some_and(|r| r == "tunnel")
            || s.config.contains_key("tunnel-protocol");
        problems.push(if s.config.contains_key("mtu") {
            format!("{m}: the running MTU is not the lab's")
        } else if tunnel {
            format!("{m}: Cilium auto-detects the MTU and subtracts its tunnel overhead, not the lab's expected MTU")
        } else {
            format!("{m}: Cilium auto-detects the MTU from the host interface instead of using the lab's")
        });
    }
    let mut o = match problems.first() {
        None => Outcome::pass(format!(
            "Cilium healthy: agent ready on {nodes}/{nodes} nodes, operator available, config as installed"
        )),
        Some(first) => {
            let mut o = Outcome::new(Verdict::Fail, first.clone());
            o = o.remediation(if mtu_problem.is_some() {
                "reinstall Cilium with the MTU set explicitly (`--set MTU=<lab MTU>`, lab [cilium.values] MTU); an auto-detected MTU drops large packets between nodes"
            } else {
                "Risk \"Cilium install fails\": reinstall with the exact Talos settings of Step 5 (`cilium install` with ipam.mode=kubernetes, kubeProxyReplacement=true, k8sServiceHost=localhost, k8sServicePort=7445, cgroup settings)"
            });
            for p in problems.iter().skip(1) {
                o = o.evidence(p.clone());
            }
            o
        }
    };
    for key in [
        "kube-proxy-replacement",
        "ipam",
        "enable-gateway-api",
        "mtu",
        "routing-mode",
    ] {
        o = o.evidence(format!(
            "cilium-config {key}: {}",
            s.config.get(key).map(String::as_str).unwrap_or("(not set)")
        ));
    }
    for key in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] {
        o = o.evidence(format!(
            "agent {key}: {}",
            s.agent_env
                .get(key)
                .map(String::as_str)
                .unwrap_or("(not set)")
        ));
    }
    if let Some((desired, ready)) = s.agent {
        o = o
            .metric("cilium_agents_ready", ready as f64, "pods")
            .metric("cilium_agents_desired", desired as f64, "pods");
    }
    Ok(o)
}

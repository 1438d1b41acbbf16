//! Definition of Done: each line of the plan's DoD as a scenario, checked on a running cluster
//! (right after provisioning, or on a schedule with `clusterproof verify`). Counts and names come
//! from the template; every check waits with watches up to the lab's `verify.timeout`, so a node
//! that turns Ready a moment later passes instead of failing on the first look.

pub mod all_nodes_ready;
pub mod cilium_healthy;
pub mod connectivity;
pub mod control_plane_ready;
pub mod core_pods;
pub mod workers_ready;

use harness::kube::{KubeClient, is_control_plane, node_ready};
use harness::model::template::SetKind;
use harness::omni::Resource;
use harness::scenario::{Context, Outcome, Verdict};
use k8s_openapi::api::core::v1::Node;

/// How many nodes of each role the template asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected {
    pub control_planes: usize,
    pub workers: usize,
}

#[allow(clippy::result_large_err)]
pub(crate) fn expected(cx: &Context) -> Result<Expected, Outcome> {
    let mut e = Expected {
        control_planes: 0,
        workers: 0,
    };
    for set in cx.lab.spec.template.machine_sets() {
        let Some(n) = set.planned_count().map(|n| n as usize) else {
            return Err(Outcome::error(format!(
                "machine set {} has an unlimited size: the number of nodes to expect is unknown",
                set.machine_set_id(cx.lab.spec.template.cluster_name().unwrap_or("cluster"))
            )));
        };
        match set.kind {
            SetKind::ControlPlane => e.control_planes += n,
            _ => e.workers += n,
        }
    }
    Ok(e)
}

/// The Kubernetes client, or a failed outcome saying why there is none.
pub(crate) async fn kube(cx: &Context) -> Result<&KubeClient, Outcome> {
    cx.lab.kube().await.map_err(|e| {
        Outcome::new(Verdict::Fail, format!("cannot reach the cluster: {e}"))
            .remediation("check the lab's [kubernetes] section, or that Omni can issue a service-account kubeconfig for the cluster")
    })
}

pub(crate) fn name(n: &Node) -> &str {
    n.metadata.name.as_deref().unwrap_or("?")
}

pub(crate) fn ready(n: &Node) -> bool {
    node_ready(n) == Some("True")
}

/// Taints a node carries while the node lifecycle controller considers it unhealthy.
pub(crate) fn health_taints(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .filter(|t| {
                    t.key == "node.kubernetes.io/not-ready"
                        || t.key == "node.kubernetes.io/unreachable"
                })
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

/// The Ready condition's reason and message, for a node that is not Ready.
pub(crate) fn why_not_ready(n: &Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| {
            format!(
                "Ready={} ({}: {})",
                c.status,
                c.reason.as_deref().unwrap_or("no reason"),
                c.message.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_else(|| "no Ready condition".into())
}

/// Wait (watching the nodes) until the nodes of one role are `want` in number and all Ready;
/// the nodes of that role as last seen either way, and whether the condition held.
pub(crate) async fn wait_role(
    cx: &Context,
    kube: &KubeClient,
    control_plane: bool,
    want: usize,
) -> Result<(Vec<Node>, bool), Outcome> {
    let role = |ns: &[Node]| -> Vec<Node> {
        ns.iter()
            .filter(|n| is_control_plane(n) == control_plane)
            .cloned()
            .collect()
    };
    let timeout = cx.lab.spec.lab.verify.timeout;
    let what = if control_plane {
        format!("{want} control-plane node(s) Ready")
    } else {
        format!("{want} worker node(s) Ready")
    };
    match kube
        .wait_nodes(&what, timeout, |ns| {
            let r = role(ns);
            r.len() == want && r.iter().all(ready)
        })
        .await
    {
        Ok(ns) => Ok((role(&ns), true)),
        Err(harness::kube::KubeError::Timeout { .. }) => {
            let ns = kube
                .nodes()
                .await
                .map_err(|e| Outcome::error(e.to_string()))?;
            Ok((role(&ns), false))
        }
        Err(e) => Err(Outcome::error(e.to_string())),
    }
}

/// Omni's ClusterMachineStatus of every machine of the cluster with the given role label
/// (`omni.sidero.dev/role-controlplane` or `-worker`); `None` when the run has no Omni.
pub(crate) async fn omni_members(
    cx: &Context,
    role: &str,
) -> Result<Option<Vec<Resource>>, Outcome> {
    let Some(omni) = cx.lab.omni.as_ref() else {
        return Ok(None);
    };
    let cluster = cx.lab.spec.template.cluster_name().unwrap_or_default();
    let all = omni
        .get("ClusterMachineStatuses.omni.sidero.dev", None)
        .await
        .map_err(|e| Outcome::error(format!("omnictl get clustermachinestatus: {e}")))?;
    Ok(Some(
        all.into_iter()
            .filter(|r| r.metadata.label("omni.sidero.dev/cluster").as_deref() == Some(cluster))
            .filter(|r| r.metadata.label(role).is_some())
            .collect(),
    ))
}

/// Problems Omni reports for these machines: not ready, not RUNNING (stage 4), not connected.
pub(crate) fn omni_problems(members: &[Resource], want: usize, what: &str) -> Vec<String> {
    let mut p = Vec::new();
    if members.len() != want {
        p.push(format!(
            "Omni lists {} {what} machine(s), the template asks for {want}",
            members.len()
        ));
    }
    for m in members {
        let node = m
            .metadata
            .label("omni.sidero.dev/node-name")
            .unwrap_or_else(|| m.metadata.id.clone());
        if m.spec["ready"] != true {
            p.push(format!(
                "Omni: machine {} ({node}) is not ready",
                m.metadata.id
            ));
        }
        if m.spec["stage"] != 4 {
            p.push(format!(
                "Omni: machine {} ({node}) is in stage {} (4 = RUNNING)",
                m.metadata.id, m.spec["stage"]
            ));
        }
        if m.metadata.label("omni.sidero.dev/connected").is_none() {
            p.push(format!(
                "Omni: machine {} ({node}) is not connected",
                m.metadata.id
            ));
        }
    }
    p
}

/// Pass with `ok` when nothing is wrong; else fail on the first problem, with `fix` as the
/// remediation and the other problems as evidence.
pub(crate) fn from_problems(problems: &[String], ok: String, fix: &str) -> Outcome {
    match problems.first() {
        None => Outcome::pass(ok),
        Some(first) => {
            let mut o = Outcome::new(Verdict::Fail, first.clone()).remediation(fix);
            for p in &problems[1..] {
                o = o.evidence(p.clone());
            }
            o
        }
    }
}

/// A role scenario's outcome from the nodes seen and Omni's view.
pub(crate) fn role_outcome(
    what: &str,
    want: usize,
    nodes: &[Node],
    held: bool,
    omni: Option<Vec<String>>,
) -> Outcome {
    let mut problems: Vec<String> = Vec::new();
    if nodes.len() != want {
        problems.push(format!(
            "{} {what} node(s), the template asks for {want}",
            nodes.len()
        ));
    }
    for n in nodes.iter().filter(|n| !ready(n)) {
        problems.push(format!("{} is not Ready: {}", name(n), why_not_ready(n)));
    }
    let evidence: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{}: {}",
                name(n),
                if ready(n) {
                    "Ready".into()
                } else {
                    why_not_ready(n)
                }
            )
        })
        .collect();
    let omni_ok = match &omni {
        Some(p) => {
            problems.extend(p.iter().cloned());
            p.is_empty()
        }
        None => true,
    };
    let mut o = if problems.is_empty() && held {
        Outcome::pass(format!(
            "{want}/{want} {what} node(s) Ready{}",
            if omni.is_some() { "; Omni agrees" } else { "" }
        ))
    } else {
        let mut o = Outcome::new(Verdict::Fail, problems.first().cloned().unwrap_or_default());
        if !omni_ok || nodes.iter().any(|n| !ready(n)) {
            o = o.remediation("look at the node's Ready condition (`kubectl describe node NAME`) and its machine in Omni (`omnictl get clustermachinestatus`); a NotReady node whose CNI never came up points at the Cilium install (Step 5)");
        }
        for p in problems.iter().skip(1) {
            o = o.evidence(p.clone());
        }
        o
    };
    for e in evidence {
        o = o.evidence(e);
    }
    if omni.is_none() {
        o = o.evidence("Omni not connected in this run: its view was not compared");
    }
    o
}

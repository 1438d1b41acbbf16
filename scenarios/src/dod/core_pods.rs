//! `dod::core_pods` — Step 6 "no CrashLoopBackOff" (Definition of Done: the cluster's own pods
//! are healthy).
//!
//! Proves (deployment plan, Step 6 validation and Definition of Done): no kube-system pod in
//! CrashLoopBackOff, ImagePullBackOff / ErrImagePull, CreateContainerConfigError or Error, none
//! Pending past `verify.pending_bound`, and restart counts stable over `verify.restart_window`
//! (a pod that restarts during the window is crash-looping even when it happens to be Running at
//! one instant). Offenders are named with their container's last termination reason. Restarts
//! from before the window (a node reboot: last state `Unknown`, exit 255) are not offences.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::{from_problems, kube};

pub struct CorePods;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "dod::core_pods",
    module: module_path!(),
    phase: Phase::Verify,
    proves: "Step 6: no CrashLoopBackOff — no kube-system pod crash-looping, failing to pull, in Error or Pending too long; restart counts stable",
    needs: &[Need::Spec, Need::Kube],
    after: &[],
};

impl Scenario for CorePods {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

const BAD_WAITING: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// `container: last terminated Error (exit 1)`, for the report.
fn last_termination(p: &Pod) -> String {
    let mut out = Vec::new();
    for c in p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(t) = c.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
            out.push(format!(
                "{}: last terminated {} (exit {})",
                c.name,
                t.reason.as_deref().unwrap_or("?"),
                t.exit_code
            ));
        }
    }
    if out.is_empty() {
        "no earlier termination recorded".into()
    } else {
        out.join("; ")
    }
}

/// Restart counts per pod and container.
fn restarts(pods: &[Pod]) -> BTreeMap<(String, String), i32> {
    let mut m = BTreeMap::new();
    for p in pods {
        for c in p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            m.insert((pod_name(p), c.name.clone()), c.restart_count);
        }
    }
    m
}

/// Whether container `name`'s last termination is the one a lost node leaves: reason
/// `Unknown`, exit code 255 (the kubelet's record of a container whose runtime state is gone).
fn lost_with_node(p: &Pod, name: &str) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == name)
        .filter_map(|c| c.last_state.as_ref()?.terminated.as_ref())
        .any(|t| t.exit_code == 255 && t.reason.as_deref() == Some("Unknown"))
}

/// Reasons of a pod the node itself ended — the kubelet's graceful node shutdown
/// (`Terminated`, "Pod was terminated in response to imminent node shutdown.", kubelet
/// `pkg/kubelet/nodeshutdown`; `Shutdown`/`NodeShutdown` in older kubelets) or an eviction
/// (`Evicted`). Their controller replaces them; they are not a crash.
const ENDED_BY_NODE: [&str; 4] = ["Terminated", "Shutdown", "NodeShutdown", "Evicted"];

/// What is wrong with one pod right now, if anything.
fn offence(p: &Pod, pending_bound: std::time::Duration) -> Option<String> {
    let st = p.status.as_ref()?;
    if st.phase.as_deref() == Some("Failed")
        && st
            .reason
            .as_deref()
            .is_some_and(|r| ENDED_BY_NODE.contains(&r))
    {
        return None;
    }
    for c in st.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(r) = w.reason.as_deref()
            && BAD_WAITING.contains(&r)
        {
            return Some(format!(
                "{} container {} is {r} ({} restart(s)); {}",
                pod_name(p),
                c.name,
                c.restart_count,
                last_termination(p)
            ));
        }
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            return Some(format!(
                "{} container {} terminated: {} (exit {})",
                pod_name(p),
                c.name,
                t.reason.as_deref().unwrap_or("Error"),
                t.exit_code
            ));
        }
    }
    match st.phase.as_deref() {
        Some("Failed") => Some(format!(
            "{} failed: {}",
            pod_name(p),
            st.reason.as_deref().unwrap_or("no reason")
        )),
        Some("Pending") => {
            let created = p.metadata.creation_timestamp.as_ref()?.0;
            let age = jiff::Timestamp::now().duration_since(created);
            let bound = jiff::SignedDuration::try_from(pending_bound).ok()?;
            (age > bound).then(|| {
                format!(
                    "{} is Pending for {}s (bound {}): {}",
                    pod_name(p),
                    age.as_secs(),
                    humantime::format_duration(pending_bound),
                    st.conditions
                        .iter()
                        .flatten()
                        .find(|c| c.type_ == "PodScheduled" && c.status != "True")
                        .and_then(|c| c.message.clone())
                        .unwrap_or_else(|| "not scheduled or not started".into())
                )
            })
        }
        _ => None,
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let kube = kube(cx).await?;
    let v = &cx.lab.spec.lab.verify;
    let api: Api<Pod> = Api::namespaced(kube.client(), "kube-system");
    let list = || async {
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .map_err(|e| Outcome::error(format!("listing kube-system pods: {e}")))
    };
    let before = list().await?;
    // The window is what is measured (restarts within it), not a wait for something.
    tokio::time::sleep(v.restart_window).await;
    let after = list().await?;
    let (r0, r1) = (restarts(&before), restarts(&after));
    let mut problems: Vec<String> = Vec::new();
    let mut reboots: Vec<String> = Vec::new();
    for (key, n1) in &r1 {
        if let Some(n0) = r0.get(key)
            && n1 > n0
        {
            let pod = after.iter().find(|p| pod_name(p) == key.0);
            // `Unknown` with exit 255: the container's state was lost with its node (a reboot
            // or a runtime restart) and the kubelet started it again — not a crash.
            if pod.is_some_and(|p| lost_with_node(p, &key.1)) {
                reboots.push(format!(
                    "{} container {} restarted after its node came back (last state Unknown, exit 255)",
                    key.0, key.1
                ));
                continue;
            }
            problems.push(format!(
                "{} container {} restarted {} time(s) within {}; {}",
                key.0,
                key.1,
                n1 - n0,
                humantime::format_duration(v.restart_window),
                pod.map(last_termination).unwrap_or_default()
            ));
        }
    }
    for p in before.iter().chain(after.iter()) {
        if let Some(o) = offence(p, v.pending_bound)
            && !problems.iter().any(|x| x.starts_with(&pod_name(p)))
        {
            problems.push(o);
        }
    }
    let mut o = from_problems(
        &problems,
        format!(
            "{} kube-system pod(s), none crash-looping, failing or stuck; restart counts stable over {}",
            after.len(),
            humantime::format_duration(v.restart_window)
        ),
        "`kubectl -n kube-system describe pod NAME` and `kubectl -n kube-system logs NAME --previous` show why the container exits",
    );
    for r in reboots {
        o = o.evidence(r);
    }
    for p in &after {
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let n: i32 = restarts(std::slice::from_ref(p)).values().sum();
        o = o.evidence(format!("{}: {phase}, {n} restart(s)", pod_name(p)));
    }
    Ok(o.metric("kube_system_pods", after.len() as f64, "pods")
        .metric("kube_system_offenders", problems.len() as f64, "pods"))
}

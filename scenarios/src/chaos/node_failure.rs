//! `chaos::node_failure` — Definition of Done: "Cluster survives single node failure (test by
//! stopping one VM)".
//!
//! Proves (deployment plan, Definition of Done, last line; DESIGN §4): one node's VM is stopped
//! through the Proxmox API and the cluster copes — the API server stays available, a canary
//! Service keeps answering, the node is noticed NotReady, its pods are replaced elsewhere — and
//! the cluster is whole again once the VM runs again. In order:
//!
//! 1. **Gate**: take the cluster-wide lock (Lease `kube-system/clusterproof-chaos`, by create;
//!    a second run refuses naming the holder), then run every Definition-of-Done scenario:
//!    any that does not pass → "refusing to inject into an unhealthy cluster", no VM touched.
//! 2. **Plan**: the victim (a worker by default; `chaos.target` / `--target`), chosen among the
//!    target's nodes by a seed (printed, `--seed N` replays it); node → VM by name, confirmed by
//!    SMBIOS UUID = Omni machine id; an HA-managed VM is refused unless `chaos.ha_managed =
//!    "disable"`; a control-plane victim is refused when its loss would cost etcd quorum.
//!    `--dry-run` ends here, having sent no mutating request.
//! 3. **Journal** the intent durably (`harness::chaos::journal`) before acting.
//! 4. **Inject**: the Proxmox power action (`stop`, `shutdown`, `reset`, `suspend`).
//! 5. **Observe** with watches — the node NotReady, the Omni machine disconnected, the canary's
//!    pods on the victim replaced elsewhere — while `/readyz` and the canary (agnhost netexec
//!    Deployment spread over the nodes, behind a Service, reached through the API server's
//!    proxy) are probed every `chaos.probe_interval`. A canary probe is a GET retried up to
//!    five times, as a client would: the proxy picks a random endpoint, and the dead node's
//!    pod stays one until the node is marked NotReady.
//! 6. **Restore**: start (or resume) the VM. The runner's restore stage does the same from the
//!    journal on every other path (failure, timeout, Ctrl-C, SIGTERM, panic); `clusterproof
//!    chaos recover` after a SIGKILL.
//! 7. **Verify recovery**: the VM running, the node Ready, its Cilium agent Ready, the Omni
//!    machine connected, and every Definition-of-Done scenario passing again.
//! 8. **Verdict** against the lab's SLOs and bounds, with the metrics: time to detect, to Omni
//!    disconnect, to reschedule, to recover; API and canary availability and probe counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use harness::chaos::journal::{HaState, Journal, Stage, VmRef};
use harness::chaos::{lock, restore_vm_and_record};
use harness::events::{Lane, MarkState};
use harness::kube::{KubeClient, is_control_plane};
use harness::model::lab::{ChaosTarget, HaPolicy, StopMode};
use harness::proxmox::{ProxmoxClient, VmAction};
use harness::scenario::{Context, Lab, Meta, Need, Outcome, Phase, Restored, Scenario, Verdict};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::dod::{name, ready};
use crate::workload::{Workload, netexec_pod_spec, netexec_service};

pub struct NodeFailure;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "chaos::node_failure",
    module: module_path!(),
    phase: Phase::Chaos,
    proves: "Definition of Done: cluster survives single node failure (test by stopping one VM)",
    needs: &[Need::Spec, Need::Proxmox, Need::Omni, Need::Kube],
    after: &[],
};

impl Scenario for NodeFailure {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let progress = Progress::new(&cx.events);
            tokio::select! {
                o = experiment(cx, &progress) => o.unwrap_or_else(|o| o),
                reason = cx.cancel.cancelled() => {
                    progress.outcome(Outcome::error(format!(
                        "interrupted ({reason}) while {}", progress.stage()
                    )))
                }
            }
        })
    }

    /// Gate (two verify passes) plus every bound of the experiment, with room.
    fn timeout(&self, lab: &Lab) -> Option<Duration> {
        let c = &lab.spec.lab.chaos;
        Some(
            lab.spec.lab.verify.timeout * 3
                + c.detect_timeout
                + c.reschedule_timeout
                + c.restore_timeout
                + c.recovery_timeout
                + Duration::from_secs(30),
        )
    }

    /// Whatever the experiment left undone, from the journal: the VM running again with its
    /// HA state, the lock released, the journal closed.
    fn restore<'a>(&'a self, cx: &'a Context) -> Option<(Duration, BoxFuture<'a, Restored>)> {
        // Starting the VM, then its node turning Ready, each within restore_timeout.
        let deadline = cx.lab.spec.lab.chaos.restore_timeout * 2 + Duration::from_secs(10);
        Some((
            deadline,
            Box::pin(async move {
                match harness::chaos::recover(&cx.lab).await {
                    Ok(r) if r.journal.is_none() => Ok(vec![]),
                    Ok(r) => {
                        cx.events
                            .mark(Lane::Vm, MarkState::Up, "VM restored by the restore stage");
                        Ok(
                            std::iter::once(
                                "restore stage: the journal was unfinished".to_string(),
                            )
                            .chain(
                                r.evidence
                                    .into_iter()
                                    .map(|l| format!("restore stage: {l}")),
                            )
                            .collect(),
                        )
                    }
                    Err(e) => Err(e.to_string()),
                }
            }),
        ))
    }
}

use harness::chaos::CANARY;

/// What the experiment has measured so far: an interrupted run still reports it. Each stage
/// is an observation on the timeline (`stage: …`).
#[derive(Clone)]
struct Progress(Arc<Mutex<ProgressInner>>, harness::events::Emitter);

#[derive(Default)]
struct ProgressInner {
    stage: &'static str,
    metrics: BTreeMap<String, (f64, &'static str)>,
    evidence: Vec<String>,
}

impl Progress {
    fn new(events: &harness::events::Emitter) -> Progress {
        Progress(Default::default(), events.clone())
    }
    fn at(&self, stage: &'static str) {
        self.0.lock().unwrap().stage = stage;
        self.1.observe(format!("stage: {stage}"));
    }
    fn stage(&self) -> &'static str {
        let s = self.0.lock().unwrap().stage;
        if s.is_empty() { "starting" } else { s }
    }
    fn metric(&self, name: &str, value: f64, unit: &'static str) {
        self.0
            .lock()
            .unwrap()
            .metrics
            .insert(name.into(), (value, unit));
    }
    fn evidence(&self, line: impl Into<String>) {
        self.0.lock().unwrap().evidence.push(line.into());
    }
    /// `o` with every metric and evidence line gathered so far.
    fn outcome(&self, mut o: Outcome) -> Outcome {
        let p = self.0.lock().unwrap();
        for (k, (v, u)) in &p.metrics {
            o = o.metric(k, *v, u);
        }
        let mut ev = p.evidence.clone();
        ev.append(&mut o.evidence);
        o.evidence = ev;
        o
    }
}

/// The victim, as planned.
struct Plan {
    node: String,
    control_plane: bool,
    machine_id: String,
    vm: VmRef,
    ha: Option<HaState>,
    seed: u64,
}

async fn experiment(cx: &Context, p: &Progress) -> Result<Outcome, Outcome> {
    let lab = &cx.lab.spec.lab;
    let c = &lab.chaos;
    if !cx.lab.allow_changes && !cx.lab.dry_run {
        return Ok(Outcome::skip(
            "the chaos experiment stops a VM: it runs only with --yes (or --dry-run to see the plan)",
        ));
    }
    let kube = crate::dod::kube(cx).await?.clone();
    let px = cx.lab.proxmox()?;
    let holder = lock::holder_identity();

    // 1. Gate: the lock, then a healthy cluster.
    p.at("taking the cluster lock");
    let guard = if cx.lab.dry_run {
        p.evidence("dry run: the cluster lock is not taken");
        None
    } else {
        match lock::acquire(kube.client(), &holder, c.lock_lease).await {
            Ok(g) => {
                cx.events.observe(format!(
                    "took the cluster lock {}/{} as {holder}",
                    lock::NAMESPACE,
                    lock::NAME
                ));
                Some(g)
            }
            Err(e @ lock::LockError::Held { .. }) => {
                return Ok(
                    Outcome::new(Verdict::Fail, format!("refusing to inject: {e}")).remediation(
                        "one chaos experiment at a time per cluster: wait for the other run to end",
                    ),
                );
            }
            Err(e) => return Err(Outcome::error(e.to_string())),
        }
    };
    // From here on the lock is released on every path that returns normally.
    let result = gated(
        cx,
        p,
        &kube,
        px,
        &holder,
        guard.as_ref().map(|g| g.reference()),
    )
    .await;
    if let Some(g) = guard
        && let Err(e) = g.release().await
    {
        p.evidence(format!(
            "the cluster lock was not released (it expires by itself): {e}"
        ));
    }
    result
}

async fn gated(
    cx: &Context,
    p: &Progress,
    kube: &KubeClient,
    px: &ProxmoxClient,
    holder: &str,
    lock_ref: Option<harness::chaos::journal::LockRef>,
) -> Result<Outcome, Outcome> {
    let lab = &cx.lab.spec.lab;
    let c = &lab.chaos;
    p.at("checking the cluster is healthy");
    let unhealthy = definition_of_done(cx).await;
    if !unhealthy.is_empty() {
        return Ok(Outcome::new(
            Verdict::Fail,
            format!(
                "refusing to inject into an unhealthy cluster: {}",
                unhealthy.join("; ")
            ),
        )
        .remediation(
            "make the Definition of Done pass first (`clusterproof verify`); no VM was touched",
        ));
    }
    p.evidence("gate: every Definition-of-Done scenario passed");

    // 2. Plan.
    p.at("planning");
    let plan = match plan(cx, kube, px).await? {
        Ok(plan) => plan,
        Err(refusal) => return Ok(refusal),
    };
    let action = match c.mode {
        StopMode::Stop => VmAction::Stop,
        StopMode::Shutdown => VmAction::Shutdown,
        StopMode::Reset => VmAction::Reset,
        StopMode::Suspend => VmAction::Suspend,
    };
    let role = if plan.control_plane {
        "control plane"
    } else {
        "worker"
    };
    let planned = format!(
        "{} VM {} ({}) on {} — {role} node {}, Omni machine {} (seed {}; replay with --seed {})",
        action.as_str(),
        plan.vm.vmid,
        plan.vm.name,
        plan.vm.host,
        plan.node,
        plan.machine_id,
        plan.seed,
        plan.seed
    );
    cx.events
        .mark(Lane::Vm, MarkState::Info, format!("victim {}", plan.node));
    p.evidence(format!("plan: {planned}"));
    if let Some(ha) = &plan.ha {
        p.evidence(format!(
            "HA resource {} (requested state {}) is put back after the experiment",
            ha.sid, ha.state
        ));
    }
    if cx.lab.dry_run {
        return Ok(p.outcome(Outcome::pass(format!(
            "dry run: would {planned}; nothing was changed"
        ))));
    }

    // The canary, before anything breaks.
    p.at("deploying the canary");
    let schedulable = kube
        .nodes()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?
        .iter()
        .filter(|n| ready(n))
        .count();
    let canary = Canary::deploy(cx, kube, schedulable).await?;
    p.evidence(format!(
        "canary: {} netexec pod(s) behind Service {}/{CANARY}",
        schedulable,
        canary.workload.namespace()
    ));
    let t0 = Instant::now();
    let probes = Probes::start(cx, kube, &canary_namespace(cx), c.probe_interval);

    let watch = Observer::start(cx, kube, &plan);
    // The watches must know the world before it changes: a replacement pod created before
    // the canary watch's initial list would look like one that was always there.
    if watch
        .wait(
            |s| (s.synced >= KUBE_WATCHES).then(Instant::now),
            lab.verify.timeout,
        )
        .await
        .is_none()
    {
        return Ok(p.outcome(Outcome::error(format!(
            "the watches on node {} and its pods did not start within {}",
            plan.node,
            humantime::format_duration(lab.verify.timeout)
        ))));
    }
    // 3. Journal, 4. inject.
    let mut journal = Journal {
        run_id: holder.to_string(),
        started: chrono::Utc::now().to_rfc3339(),
        pid: std::process::id(),
        victim: plan.node.clone(),
        vm: plan.vm.clone(),
        mode: action.as_str().to_string(),
        ha: plan.ha.clone(),
        lock: lock_ref,
        stage: Stage::Injecting,
        history: vec![],
    };
    journal.note(format!("about to {planned}"));
    journal
        .save(&lab.state_dir)
        .map_err(|e| Outcome::error(format!("not injecting: {e}")))?;
    p.at("injecting");
    let injected_at = Instant::now();
    let upid = match px.vm_action(&plan.vm.host, plan.vm.vmid, action).await {
        Ok(u) => u,
        Err(e) => {
            // Refused outright: nothing changed, the journal is done.
            let _ = Journal::finish(&lab.state_dir);
            return Ok(p.outcome(Outcome::error(format!(
                "Proxmox refused to {} VM {}: {e}",
                action.as_str(),
                plan.vm.vmid
            ))));
        }
    };
    cx.events.mark(
        Lane::Vm,
        MarkState::Down,
        format!("{} VM {}", action.as_str(), plan.vm.vmid),
    );
    journal.stage = Stage::Injected;
    journal.note(format!("task {upid}"));
    journal
        .save(&lab.state_dir)
        .map_err(|e| Outcome::error(e.to_string()))?;
    let every = (c.probe_interval / 2).max(Duration::from_millis(10));
    match px
        .wait_task(&plan.vm.host, &upid, every, c.restore_timeout)
        .await
    {
        Ok(Some(t)) if t.succeeded() => p.evidence(format!(
            "{} task OK ({:.1} s)",
            action.as_str(),
            injected_at.elapsed().as_secs_f64()
        )),
        Ok(Some(t)) => p.evidence(format!(
            "{} task ended: {}",
            action.as_str(),
            t.exitstatus.unwrap_or_default()
        )),
        Ok(None) => p.evidence(format!("{} task still running", action.as_str())),
        Err(e) => p.evidence(format!("cannot follow the {} task: {e}", action.as_str())),
    }

    // 5. Observe.
    let mut failures: Vec<String> = Vec::new();
    p.at("waiting for the node to be noticed NotReady");
    let detected = watch.wait(|s| s.not_ready, c.detect_timeout).await;
    match detected {
        Some(at) => {
            let t = at.duration_since(injected_at).as_secs_f64();
            p.metric("time_to_detect_seconds", t, "s");
            p.evidence(format!("node {} NotReady {t:.2} s after the {}", plan.node, action.as_str()));
        }
        None if c.mode == StopMode::Reset => p.evidence(format!(
            "node {} never turned NotReady within {}: the reboot was shorter than the node grace period",
            plan.node,
            humantime::format_duration(c.detect_timeout)
        )),
        None => failures.push(format!(
            "the cluster did not notice: node {} still Ready {} after the {}",
            plan.node,
            humantime::format_duration(c.detect_timeout),
            action.as_str()
        )),
    }
    if c.mode != StopMode::Reset && detected.is_some() {
        p.at("waiting for the victim's pods to be replaced");
        // The outage lasts until the cluster has fully reacted: the pods replaced and Omni
        // showing the machine disconnected (its link-down interval can be the longer).
        let _ = watch
            .wait(
                |s| s.rescheduled.and(s.omni_disconnected),
                c.reschedule_timeout,
            )
            .await;
        match watch.state().rescheduled {
            Some(at) => {
                let t = at.duration_since(injected_at).as_secs_f64();
                p.metric("time_to_reschedule_seconds", t, "s");
                p.evidence(format!(
                    "the canary pod(s) on {} replaced on other nodes {t:.2} s after the {}",
                    plan.node,
                    action.as_str()
                ));
            }
            None => failures.push(format!(
                "the canary pod(s) on {} were not replaced elsewhere within {}",
                plan.node,
                humantime::format_duration(c.reschedule_timeout)
            )),
        }
    }
    match watch.state().omni_disconnected {
        Some(at) => p.metric(
            "time_to_omni_disconnect_seconds",
            at.duration_since(injected_at).as_secs_f64(),
            "s",
        ),
        None if c.mode != StopMode::Reset && detected.is_some() => {
            failures.push(format!(
                "Omni never showed machine {} disconnected",
                plan.machine_id
            ));
        }
        None => {}
    }

    // 6. Restore.
    p.at("restoring the VM");
    let restore_started = Instant::now();
    match restore_vm_and_record(px, &mut journal, &cx.lab).await {
        Ok(lines) => {
            for l in lines {
                p.evidence(format!("restore: {l}"));
            }
            cx.events.mark(
                Lane::Vm,
                MarkState::Up,
                format!("VM {} running", plan.vm.vmid),
            );
        }
        Err(e) => {
            // The runner's restore stage tries again from the journal.
            return Ok(p.outcome(Outcome::error(format!(
                "restoring VM {}: {e}",
                plan.vm.vmid
            ))));
        }
    }

    // 7. Verify recovery.
    p.at("waiting for the node to recover");
    let recovered = watch
        .wait(
            |s| (s.ready_again && s.cilium_ready && !s.omni_now_disconnected).then(Instant::now),
            c.recovery_timeout,
        )
        .await;
    let recovery = match recovered {
        Some(at) => {
            let t = at.saturating_duration_since(restore_started).as_secs_f64();
            p.metric("time_to_recover_seconds", t, "s");
            p.evidence(format!("node {} Ready, its Cilium agent Ready and Omni connected {t:.2} s after the restore began", plan.node));
            true
        }
        None => {
            let s = watch.state();
            let mut missing = Vec::new();
            if !s.ready_again {
                missing.push(format!("node {} is not Ready", plan.node));
            }
            if !s.cilium_ready {
                missing.push("its Cilium agent is not Ready".into());
            }
            if s.omni_now_disconnected {
                missing.push(format!(
                    "Omni shows machine {} disconnected",
                    plan.machine_id
                ));
            }
            failures.push(format!(
                "not recovered within {} although VM {} is running: {}",
                humantime::format_duration(c.recovery_timeout),
                plan.vm.vmid,
                missing.join(", ")
            ));
            false
        }
    };
    let (api, canary_ok) = probes.stop().await;
    if recovery {
        p.at("checking the Definition of Done again");
        let after = definition_of_done(cx).await;
        if after.is_empty() {
            p.evidence("after recovery: every Definition-of-Done scenario passes");
        } else {
            failures.push(format!(
                "after recovery the Definition of Done fails: {}",
                after.join("; ")
            ));
        }
    }
    drop(watch);
    canary.remove().await;
    let _ = Journal::finish(&lab.state_dir);

    // 8. Verdict.
    let api_pct = api.percent();
    let canary_pct = canary_ok.percent();
    p.metric("api_availability_percent", api_pct, "%");
    p.metric("canary_availability_percent", canary_pct, "%");
    p.metric("api_probes", api.total as f64, "probes");
    p.metric("api_probe_failures", api.failed as f64, "probes");
    p.metric("canary_probes", canary_ok.total as f64, "probes");
    p.metric("canary_probe_failures", canary_ok.failed as f64, "probes");
    p.metric(
        "canary_attempt_failures",
        canary_ok.attempts_failed as f64,
        "requests",
    );
    p.metric("experiment_seconds", t0.elapsed().as_secs_f64(), "s");
    let api_slo = if plan.control_plane {
        c.slo.api_control_plane
    } else {
        c.slo.api_worker
    };
    if api_pct < api_slo {
        failures.push(format!(
            "API availability {api_pct:.2} % ({} of {} /readyz probes failed) is below the SLO of {api_slo} %",
            api.failed, api.total
        ));
    }
    if canary_pct < c.slo.canary {
        failures.push(format!(
            "canary availability {canary_pct:.2} % ({} of {} probes failed) is below the SLO of {} %",
            canary_ok.failed, canary_ok.total, c.slo.canary
        ));
    }
    let o = match failures.first() {
        None => Outcome::pass(format!(
            "survived the {} of {role} {}: API {api_pct:.1} %, canary {canary_pct:.1} %, recovered",
            action.as_str(),
            plan.node
        )),
        Some(first) => {
            let mut o = Outcome::new(Verdict::Fail, first.clone()).remediation(
                "see the timeline: which of detection, rescheduling or recovery fell short; `kubectl describe node` on the victim and `omnictl get machinestatus` for its machine",
            );
            for f in failures.iter().skip(1) {
                o = o.evidence(f.clone());
            }
            o
        }
    };
    Ok(p.outcome(o))
}

/// Every Definition-of-Done scenario of the catalog, run now: the ones that did not pass, each
/// as `id: message`.
async fn definition_of_done(cx: &Context) -> Vec<String> {
    let dod: Vec<_> = crate::catalog()
        .into_iter()
        .filter(|s| s.phase() == Phase::Verify)
        .collect();
    let outcomes = futures::future::join_all(dod.iter().map(|s| s.run(cx))).await;
    dod.iter()
        .zip(outcomes)
        .filter(|(_, o)| !matches!(o.verdict, Verdict::Pass | Verdict::Warn | Verdict::Skip))
        .map(|(s, o)| format!("{}: {}", s.id(), o.message))
        .collect()
}

/// Choose the victim and check it may be stopped. `Ok(Err(outcome))`: a refusal.
#[allow(clippy::result_large_err)] // the outcome is the scenario's final answer
async fn plan(
    cx: &Context,
    kube: &KubeClient,
    px: &ProxmoxClient,
) -> Result<Result<Plan, Outcome>, Outcome> {
    let c = &cx.lab.spec.lab.chaos;
    let refuse = |msg: String, fix: &str| {
        Ok(Err(Outcome::new(
            Verdict::Fail,
            format!("refusing to inject: {msg}"),
        )
        .remediation(fix.to_string())))
    };
    let nodes = kube
        .nodes()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let mut candidates: Vec<&Node> = nodes
        .iter()
        .filter(|n| match &c.target {
            ChaosTarget::Worker => !is_control_plane(n),
            ChaosTarget::ControlPlane => is_control_plane(n),
            ChaosTarget::Node(want) => name(n) == want,
        })
        .collect();
    candidates.sort_by(|a, b| name(a).cmp(name(b)));
    if candidates.is_empty() {
        return refuse(
            format!(
                "no node matches the target {:?} (nodes: {})",
                c.target,
                nodes.iter().map(name).collect::<Vec<_>>().join(", ")
            ),
            "set chaos.target (or --target) to worker, control-plane or one of the node names",
        );
    }
    let seed = c.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            % 1_000_000
    });
    let victim = candidates[(splitmix64(seed) % candidates.len() as u64) as usize];
    let node = name(victim).to_string();
    let control_plane = is_control_plane(victim);

    // Quorum: the control planes that stay must be a majority of the members.
    if control_plane {
        let cps: Vec<&Node> = nodes.iter().filter(|n| is_control_plane(n)).collect();
        let others_ready = cps.iter().filter(|n| name(n) != node && ready(n)).count();
        if others_ready * 2 <= cps.len() {
            return refuse(
                format!(
                    "stopping control plane {node} would lose etcd quorum: {others_ready} of the other {} control plane(s) Ready, of {} members",
                    cps.len() - 1,
                    cps.len()
                ),
                "run the experiment on a worker, or with at least three healthy control planes",
            );
        }
    }

    // Node → VM by name, confirmed by SMBIOS UUID = Omni machine id.
    let vms = px
        .cluster_vms()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let matching: Vec<_> = vms
        .iter()
        .filter(|v| v.kind == "qemu" && v.name.as_deref() == Some(node.as_str()))
        .collect();
    let vm = match matching.as_slice() {
        [one] => one,
        [] => {
            return refuse(
                format!("no Proxmox VM is named {node}"),
                "the provider names VMs after the node (Talos hostname); check the lab's Proxmox cluster is the one running this Kubernetes cluster",
            );
        }
        many => {
            return refuse(
                format!("{} Proxmox VMs are named {node}", many.len()),
                "rename the duplicates: the victim must be unambiguous",
            );
        }
    };
    let (Some(vmid), Some(host)) = (vm.vmid, vm.node.clone()) else {
        return Err(Outcome::error(format!(
            "Proxmox listed VM {node} without a vmid or node"
        )));
    };
    let config = px
        .vm_config(&host, vmid)
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let uuid = config
        .get("smbios1")
        .and_then(|v| v.as_str())
        .and_then(|s| s.split(',').find_map(|kv| kv.strip_prefix("uuid=")))
        .map(str::to_lowercase);
    let omni = cx.lab.omni()?;
    let identities = omni
        .get("clustermachineidentities", None)
        .await
        .map_err(|e| Outcome::error(format!("reading Omni's ClusterMachineIdentities: {e}")))?;
    let machine_id = identities
        .iter()
        .find(|r| r.spec.get("nodename").and_then(|v| v.as_str()) == Some(node.as_str()))
        .map(|r| r.metadata.id.to_lowercase());
    let machine_id = match (uuid, machine_id) {
        (Some(u), Some(m)) if u == m => m,
        (u, m) => {
            return refuse(
                format!(
                    "VM {vmid} ({node}) has SMBIOS UUID {}, but Omni's machine for node {node} is {}",
                    u.as_deref().unwrap_or("(none)"),
                    m.as_deref().unwrap_or("(none)")
                ),
                "the VM named like the node is not that node's machine: do not stop it; check for a stale VM of the same name",
            );
        }
    };

    // HA.
    let sid = format!("vm:{vmid}");
    let ha_res = px
        .ha_resources()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let ha = match ha_res.into_iter().find(|r| r.sid == sid) {
        Some(r) if r.state.as_deref() != Some("ignored") => match c.ha_managed {
            HaPolicy::Refuse => {
                return refuse(
                    format!(
                        "VM {vmid} ({node}) is managed by Proxmox HA ({sid}, state {})",
                        r.state.as_deref().unwrap_or("?")
                    ),
                    "set chaos.ha_managed = \"disable\" to let clusterproof request `stopped` for the experiment and put the HA state back after, or pick another target",
                );
            }
            HaPolicy::Disable => Some(HaState {
                sid,
                state: r.state.unwrap_or_else(|| "started".into()),
            }),
        },
        _ => None,
    };
    Ok(Ok(Plan {
        node: node.clone(),
        control_plane,
        machine_id,
        vm: VmRef {
            host,
            vmid,
            name: node,
        },
        ha,
        seed,
    }))
}

/// A fixed, well-mixed function of the seed (the victim must not depend on anything else).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The canary: agnhost netexec pods spread over the nodes (one per Ready node), a Service in
/// front; removed at the end, and on every other path when dropped.
struct Canary {
    workload: Workload,
}

impl Canary {
    async fn deploy(cx: &Context, kube: &KubeClient, replicas: usize) -> Result<Canary, Outcome> {
        let v = &cx.lab.spec.lab.verify;
        let fail = |what: &str, e: harness::kube::KubeError| Outcome::error(format!("{what}: {e}"));
        let mut workload = Workload::in_namespace(kube, &canary_namespace(cx))
            .await
            .map_err(|e| fail("creating the canary namespace", e))?;
        let ns = workload.namespace().to_string();
        let labels = json!({"app": CANARY});
        workload
            .apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": CANARY, "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": netexec_pod_spec(&v.probe_image, json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"},
                        }]}})),
                    },
                },
            }))
            .await
            .map_err(|e| fail("creating the canary Deployment", e))?;
        workload
            .apply(netexec_service(CANARY, &labels))
            .await
            .map_err(|e| fail("creating the canary Service", e))?;
        let api: Api<Deployment> = Api::namespaced(kube.client(), &ns);
        let want = replicas as i32;
        let available =
            kube::runtime::wait::await_condition(api, CANARY, move |d: Option<&Deployment>| {
                d.and_then(|d| d.status.as_ref())
                    .is_some_and(|s| s.available_replicas.unwrap_or(0) >= want)
            });
        match tokio::time::timeout(v.timeout, available).await {
            Ok(Ok(_)) => Ok(Canary { workload }),
            _ => Err(Outcome::error(format!(
                "the canary Deployment {ns}/{CANARY} did not have {replicas} available pod(s) within {}",
                humantime::format_duration(v.timeout)
            ))
            .remediation("check that the nodes can pull the probe image (lab verify.probe_image)")),
        }
    }

    async fn remove(self) {
        self.workload.remove().await;
    }
}

fn canary_namespace(cx: &Context) -> String {
    harness::chaos::canary_namespace(&cx.lab.spec.lab)
}

/// Success counts of one probe.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    total: u64,
    /// Probes whose every attempt failed.
    failed: u64,
    /// Attempts that failed, retried or not.
    attempts_failed: u64,
}

/// Attempts per canary probe. The API server's service proxy sends each request to one
/// endpoint picked at random, and a stopped node's pods stay endpoints until the node is
/// marked NotReady (the grace period): a single GET measures the endpoint lag, not whether
/// the Service serves. A probe is what a client retrying an idempotent GET sees: it fails
/// when every attempt fails. Failed attempts are counted too (`canary_attempt_failures`).
const CANARY_ATTEMPTS: u32 = 5;

impl Tally {
    fn percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        100.0 * (self.total - self.failed) as f64 / self.total as f64
    }
}

/// `/readyz` and the canary Service, probed every interval until stopped. Each failure is a
/// `down` mark on its probe lane.
struct Probes {
    stop: tokio::sync::watch::Sender<bool>,
    api: Option<tokio::task::JoinHandle<Tally>>,
    canary: Option<tokio::task::JoinHandle<Tally>>,
}

impl Drop for Probes {
    fn drop(&mut self) {
        for h in [self.api.take(), self.canary.take()].into_iter().flatten() {
            h.abort();
        }
    }
}

impl Probes {
    fn start(cx: &Context, kube: &KubeClient, ns: &str, every: Duration) -> Probes {
        let (stop, rx) = tokio::sync::watch::channel(false);
        // A probe that takes longer than a few intervals (and at least a second) has failed.
        let limit = (every * 4).max(Duration::from_secs(1));
        let spawn = |path: String, lane: Lane, what: &'static str, attempts: u32| {
            let (kube, events, mut rx) = (kube.clone(), cx.events.clone(), rx.clone());
            tokio::spawn(async move {
                let mut t = Tally::default();
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx.changed() => return t,
                    }
                    t.total += 1;
                    let mut why = String::new();
                    for _ in 0..attempts {
                        let r = tokio::time::timeout(limit, kube.raw_get(&path)).await;
                        why = match r {
                            Ok(Ok(r)) if r.status == 200 => {
                                why.clear();
                                break;
                            }
                            Ok(Ok(r)) => format!("{what} answered {}", r.status),
                            Ok(Err(e)) => format!("{what}: {e}"),
                            Err(_) => format!(
                                "{what}: no answer within {}",
                                humantime::format_duration(limit)
                            ),
                        };
                        t.attempts_failed += 1;
                    }
                    if why.is_empty() {
                        continue;
                    }
                    t.failed += 1;
                    let why = if attempts > 1 {
                        format!("{why} ({attempts} attempts)")
                    } else {
                        why
                    };
                    events.mark(lane, MarkState::Down, why);
                }
            })
        };
        let api = spawn("/readyz".into(), Lane::ApiProbe, "/readyz", 1);
        let canary = spawn(
            format!("/api/v1/namespaces/{ns}/services/{CANARY}:http/proxy/hostname"),
            Lane::CanaryProbe,
            "canary",
            CANARY_ATTEMPTS,
        );
        Probes {
            stop,
            api: Some(api),
            canary: Some(canary),
        }
    }

    async fn stop(mut self) -> (Tally, Tally) {
        let _ = self.stop.send(true);
        let get = async |h: Option<tokio::task::JoinHandle<Tally>>| match h {
            Some(h) => h.await.unwrap_or_default(),
            None => Tally::default(),
        };
        let api = get(self.api.take()).await;
        let canary = get(self.canary.take()).await;
        (api, canary)
    }
}

/// What the watches have seen of the victim, each with when it was first seen.
#[derive(Debug, Default, Clone)]
struct Seen {
    not_ready: Option<Instant>,
    /// Ready now, after any NotReady spell (true before the injection too).
    ready_again: bool,
    ready_again_at: Option<Instant>,
    omni_disconnected: Option<Instant>,
    omni_now_disconnected: bool,
    rescheduled: Option<Instant>,
    cilium_ready: bool,
    /// Kubernetes watches whose initial list is in (the node, the canary's pods, the agent).
    synced: u8,
}

/// How many Kubernetes watches the [`Observer`] runs.
const KUBE_WATCHES: u8 = 3;

/// Watches on the victim's node, its Omni machine, the canary's pods and the node's Cilium
/// agent, feeding one [`Seen`]; stopped when dropped.
struct Observer {
    seen: tokio::sync::watch::Receiver<Seen>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Observer {
    fn start(cx: &Context, kube: &KubeClient, plan: &Plan) -> Observer {
        // The victim is Ready (the gate passed) and so is its agent.
        let (tx, seen) = tokio::sync::watch::channel(Seen {
            cilium_ready: true,
            ready_again: true,
            ..Default::default()
        });
        let tx = Arc::new(tx);
        let mut tasks = Vec::new();

        // The node.
        {
            let (tx, events, node) = (Arc::clone(&tx), cx.events.clone(), plan.node.clone());
            let api: Api<Node> = Api::all(kube.client());
            let cfg = watcher::Config::default().fields(&format!("metadata.name={node}"));
            tasks.push(tokio::spawn(async move {
                let mut s = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
                let mut was_ready = true;
                while let Some(ev) = s.next().await {
                    if matches!(ev, Ok(watcher::Event::InitDone)) {
                        tx.send_modify(|s| s.synced += 1);
                        continue;
                    }
                    let Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) = ev else {
                        continue;
                    };
                    let now_ready = ready(&n);
                    if was_ready && !now_ready {
                        events.mark(Lane::Node, MarkState::Down, format!("node {node} NotReady"));
                        tx.send_modify(|s| {
                            s.not_ready.get_or_insert(Instant::now());
                            s.ready_again = false;
                        });
                    } else if !was_ready && now_ready {
                        events.mark(Lane::Node, MarkState::Up, format!("node {node} Ready"));
                        tx.send_modify(|s| {
                            s.ready_again = true;
                            s.ready_again_at = Some(Instant::now());
                        });
                    }
                    was_ready = now_ready;
                }
            }));
        }

        // The Omni machine's link.
        if let Ok(omni) = cx.lab.omni()
            && let Ok(mut w) = omni.watch("machines")
        {
            let (tx, events, id) = (Arc::clone(&tx), cx.events.clone(), plan.machine_id.clone());
            tasks.push(tokio::spawn(async move {
                let mut was = true;
                while let Some(Ok(ev)) = w.next().await {
                    if ev.resource.metadata.id.to_lowercase() != id {
                        continue;
                    }
                    let connected = ev
                        .resource
                        .spec
                        .get("connected")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    if was && !connected {
                        events.mark(
                            Lane::Omni,
                            MarkState::Down,
                            format!("machine {id} disconnected"),
                        );
                        tx.send_modify(|s| {
                            s.omni_disconnected.get_or_insert(Instant::now());
                            s.omni_now_disconnected = true;
                        });
                    } else if !was && connected {
                        events.mark(Lane::Omni, MarkState::Up, format!("machine {id} connected"));
                        tx.send_modify(|s| s.omni_now_disconnected = false);
                    }
                    was = connected;
                }
            }));
        }

        // The canary's pods: the victim's evicted, a replacement Ready elsewhere.
        {
            let (tx, events, node) = (Arc::clone(&tx), cx.events.clone(), plan.node.clone());
            let api: Api<Pod> = Api::namespaced(kube.client(), &canary_namespace(cx));
            let cfg = watcher::Config::default().labels(&format!("app={CANARY}"));
            tasks.push(tokio::spawn(async move {
                let mut s = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
                let mut initial: Option<std::collections::BTreeSet<String>> =
                    Some(Default::default());
                let mut known = std::collections::BTreeSet::new();
                let mut evicted = false;
                while let Some(ev) = s.next().await {
                    let pod = match ev {
                        Ok(watcher::Event::InitApply(p)) => {
                            if let Some(i) = initial.as_mut() {
                                i.insert(p.metadata.name.clone().unwrap_or_default());
                            }
                            p
                        }
                        Ok(watcher::Event::InitDone) => {
                            tx.send_modify(|s| s.synced += 1);
                            known = initial.take().unwrap_or_default();
                            continue;
                        }
                        Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::Delete(p)) => p,
                        _ => continue,
                    };
                    let pname = pod.metadata.name.clone().unwrap_or_default();
                    let on_victim = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
                        == Some(node.as_str());
                    // Evicted (Terminating after its toleration), or stopped by the kubelet's
                    // graceful node shutdown (phase Failed, reason Terminated).
                    let gone = pod.metadata.deletion_timestamp.is_some()
                        || matches!(
                            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Failed" | "Succeeded")
                        );
                    if on_victim && gone && !evicted {
                        evicted = true;
                        events.mark(
                            Lane::Pods,
                            MarkState::Down,
                            format!("canary pod {pname} on {node} evicted"),
                        );
                    }
                    let new = !known.contains(&pname) && initial.is_none();
                    let pod_ready = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    if evicted
                        && new
                        && !on_victim
                        && pod_ready
                        && pod.metadata.deletion_timestamp.is_none()
                    {
                        events.mark(
                            Lane::Pods,
                            MarkState::Up,
                            format!(
                                "replacement {pname} Ready on {}",
                                pod.spec
                                    .as_ref()
                                    .and_then(|s| s.node_name.clone())
                                    .unwrap_or_default()
                            ),
                        );
                        tx.send_modify(|s| {
                            s.rescheduled.get_or_insert(Instant::now());
                        });
                    }
                }
            }));
        }

        // The Cilium agent on the node.
        {
            let (tx, events, node) = (Arc::clone(&tx), cx.events.clone(), plan.node.clone());
            let api: Api<Pod> = Api::namespaced(kube.client(), "kube-system");
            let cfg = watcher::Config::default()
                .labels("k8s-app=cilium")
                .fields(&format!("spec.nodeName={node}"));
            tasks.push(tokio::spawn(async move {
                let mut s = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
                let mut was = true;
                while let Some(ev) = s.next().await {
                    if matches!(ev, Ok(watcher::Event::InitDone)) {
                        tx.send_modify(|s| s.synced += 1);
                        continue;
                    }
                    let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev else {
                        continue;
                    };
                    let ok = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    if was != ok {
                        events.mark(
                            Lane::Cilium,
                            if ok { MarkState::Up } else { MarkState::Down },
                            format!(
                                "cilium agent on {node} {}",
                                if ok { "Ready" } else { "not Ready" }
                            ),
                        );
                    }
                    was = ok;
                    tx.send_modify(|s| s.cilium_ready = ok);
                }
            }));
        }
        Observer { seen, tasks }
    }

    fn state(&self) -> Seen {
        self.seen.borrow().clone()
    }

    /// Wait (on the watches' updates, no polling) until `cond` holds, up to `within`: when it
    /// first held.
    async fn wait(
        &self,
        cond: impl Fn(&Seen) -> Option<Instant> + Copy,
        within: Duration,
    ) -> Option<Instant>
    where
        Self: Sized,
    {
        let mut rx = self.seen.clone();
        tokio::time::timeout(within, async {
            loop {
                if let Some(t) = cond(&rx.borrow_and_update()) {
                    return Some(t);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

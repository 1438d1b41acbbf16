//! `dod::control_plane_ready` — "3 control plane nodes running and Ready".
//!
//! Proves (deployment plan, Definition of Done): the template's ControlPlane size of nodes with
//! the `node-role.kubernetes.io/control-plane` label, each Ready (waiting with a watch up to
//! `verify.timeout`); Omni agrees (each machine's ClusterMachineStatus ready, RUNNING and
//! connected, and the ControlPlaneStatus conditions — Etcd, WireguardConnection — Ready); the API
//! server's `/readyz?verbose` passes, with its `etcd` check named in the evidence.
//!
//! Risk "192 GB total vs ~72 GB" / one host's loss: the control planes are mapped node → VM →
//! Proxmox host; when one host runs enough of them that its loss would take etcd quorum with it,
//! the scenario warns with the fix (pin each control plane to its own host in its machine class).

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

use super::{expected, kube, name, omni_members, omni_problems, role_outcome, wait_role};

pub struct ControlPlaneReady;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "dod::control_plane_ready",
    module: module_path!(),
    phase: Phase::Verify,
    proves: "Definition of Done: 3 control plane nodes running and Ready (count from the template; etcd and API healthy)",
    needs: &[Need::Spec, Need::Kube],
    after: &[],
};

impl Scenario for ControlPlaneReady {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

/// Omni's enum values (`shared/reference/omni.md` §5): condition type 1 Etcd, 2
/// WireguardConnection; status 1 Ready.
fn condition_name(t: &serde_json::Value) -> String {
    match t.as_i64() {
        Some(1) => "Etcd".into(),
        Some(2) => "WireguardConnection".into(),
        _ => format!("condition {t}"),
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let want = expected(cx)?.control_planes;
    let kube = kube(cx).await?;
    let (nodes, held) = wait_role(cx, kube, true, want).await?;

    // Omni's view: the machines, and the control plane's conditions.
    let mut omni = omni_members(cx, "omni.sidero.dev/role-controlplane")
        .await?
        .map(|m| omni_problems(&m, want, "control-plane"));
    let mut extra = Vec::new();
    if let (Some(problems), Some(o)) = (omni.as_mut(), cx.lab.omni.as_ref()) {
        let cluster = cx.lab.spec.template.cluster_name().unwrap_or_default();
        let id = format!("{cluster}-control-planes");
        // Watch it (Omni recomputes it as members connect) until every condition is Ready,
        // up to verify.timeout; then judge what was seen last.
        let kind = "ControlPlaneStatuses.omni.sidero.dev";
        let all_ready = |r: &harness::omni::Resource| {
            r.spec["conditions"]
                .as_array()
                .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["status"] == 1))
        };
        let mut last = o
            .get_one(kind, &id)
            .await
            .map_err(|e| Outcome::error(format!("omnictl get controlplanestatus {id}: {e}")))?;
        if !last.as_ref().is_some_and(all_ready)
            && let Ok(mut watch) = o.watch(kind)
        {
            let _ = tokio::time::timeout(cx.lab.spec.lab.verify.timeout, async {
                while let Some(Ok(ev)) = watch.next().await {
                    if ev.resource.metadata.id == id {
                        let done = all_ready(&ev.resource);
                        last = Some(ev.resource);
                        if done {
                            break;
                        }
                    }
                }
            })
            .await;
        }
        match last {
            None => problems.push(format!("Omni has no ControlPlaneStatus {id}")),
            Some(cps) => {
                for c in cps.spec["conditions"].as_array().into_iter().flatten() {
                    let n = condition_name(&c["type"]);
                    if c["status"] == 1 {
                        extra.push(format!("Omni ControlPlaneStatus: {n} Ready"));
                    } else {
                        problems.push(format!(
                            "Omni ControlPlaneStatus: {n} not Ready ({})",
                            c["reason"].as_str().unwrap_or("")
                        ));
                    }
                }
            }
        }
    }

    // The API server's own readiness, check by check.
    let readyz = kube
        .raw_get("/readyz?verbose")
        .await
        .map_err(|e| Outcome::error(format!("GET /readyz?verbose: {e}")))?;
    let etcd = readyz
        .body
        .lines()
        .find(|l| l.starts_with("[+]etcd ") || l.starts_with("[-]etcd "))
        .map(str::to_string);
    let readyz_ok = readyz.status == 200 && etcd.as_deref().is_some_and(|l| l.starts_with("[+]"));

    let mut o = role_outcome("control-plane", want, &nodes, held, omni);
    match (&etcd, readyz_ok) {
        (Some(line), true) => {
            o = o.evidence(format!("/readyz?verbose: {line}, readyz check passed"))
        }
        _ => {
            let failed: Vec<&str> = readyz
                .body
                .lines()
                .filter(|l| l.starts_with("[-]"))
                .collect();
            let msg = format!(
                "the API server is not ready (/readyz answered {}): {}",
                readyz.status,
                if failed.is_empty() {
                    etcd.clone()
                        .unwrap_or_else(|| "no etcd check listed".into())
                } else {
                    failed.join(", ")
                }
            );
            if o.verdict == Verdict::Pass {
                o = Outcome::new(Verdict::Fail, msg.clone())
                    .remediation("the API server reports a failing check: on Talos, `talosctl -n <control plane> service etcd` and `talosctl etcd status` show etcd's state")
                    .evidence(msg);
            } else {
                o = o.evidence(msg);
            }
        }
    }
    for e in extra {
        o = o.evidence(e);
    }
    if o.verdict == Verdict::Pass {
        o = quorum_per_host(cx, &nodes, o).await;
    }
    Ok(o.metric(
        "control_plane_nodes_ready",
        nodes.iter().filter(|n| super::ready(n)).count() as f64,
        "nodes",
    ))
}

/// Map each control-plane node to its VM (VM name = Talos hostname = node name) and Proxmox
/// host; warn when one host's loss would take etcd quorum with it.
async fn quorum_per_host(
    cx: &Context,
    nodes: &[k8s_openapi::api::core::v1::Node],
    o: Outcome,
) -> Outcome {
    let Some(px) = cx.lab.proxmox.as_ref() else {
        return o
            .evidence("Proxmox not connected in this run: control-plane placement not checked");
    };
    let vms = match px.cluster_vms().await {
        Ok(v) => v,
        Err(e) => return o.evidence(format!("could not map control planes to hosts: {e}")),
    };
    let mut per_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut o = o;
    for n in nodes {
        match vms.iter().find(|v| v.name.as_deref() == Some(name(n))) {
            Some(v) => {
                let host = v.node.clone().unwrap_or_else(|| "?".into());
                o = o.evidence(format!(
                    "{} → VM {} on host {host}",
                    name(n),
                    v.vmid.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
                ));
                per_host.entry(host).or_default().push(name(n).to_string());
            }
            None => o = o.evidence(format!("{}: no Proxmox VM of that name", name(n))),
        }
    }
    let members = nodes.len();
    let quorum = members / 2 + 1;
    if let Some((host, on)) = per_host.iter().find(|(_, on)| members - on.len() < quorum) {
        let mut w = Outcome::new(
            Verdict::Warn,
            format!(
                "host {host} runs {} of {members} control planes: losing it loses etcd quorum",
                on.len()
            ),
        )
        .remediation("pin each control plane to its own Proxmox host: one machine class per host with `node: <host>` in its providerdata (or a placement strategy that spreads them, provider ≥ v0.2.0)");
        w.evidence = o.evidence.clone();
        w.metrics = o.metrics.clone();
        return w;
    }
    o
}

//! `provision::cluster` — Steps 2 and 3: sync the template, then watch machine requests become
//! VMs and VMs join over SideroLink, within the lab's budget, naming any red flag as it appears.
//!
//! Proves (deployment plan): Step 2 "Deploy Cluster" (validation: all nodes show the green
//! SideroLink checkmark within 10 minutes) and Step 3's red flags:
//! - "SideroLink stuck at Registering → DNS issue, check Proxmox host DNS settings": a request is
//!   provisioned (its VM exists) but its machine never connects; the VM's host and that host's
//!   resolvers are named;
//! - "VMs created but immediately deleted → storage_selector mismatch": a request fails with the
//!   provider's `failed to pick the disk: no matches for the condition …`;
//! - "Provider disconnected → service account key expired": requests stay unprocessed while the
//!   provider's combined status says disconnected.
//!
//! Counts come from the template (set sizes), never from constants. Waiting is done with
//! `omnictl get -w` watches of MachineRequestStatus and Link (`shared/reference/omni.md` §3.4,
//! §5.3); the name chain request id = VM name, `spec.id` = machine id = Link id (§1).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use harness::omni::{EventKind, OmniClient, Watch};
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct Cluster;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "provision::cluster",
    module: module_path!(),
    phase: Phase::Provision,
    proves: "Step 2–3: Deploy Cluster; all nodes SideroLink-connected within 10 minutes; red flags diagnosed",
    needs: &[Need::Spec, Need::Omni, Need::Proxmox],
    after: &[&super::machine_classes::META],
};

impl Scenario for Cluster {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

/// What one machine request has reached.
#[derive(Debug, Default, Clone)]
struct Request {
    stage: i64,
    error: String,
    machine: String,
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    super::may_change(cx)?;
    let lab = &cx.lab;
    let omni = lab.omni()?;
    let template = lab.spec.template.path.as_path();
    let cluster = lab.spec.template.cluster_name().unwrap_or("?").to_string();
    let (planned, _) = lab.spec.planned_vms();
    let want = planned.len();

    if let Err(e) = omni.template("validate", template, &[]).await {
        return Ok(Outcome::new(
            Verdict::Fail,
            format!("omnictl cluster template validate: {e}"),
        ));
    }
    let synced = omni
        .template("sync", template, &[])
        .await
        .map_err(|e| Outcome::new(Verdict::Fail, format!("omnictl cluster template sync: {e}")))?;
    let changes = synced.lines().filter(|l| l.starts_with("* ")).count();
    cx.events.observe_with(
        format!("template synced: {changes} change(s)"),
        serde_json::json!({ "stdout": synced }),
    );

    let started = Instant::now();
    let budget = lab.spec.lab.cluster.provision_timeout;
    let mut requests: BTreeMap<String, Request> = BTreeMap::new();
    let mut links: BTreeMap<String, bool> = BTreeMap::new();
    let mut mrs = watch(omni, "machinerequeststatus")?;
    let mut lw = watch(omni, "link")?;
    let set_prefix = format!("{cluster}-");
    let done = |requests: &BTreeMap<String, Request>, links: &BTreeMap<String, bool>| {
        let mine: Vec<&Request> = requests
            .iter()
            .filter(|(id, _)| id.starts_with(&set_prefix))
            .map(|(_, r)| r)
            .collect();
        mine.len() >= want
            && mine
                .iter()
                .filter(|r| r.stage == 2 && links.get(&r.machine).copied().unwrap_or(false))
                .count()
                >= want
    };
    let outcome = tokio::time::timeout(budget, async {
        loop {
            if done(&requests, &links) {
                return Ok(());
            }
            tokio::select! {
                e = mrs.next() => match e {
                    Some(Ok(ev)) => {
                        let id = ev.resource.metadata.id.clone();
                        if ev.event == EventKind::Destroyed {
                            requests.remove(&id);
                        } else {
                            let s = &ev.resource.spec;
                            let r = Request { stage: s["stage"].as_i64().unwrap_or(0), error: s["error"].as_str().unwrap_or("").into(), machine: s["id"].as_str().unwrap_or("").into() };
                            if r.stage == 3 {
                                cx.events.observe(format!("machine request {id} FAILED: {}", r.error));
                            }
                            requests.insert(id, r);
                        }
                    }
                    Some(Err(e)) => return Err(format!("watching machine request statuses: {e}")),
                    None => return Err("the machine request status watch ended".into()),
                },
                e = lw.next() => match e {
                    Some(Ok(ev)) => {
                        let connected = ev.event != EventKind::Destroyed && ev.resource.spec["connected"].as_bool().unwrap_or(false);
                        links.insert(ev.resource.metadata.id.clone(), connected);
                    }
                    Some(Err(e)) => return Err(format!("watching links: {e}")),
                    None => return Err("the link watch ended".into()),
                },
            }
        }
    })
    .await;
    let took = started.elapsed();
    match outcome {
        Ok(Ok(())) => Ok(Outcome::pass(format!(
            "{want}/{want} machines provisioned and SideroLink-connected after {:.1}s (budget {})",
            took.as_secs_f64(),
            humantime(budget)
        ))
        .evidence(format!(
            "template sync: {changes} change(s) (0 = already in sync)"
        ))
        .metric("provision_seconds", took.as_secs_f64(), "s")),
        Ok(Err(e)) => Ok(Outcome::error(e)),
        Err(_) => Ok(diagnose(cx, omni, &requests, &links, want, budget, &set_prefix).await),
    }
}

#[allow(clippy::result_large_err)] // the Err is the scenario's final answer
fn watch(omni: &OmniClient, kind: &str) -> Result<Watch, Outcome> {
    omni.watch(kind)
        .map_err(|e| Outcome::error(format!("cannot watch {kind}: {e}")))
}

fn humantime(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The budget ran out: say which red flag it is.
async fn diagnose(
    cx: &Context,
    omni: &OmniClient,
    requests: &BTreeMap<String, Request>,
    links: &BTreeMap<String, bool>,
    want: usize,
    budget: Duration,
    prefix: &str,
) -> Outcome {
    let mine: Vec<(&String, &Request)> = requests
        .iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .collect();
    let failed: Vec<_> = mine.iter().filter(|(_, r)| r.stage == 3).collect();
    let provisioned: Vec<_> = mine.iter().filter(|(_, r)| r.stage == 2).collect();
    let connected = provisioned
        .iter()
        .filter(|(_, r)| links.get(&r.machine).copied().unwrap_or(false))
        .count();
    let mut o = Outcome::new(
        Verdict::Fail,
        format!(
            "after {}: {}/{want} requests provisioned, {connected}/{want} connected",
            humantime(budget),
            provisioned.len()
        ),
    );
    for (id, r) in &mine {
        o.evidence.push(format!(
            "{id}: stage {}, machine {}, link {}",
            stage_name(r.stage),
            if r.machine.is_empty() {
                "-"
            } else {
                &r.machine
            },
            match links.get(&r.machine) {
                Some(true) => "connected",
                Some(false) => "not connected",
                None => "none",
            }
        ));
    }
    // Red flag: storage selector.
    if let Some((id, r)) = failed.iter().find(|(_, r)| {
        r.error.contains("failed to pick") || r.error.contains("no matches for the condition")
    }) {
        o.message = format!(
            "machine request {id} failed: {} — red flag \"VMs created but immediately deleted → storage_selector mismatch\"",
            r.error
        );
        o.remediation = Some("the class's storage_selector matches no storage on the chosen host: fix it to name an existing storage (`preflight::machine_classes` shows which), then re-run".into());
        return o;
    }
    // Red flag: provider disconnected.
    if let Ok(Some(s)) = omni
        .get_one(
            "infraprovidercombinedstatus",
            &cx.lab.spec.lab.omni.provider_id,
        )
        .await
        && !s.spec["health"]["connected"].as_bool().unwrap_or(false)
    {
        o.message = format!(
            "{} — red flag \"Provider disconnected → service account key expired\": the provider is not connected to Omni",
            o.message
        );
        o.remediation = Some("check the provider's logs and give it a fresh infra-provider key (`omnictl infraprovider create <id>`)".into());
        return o;
    }
    // Red flag: stuck at Registering.
    let stuck: Vec<&&(&String, &Request)> = provisioned
        .iter()
        .filter(|(_, r)| !links.get(&r.machine).copied().unwrap_or(false))
        .collect();
    if !stuck.is_empty() {
        let mut hosts = Vec::new();
        if let Ok(px) = cx.lab.proxmox() {
            let vms = px.cluster_vms().await.unwrap_or_default();
            for (id, _) in &stuck {
                if let Some(node) = vms
                    .iter()
                    .find(|v| v.name.as_deref() == Some(id.as_str()))
                    .and_then(|v| v.node.clone())
                {
                    let dns = px
                        .node_dns(&node)
                        .await
                        .map(|d| d.servers().join(", "))
                        .unwrap_or_else(|e| format!("unreadable: {e}"));
                    hosts.push(format!(
                        "VM {id} runs on {node}, which resolves through {dns}"
                    ));
                }
            }
        }
        o.message = format!(
            "{} of {want} VMs exist but never connected: SideroLink stuck at \"Registering\" → DNS issue; {}",
            stuck.len(),
            if hosts.is_empty() {
                "check the Proxmox hosts' DNS settings".to_string()
            } else {
                harness::scenario::first_of(&hosts, 3)
            }
        );
        if hosts.len() > 3 {
            o.evidence.extend(hosts.iter().cloned());
        }
        o.remediation = Some(format!(
            "VMs inherit their host's DNS and must resolve {} to Omni's LAN IP {}: set every Proxmox host's DNS to the LAN gateway ({}), then delete the stuck machines so they are re-created",
            cx.lab.spec.lab.dns.omni_hostname,
            cx.lab.spec.lab.omni.lan_ip,
            cx.lab
                .spec
                .lab
                .dns
                .lan_resolvers
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return o;
    }
    if let Some((id, r)) = failed.first() {
        o.message = format!("machine request {id} failed: {}", r.error);
    }
    o
}

fn stage_name(s: i64) -> &'static str {
    match s {
        1 => "PROVISIONING",
        2 => "PROVISIONED",
        3 => "FAILED",
        _ => "UNKNOWN",
    }
}

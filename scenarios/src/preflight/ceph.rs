//! `preflight::ceph` — the storage the VMs will land on is there and healthy.
//!
//! Proves (deployment plan): Risk "CEPH storage unavailable → check `pvesh get /storage` on
//! Proxmox before deploy"; Problem "3 control plane nodes + 2 workers on Matrix's CEPH storage".
//!
//! Checks, through the Proxmox API:
//! - Ceph health (`GET /cluster/ceph/status`): HEALTH_OK passes, HEALTH_WARN warns naming the
//!   checks, HEALTH_ERR fails; all OSDs up and in.
//! - For every machine class the template uses: the storage its `storage_selector` picks on
//!   each host (`GET /nodes/{node}/storage`, first match in API order, as the provider does)
//!   is enabled and active there, and a storage configured as shared (`GET /storage`) is
//!   shared on every host.
//! - Free space: the disks planned on each storage fit in its `avail`, keeping the lab's
//!   storage headroom (shared storages count every VM; local ones the VMs of one host).
//!
//! A selector that matches nothing is `preflight::machine_classes`'s finding, not this one's.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use harness::model::placement::gib;
use harness::model::selector::StorageSelector;
use harness::proxmox::types::StorageStatus;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct Ceph;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "preflight::ceph",
    module: module_path!(),
    phase: Phase::Preflight,
    proves: "Risk: CEPH storage unavailable (check pvesh get /storage before deploy)",
    needs: &[Need::Spec, Need::Proxmox],
    after: &[],
};

impl Scenario for Ceph {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let lab = &cx.lab;
    let px = lab.proxmox()?;
    let api = |e: harness::proxmox::ProxmoxError| Outcome::error(e.to_string());
    let mut fails: Vec<String> = Vec::new();
    let mut warns: Vec<String> = Vec::new();
    let mut evidence: Vec<String> = Vec::new();

    // 1. Ceph health and OSDs.
    match px.ceph_status().await {
        Ok(ceph) => {
            let checks: Vec<String> = ceph
                .health
                .checks
                .iter()
                .map(|(code, c)| {
                    format!(
                        "{code} ({})",
                        c.summary
                            .as_ref()
                            .and_then(|s| s.message.clone())
                            .unwrap_or_default()
                    )
                })
                .collect();
            match ceph.health.status.as_str() {
                "HEALTH_OK" => evidence.push("Ceph HEALTH_OK".into()),
                "HEALTH_WARN" => warns.push(format!("Ceph is HEALTH_WARN: {}", checks.join("; "))),
                other => fails.push(format!("Ceph is {other}: {}", checks.join("; "))),
            }
            if let Some(o) = &ceph.osdmap {
                let (n, up, inn) = (
                    o.num_osds.unwrap_or(0),
                    o.num_up_osds.unwrap_or(0),
                    o.num_in_osds.unwrap_or(0),
                );
                evidence.push(format!("OSDs: {n} total, {up} up, {inn} in"));
                if n == 0 || up == 0 {
                    fails.push(format!("no Ceph OSD is up ({up}/{n})"));
                } else if up < n || inn < n {
                    warns.push(format!("only {up}/{n} OSDs up and {inn}/{n} in"));
                }
            }
        }
        Err(e) => fails.push(format!("cannot read Ceph status: {e}")),
    }

    // 2. The storages the classes select, on the hosts they serve.
    let nodes = px.nodes().await.map_err(api)?;
    let config = px.storage_config().await.map_err(api)?;
    let mut per_node: BTreeMap<String, Vec<StorageStatus>> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.online()) {
        per_node.insert(n.node.clone(), px.node_storage(&n.node).await.map_err(api)?);
    }
    let (vms, _) = lab.spec.planned_vms();
    let headroom = lab.spec.lab.resources.storage_headroom_percent;
    // storage → (bytes planned if shared) / per host (bytes planned if local)
    let mut shared_need: BTreeMap<String, u64> = BTreeMap::new();
    let mut local_need: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut seen_class = std::collections::BTreeSet::new();
    // The VMs of one class with one pin pick the same storages: each group is evaluated
    // once (500 VMs on 28 hosts would otherwise be 14 000 selector evaluations).
    let mut groups: BTreeMap<(&str, &str, Option<&str>), u64> = BTreeMap::new();
    for vm in &vms {
        if let Some(sel) = vm.selector.as_deref() {
            *groups
                .entry((vm.class.as_str(), sel, vm.pin.as_deref()))
                .or_default() += vm.disk;
        }
    }
    for ((class, selector, pin), disk) in groups {
        let Ok(sel) = StorageSelector::compile(selector) else {
            continue;
        };
        let hosts: Vec<&String> = match pin {
            Some(p) => per_node.keys().filter(|k| *k == p).collect(),
            None => per_node.keys().collect(),
        };
        let mut chosen_any = None;
        for host in &hosts {
            let facts: Vec<_> = per_node[*host].iter().map(|s| s.facts(host)).collect();
            let Some(pick) = sel.pick(&facts) else {
                continue;
            };
            let status = &per_node[*host]
                .iter()
                .find(|s| s.storage == pick.name)
                .expect("picked from this list");
            if seen_class.insert((class, host.as_str())) {
                if !status.is_enabled() {
                    fails.push(format!(
                        "storage {} (class {class}) is disabled on {host}",
                        status.storage
                    ));
                } else if !status.is_active() {
                    fails.push(format!("storage {} (class {class}) is not active on {host}: Proxmox cannot use it now (Ceph down? pool missing?)", status.storage));
                }
                let conf_shared = config
                    .iter()
                    .find(|c| c.storage == status.storage)
                    .and_then(|c| c.shared)
                    .unwrap_or(false);
                if conf_shared && status.shared != Some(true) {
                    fails.push(format!(
                        "storage {} is configured shared but {host} does not report it shared",
                        status.storage
                    ));
                }
            }
            chosen_any = Some((status.storage.clone(), status.shared == Some(true)));
        }
        if let Some((storage, shared)) = chosen_any {
            if shared {
                *shared_need.entry(storage).or_default() += disk;
            } else {
                // A local storage holds the disk of the host the VM lands on; count it against
                // every host it could land on (worst case).
                for host in &hosts {
                    *local_need
                        .entry(((*host).clone(), storage.clone()))
                        .or_default() += disk;
                }
            }
        }
    }
    for (storage, need) in &shared_need {
        let avail = per_node
            .values()
            .flat_map(|l| l.iter())
            .filter(|s| &s.storage == storage && s.is_active())
            .filter_map(|s| s.avail)
            .max();
        if let Some(avail) = avail {
            let usable = avail - avail * u64::from(headroom) / 100;
            evidence.push(format!(
                "{storage}: {} planned, {} available ({} after {headroom}% headroom)",
                gib(*need),
                gib(avail),
                gib(usable)
            ));
            if *need > usable {
                fails.push(format!(
                    "storage {storage} has {} free above the headroom but the plan needs {}",
                    gib(usable),
                    gib(*need)
                ));
            }
        }
    }
    for ((host, storage), need) in &local_need {
        if let Some(s) = per_node[host]
            .iter()
            .find(|s| &s.storage == storage && s.is_active())
        {
            let avail = s.avail.unwrap_or(0);
            let usable = avail - avail * u64::from(headroom) / 100;
            if *need > usable {
                warns.push(format!("{storage} on {host} has {} free above the headroom; if every VM of its classes landed there they would need {}", gib(usable), gib(*need)));
            }
        }
    }

    let verdict = if !fails.is_empty() {
        Verdict::Fail
    } else if !warns.is_empty() {
        Verdict::Warn
    } else {
        Verdict::Pass
    };
    let message = match verdict {
        Verdict::Fail => fails.join("; "),
        Verdict::Warn => warns.join("; "),
        _ => format!(
            "Ceph healthy; the selected storages are active on {} host(s) with room for the planned disks",
            per_node.len()
        ),
    };
    let mut o = Outcome::new(verdict, message);
    o.evidence = evidence
        .into_iter()
        .chain(fails.iter().chain(warns.iter()).cloned())
        .collect();
    if verdict != Verdict::Pass {
        o.remediation = Some("fix Ceph before deploying: `ceph health detail` on a Proxmox host names the failing checks; a storage that is not active cannot receive VM disks (the provider would create the VM and Proxmox would refuse its disk)".into());
    }
    Ok(o.metric(
        "planned_shared_disk_bytes",
        shared_need.values().sum::<u64>() as f64,
        "bytes",
    ))
}

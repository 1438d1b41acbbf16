//! `preflight::ram_budget` — the planned VMs fit in the hosts' memory, placed the way the
//! provider will place them, and the cluster can lose a host.
//!
//! Proves (deployment plan): Risk "VM creation exhausts resources — Matrix has 192GB RAM
//! total; 5 VMs need ~72GB"; Definition of Done "Cluster survives single node failure".
//!
//! Planned VMs come from the template (set sizes) and machine classes (`memory`, `node` pin);
//! hosts from `GET /nodes` (`maxmem`, `mem`, status). Placement follows the provider: a pin is
//! honoured, otherwise the online host with the highest free-memory fraction — as the
//! provider's version sees it (`harness::model::placement`: up to v0.1.x a machine set stacks
//! on one host, from v0.2.0 it spreads). The version comes from the lab's
//! `omni.provider_version`, else from the provider's status in Omni, else v0.1.x is assumed
//! (the worst case) and said. The lab's `ram_headroom_percent` stays free on every host.
//! - fail: a VM does not fit;
//! - warn: losing some host, its VMs could not be re-created on the others;
//! - warn: every control plane lands on one host (etcd quorum dies with it).

use futures::future::BoxFuture;
use harness::model::placement::{
    HostMem, Plan, PlannedVm, ProviderVersion, Scheduler, gib, place, usable,
};
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct RamBudget;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "preflight::ram_budget",
    module: module_path!(),
    phase: Phase::Preflight,
    proves: "Risk: VM creation exhausts resources (192GB total; 5 VMs need ~72GB)",
    needs: &[Need::Spec, Need::Proxmox],
    after: &[],
};

impl Scenario for RamBudget {
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
    let headroom = lab.spec.lab.resources.ram_headroom_percent;
    let nodes = px
        .nodes()
        .await
        .map_err(|e| Outcome::error(e.to_string()))?;
    let hosts: Vec<HostMem> = nodes.iter().map(HostMem::from_node).collect();
    let (vms, skipped) = lab.spec.planned_vms();
    if vms.is_empty() {
        return Err(Outcome::skip(format!(
            "no VM can be planned from the template and classes{}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!(": {}", skipped.join("; "))
            }
        )));
    }
    let (scheduler, version_said) = scheduler(cx).await;
    let plan = place(&hosts, &vms, headroom, scheduler);
    let planned: u64 = vms.iter().map(|v| v.memory).sum();
    let capacity: u64 = hosts
        .iter()
        .filter(|h| h.online)
        .map(|h| usable(h, headroom).saturating_sub(h.used))
        .sum();

    let mut evidence = vec![version_said];
    evidence.extend(describe(&hosts, &vms, &plan, headroom));
    evidence.extend(skipped.iter().map(|s| format!("not planned: {s}")));
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    for (_, why) in &plan.unplaced {
        fails.push(why.clone());
    }
    if fails.is_empty() {
        // Losing one host: can its VMs be re-created on the others?
        for h in hosts.iter().filter(|h| h.online) {
            let lost: Vec<PlannedVm> = plan
                .placed
                .get(&h.name)
                .into_iter()
                .flatten()
                .map(|i| PlannedVm {
                    pin: None,
                    ..vms[*i].clone()
                })
                .collect();
            if lost.is_empty() {
                continue;
            }
            let survivors: Vec<HostMem> = hosts
                .iter()
                .filter(|o| o.name != h.name)
                .map(|o| HostMem {
                    used: plan.used_after.get(&o.name).copied().unwrap_or(o.used),
                    ..o.clone()
                })
                .collect();
            let again = place(&survivors, &lost, headroom, scheduler);
            if !again.unplaced.is_empty() {
                warns.push(format!(
                    "if {} fails, {} of its {} VM(s) cannot be re-created on the other hosts ({} needed)",
                    h.name,
                    again.unplaced.len(),
                    lost.len(),
                    gib(lost.iter().map(|v| v.memory).sum())
                ));
            }
        }
        let cp_hosts: std::collections::BTreeSet<&String> = plan
            .placed
            .iter()
            .filter(|(_, ids)| ids.iter().any(|i| vms[*i].control_plane))
            .map(|(h, _)| h)
            .collect();
        let cps = vms.iter().filter(|v| v.control_plane).count();
        if cps > 1 && cp_hosts.len() == 1 {
            warns.push(format!(
                "all {cps} control planes land on {}{}: etcd loses quorum when that host fails — pin each control plane to its own host (`node` in the machine class's providerdata, one class per host){}",
                cp_hosts.iter().next().map(|s| s.as_str()).unwrap_or("?"),
                if scheduler == Scheduler::Unreserved { " (the provider before v0.2.0 places a machine set's VMs together)" } else { "" },
                if scheduler == Scheduler::Unreserved { " or upgrade the provider to v0.2.0+, which spreads a set" } else { "" },
            ));
        }
    }
    let (verdict, message) = if !fails.is_empty() {
        (
            Verdict::Fail,
            format!(
                "the planned VMs do not fit: {}",
                harness::scenario::first_of(&fails, 3)
            ),
        )
    } else if !warns.is_empty() {
        (Verdict::Warn, warns.join("; "))
    } else {
        (
            Verdict::Pass,
            format!(
                "{} VM(s), {} planned; {} free above the {headroom}% headroom; any one host can be lost",
                vms.len(),
                gib(planned),
                gib(capacity)
            ),
        )
    };
    let mut o = Outcome::new(verdict, message)
        .metric("planned_memory", planned as f64, "bytes")
        .metric("free_memory_above_headroom", capacity as f64, "bytes");
    if fails.len() > 3 {
        evidence.extend(fails.iter().cloned());
    }
    o.evidence = evidence;
    if verdict != Verdict::Pass {
        o.remediation = Some("lower `memory` in the machine classes, reduce the set sizes, pin VMs with `node` to hosts that have room, or free memory on the hosts".into());
    }
    Ok(o)
}

/// The per-host plan, one line per host.
fn describe(hosts: &[HostMem], vms: &[PlannedVm], plan: &Plan, headroom: u8) -> Vec<String> {
    hosts
        .iter()
        .map(|h| {
            let placed: Vec<String> = plan.placed.get(&h.name).into_iter().flatten().map(|i| format!("{} ({})", vms[*i].label, gib(vms[*i].memory))).collect();
            if !h.online {
                return format!("{}: offline", h.name);
            }
            format!(
                "{}: {} total, {} in use, {} usable with {headroom}% headroom; gets {}; {} in use after",
                h.name,
                gib(h.total),
                gib(h.used),
                gib(usable(h, headroom)),
                if placed.is_empty() { "nothing".into() } else { placed.join(", ") },
                gib(plan.used_after.get(&h.name).copied().unwrap_or(h.used)),
            )
        })
        .collect()
}

/// The provider's placement behaviour, and a line saying where the version came from.
async fn scheduler(cx: &Context) -> (Scheduler, String) {
    let lab = &cx.lab.spec.lab;
    if let Some(v) = &lab.omni.provider_version {
        return (
            v.scheduler(),
            format!("provider {v} (omni.provider_version)"),
        );
    }
    if let Some(omni) = cx.lab.omni.as_ref()
        && let Ok(Some(st)) = omni
            .get_one("infraprovidercombinedstatus", &lab.omni.provider_id)
            .await
        && let Some(raw) = st.spec.get("version").and_then(|v| v.as_str())
    {
        if let Some(v) = ProviderVersion::parse(raw) {
            return (
                v.scheduler(),
                format!("provider {v} (from its status in Omni)"),
            );
        }
        return (
            Scheduler::Unreserved,
            format!(
                "provider version {raw:?} not understood: placing as v0.1.x does (a machine set on one host)"
            ),
        );
    }
    (
        Scheduler::Unreserved,
        "provider version unknown (set omni.provider_version): placing as v0.1.x does, a machine set on one host".into(),
    )
}

//! `preflight::machine_classes` — the machine classes are ones the Omni Proxmox provider can
//! act on, for the provider this lab runs.
//!
//! Proves (deployment plan): Step 1 "Apply Machine Classes" will be accepted; Constraint
//! "storage_selector uses name only — CEL `type` keyword is reserved" (corrected: storage
//! type is the `storageType` variable); red flag "VMs created but immediately deleted →
//! storage_selector mismatch".
//!
//! Offline rules (ids as printed by `clusterproof lint`, documented in `docs/rules.md`):
//! - `class.schema`, `class.providerdata` — resource shape, providerdata keys, types,
//!   required keys and the provider schema's minimums and enums.
//! - `class.selector` — every `storage_selector` compiles in the provider's CEL environment
//!   (`name`, `node`, `storageType`, `availableSpace` uint) and returns bool.
//! - `class.pcie-machine-type` — a PCIe passthrough device needs `machine_type: q35`.
//! - `class.provider` — `providerid` is the lab's provider id.
//! - `class.duplicate-id` — one id, one class.
//!
//! Live rules, when the run has a Proxmox connection:
//! - `class.selector-match` — on every host the class can land on, the selector matches
//!   exactly one storage (none: fail with the provider's own error text; several: warn).
//! - `class.pinned-node` — a pinned `node` exists and is online.

use futures::future::BoxFuture;
use harness::model::machine_class::{MachineClass, PROVIDERDATA_RULE};
use harness::model::selector::StorageSelector;
use harness::proxmox::{ProxmoxClient, ProxmoxError};
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario};
use harness::source::{Finding, Location};
use harness::spec::LabSpec;
use harness::yaml::At;

pub struct MachineClasses;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "preflight::machine_classes",
    module: module_path!(),
    phase: Phase::Preflight,
    proves: "Constraint: storage_selector uses name only (CEL `type` is reserved; use `storageType`); Step 1 validation",
    needs: &[Need::Spec],
    after: &[],
};

impl Scenario for MachineClasses {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let spec = &cx.lab.spec;
            let mut findings = check(spec);
            let mut evidence = Vec::new();
            match &cx.lab.proxmox {
                Some(px) => match live(px, spec).await {
                    Ok((f, e)) => {
                        findings.extend(f);
                        evidence = e;
                    }
                    Err(e) => return Outcome::error(format!("live check: {e}")),
                },
                None => evidence.push("live half not evaluated: this run has no Proxmox connection (storages on each host, pinned nodes)".to_string()),
            }
            let ids: Vec<&str> = spec.classes().map(|c| c.id.value.as_str()).collect();
            let summary = if spec.lab_given {
                format!(
                    "{} class(es) valid for provider `{}`: {}",
                    ids.len(),
                    spec.lab.omni.provider_id,
                    ids.join(", ")
                )
            } else {
                evidence.push(
                    "no lab file: the classes' providerid is not compared with the lab's provider"
                        .to_string(),
                );
                format!("{} class(es) valid: {}", ids.len(), ids.join(", "))
            };
            let mut o = Outcome::from_findings(findings, &summary);
            o.evidence = evidence;
            if o.findings.iter().any(|f| f.rule == "class.selector-match") {
                o.remediation = Some(format!(
                    "red flag \"VMs created but immediately deleted → storage_selector mismatch\": {}",
                    o.remediation.unwrap_or_default()
                ));
            }
            o
        })
    }
}

/// The live half: each class's selector against each host's storages (`GET /nodes/{node}/storage`,
/// in API order, as the provider evaluates it) and its pinned node against `GET /nodes`.
async fn live(
    px: &ProxmoxClient,
    spec: &LabSpec,
) -> Result<(Vec<Finding>, Vec<String>), ProxmoxError> {
    let nodes = px.nodes().await?;
    let online: Vec<&str> = nodes
        .iter()
        .filter(|n| n.online())
        .map(|n| n.node.as_str())
        .collect();
    let mut storages = std::collections::BTreeMap::new();
    for n in &online {
        storages.insert(*n, px.node_storage(n).await?);
    }
    let mut f = Vec::new();
    let mut evidence = Vec::new();
    for class in spec.classes() {
        let Some(pd) = class
            .auto_provision
            .as_ref()
            .and_then(|a| a.provider_data.as_ref())
        else {
            continue;
        };
        let mut hosts: Vec<&str> = online.clone();
        if let Some(pin) = &pd.node {
            match nodes.iter().find(|n| n.node == pin.value) {
                None => {
                    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
                    f.push(
                        Finding::error(
                            "class.pinned-node",
                            pin.at.clone(),
                            format!("specified node \"{}\" not found in cluster", pin.value),
                        )
                        .fix(format!("pin one of {}, or remove `node`", names.join(", "))),
                    );
                    continue;
                }
                Some(n) if !n.online() => {
                    f.push(
                        Finding::error(
                            "class.pinned-node",
                            pin.at.clone(),
                            format!(
                                "specified node \"{}\" is not online (status: {})",
                                pin.value,
                                n.status.as_deref().unwrap_or("unknown")
                            ),
                        )
                        .fix("bring the host back, or pin another one"),
                    );
                    continue;
                }
                Some(_) => hosts = vec![pin.value.as_str()],
            }
        }
        let Some(sel_at) = &pd.storage_selector else {
            continue;
        };
        let Ok(sel) = StorageSelector::compile(&sel_at.value) else {
            continue;
        };
        for host in hosts {
            let list = &storages[host];
            let matches: Vec<&str> = list
                .iter()
                .filter(|s| sel.matches(&s.facts(host)))
                .map(|s| s.storage.as_str())
                .collect();
            match matches.as_slice() {
                [] => {
                    let names: Vec<&str> = list.iter().map(|s| s.storage.as_str()).collect();
                    f.push(
                        Finding::error("class.selector-match", sel_at.at.clone(), format!("class {} on host {host}: {}", class.id.value, sel.no_match_message()))
                            .fix(format!("the storages on {host} are {}; select one of them by name (e.g. `name == \"{}\"`) or create the missing storage", names.join(", "), names.first().unwrap_or(&"?"))),
                    );
                }
                [one] => evidence.push(format!("class {} → storage {one} on {host}", class.id.value)),
                many => f.push(
                    Finding::warning("class.selector-match", sel_at.at.clone(), format!("class {} matches {} storages on {host} ({}); the provider takes the first, {}", class.id.value, many.len(), many.join(", "), many[0]))
                        .fix("narrow the selector so it names exactly one storage, e.g. `name == \"...\"`"),
                ),
            }
        }
    }
    Ok((f, evidence))
}

/// All offline machine-class rules.
pub fn check(spec: &LabSpec) -> Vec<Finding> {
    let mut f: Vec<Finding> = spec
        .class_files
        .iter()
        .flat_map(|c| c.findings.iter().cloned())
        .collect();
    let mut seen: Vec<&MachineClass> = Vec::new();
    for class in spec.classes() {
        if let Some(first) = seen.iter().find(|c| c.id.value == class.id.value) {
            f.push(
                Finding::error(
                    "class.duplicate-id",
                    class.id.at.clone(),
                    format!(
                        "machine class \"{}\" is defined twice (first at {})",
                        class.id.value, first.id.at
                    ),
                )
                .fix("keep one definition per id; `omnictl apply` would let the last one win"),
            );
        }
        seen.push(class);
        check_class(spec, class, &mut f);
    }
    f
}

fn check_class(spec: &LabSpec, class: &MachineClass, f: &mut Vec<Finding>) {
    let Some(auto) = &class.auto_provision else {
        if class.match_labels.is_empty() {
            f.push(
                Finding::error("class.schema", class.at.clone(), format!("machine class \"{}\" has neither `autoprovision` nor `matchlabels`", class.id.value))
                    .fix("add `spec.autoprovision` with `providerid` and `providerdata` so the provider creates the VMs"),
            );
        }
        return;
    };
    // The provider this lab runs must be the one the class names (without a lab file, only
    // that it names one).
    let want = &spec.lab.omni.provider_id;
    match &auto.provider_id {
        None if !spec.lab_given => f.push(Finding::error("class.provider", auto.at.clone(), "providerID can not be empty").fix("set `providerid:` to the infra provider's id (its --id)")),
        None => f.push(Finding::error("class.provider", auto.at.clone(), "providerID can not be empty").fix(format!("set `providerid: {want}`"))),
        Some(p) if spec.lab_given && &p.value != want => f.push(
            Finding::error("class.provider", p.at.clone(), format!("providerid is \"{}\" but the lab's provider is \"{want}\": no provider would create these VMs", p.value))
                .fix(format!("set `providerid: {want}` (the provider's --id), or fix omni.provider_id in the lab file")),
        ),
        _ => {}
    }
    let Some(pd) = &auto.provider_data else {
        return;
    };
    if let Some(sel) = &pd.storage_selector {
        selector(sel, "storage_selector", f);
    }
    for (i, disk) in pd.additional_disks.iter().enumerate() {
        if let Some(sel) = &disk.storage_selector {
            selector(
                sel,
                &format!("additional disk {}: storage_selector", i + 1),
                f,
            );
        }
    }
    let q35 = pd.machine_type.as_ref().is_some_and(|m| m.value == "q35");
    for dev in pd
        .pci_devices
        .iter()
        .filter(|d| d.pcie.as_ref().is_some_and(|p| p.value))
    {
        if !q35 {
            let at = pd
                .machine_type
                .as_ref()
                .map(|m| m.at.clone())
                .unwrap_or_else(|| dev.at.clone());
            let found = pd
                .machine_type
                .as_ref()
                .map(|m| format!("\"{}\"", m.value))
                .unwrap_or_else(|| "not set (i440fx)".into());
            f.push(
                Finding::error("class.pcie-machine-type", at, format!("PCI device `{}` uses `pcie: true`, which needs the q35 machine type; machine_type is {found}", dev.mapping.as_ref().map(|m| m.value.as_str()).unwrap_or("?")))
                    .fix("set `machine_type: q35` in providerdata (or drop `pcie: true`)"),
            );
        }
    }
    if let Some(n) = &pd.node
        && n.value.trim().is_empty()
    {
        f.push(
            Finding::error(PROVIDERDATA_RULE, n.at.clone(), "`node` is empty")
                .fix("name a Proxmox node, or remove `node` to let the provider place the VM"),
        );
    }
}

/// Compile one selector as the provider would; point into the expression when we can.
fn selector(sel: &At<String>, what: &str, f: &mut Vec<Finding>) {
    if let Err(e) = StorageSelector::compile(&sel.value) {
        // For a one-line expression, the column in the expression maps onto the file.
        let at = match e.column() {
            Some(c) if !sel.value.contains('\n') => Location {
                col: sel.at.col + u64::from(c) - 1,
                ..sel.at.clone()
            },
            _ => sel.at.clone(),
        };
        f.push(
            Finding::error(
                "class.selector",
                at,
                format!(
                    "{what} `{}` would be rejected by the provider: {e}",
                    sel.value
                ),
            )
            .fix(e.fix()),
        );
    }
}

//! The placement prediction (`harness::model::placement`, used by `preflight::ram_budget`) and
//! the twin's provider agree, for both provider behaviours of failure-semantics.md §1 — up to
//! v0.1.x a machine set stacks on one host, from v0.2.0 it spreads — over several inventories:
//! the seed's three hosts of unequal use, and generated inventories of larger twins. For each,
//! the test predicts from the twin's own `GET /nodes` and the template before provisioning,
//! provisions through the CLI, and compares how many hosts each machine set ended up on. Where
//! the prediction stacks the control planes, `preflight::ram_budget` warns with the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::model::placement::{HostMem, ProviderVersion, place};
use twin::proxmox::Placement;

const EXE: &str = env!("CARGO_BIN_EXE_clusterproof");

fn cli(args: &[&str], out: &Path) -> (i32, serde_json::Value, String) {
    let o = tokio::task::block_in_place(|| {
        Command::new(EXE)
            .args(args)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let r = std::fs::read_to_string(out.join("result.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), r, text)
}

/// Machine set → the hosts its VMs are on.
type Spread = BTreeMap<String, BTreeSet<String>>;

async fn predicted_and_actual(
    placement: Placement,
    size: twin::TwinSize,
) -> (Spread, Spread, serde_json::Value) {
    harness::proxmox::tls::install_default_provider();
    let t = twin::Twin::start(twin::TwinOptions {
        exe: Some(EXE.into()),
        size,
        placement,
        ..Default::default()
    })
    .await
    .unwrap();
    let lab = t.lab_path().to_path_buf();
    let spec = harness::spec::LabSpec::load(&lab, &Default::default()).unwrap();
    let version = spec
        .lab
        .omni
        .provider_version
        .clone()
        .expect("the twin's lab names its provider version");
    assert_eq!(
        version,
        ProviderVersion::parse(placement.version()).unwrap()
    );
    let px =
        harness::proxmox::ProxmoxClient::new(&spec.lab.proxmox, Duration::from_secs(10)).unwrap();
    let hosts: Vec<HostMem> = px
        .nodes()
        .await
        .unwrap()
        .iter()
        .map(HostMem::from_node)
        .collect();
    let (vms, skipped) = spec.planned_vms();
    assert!(skipped.is_empty(), "{skipped:?}");
    let plan = place(
        &hosts,
        &vms,
        spec.lab.resources.ram_headroom_percent,
        version.scheduler(),
    );
    assert!(plan.unplaced.is_empty(), "{:?}", plan.unplaced);
    let mut predicted = Spread::new();
    for (host, ids) in &plan.placed {
        for i in ids {
            predicted
                .entry(vms[*i].set.clone())
                .or_default()
                .insert(host.clone());
        }
    }

    let (_, preflight, text) = cli(
        &["preflight", "--lab", lab.to_str().unwrap()],
        &t.dir().join("pre"),
    );
    let ram = preflight["scenarios"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "preflight::ram_budget"))
        .unwrap_or_else(|| panic!("no ram_budget:\n{text}"))["outcome"]
        .clone();

    let (code, _, text) = cli(
        &["provision", "--yes", "--lab", lab.to_str().unwrap()],
        &t.dir().join("prov"),
    );
    assert_eq!(code, 0, "provision {size} {placement:?}:\n{text}");
    let mut actual = Spread::new();
    for v in px.cluster_vms().await.unwrap() {
        let (Some(name), Some(node)) = (v.name, v.node) else {
            continue;
        };
        // Only the cluster's VMs (the inventory has others, e.g. `unifi`).
        if !name.starts_with("talos-prod-01-") {
            continue;
        }
        // `talos-prod-01-workers-4x8k2p` belongs to set `talos-prod-01-workers`.
        let set = name
            .rsplit_once('-')
            .map(|(s, _)| s.to_string())
            .unwrap_or(name);
        actual.entry(set).or_default().insert(node);
    }
    t.shutdown().await;
    (predicted, actual, ram)
}

fn hosts_per_set(s: &Spread) -> BTreeMap<&str, usize> {
    s.iter().map(|(k, v)| (k.as_str(), v.len())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prediction_and_twin_agree_for_both_provider_behaviours() {
    let sizes = [
        twin::TwinSize::SEED,
        twin::TwinSize::parse("3+5").unwrap(),
        twin::TwinSize::parse("5+12").unwrap(),
    ];
    for placement in [Placement::Reserving, Placement::Unreserved] {
        for size in sizes {
            let (predicted, actual, ram) = predicted_and_actual(placement, size).await;
            println!("{placement:?} {size}: predicted {predicted:?}, twin {actual:?}");
            assert_eq!(
                hosts_per_set(&predicted),
                hosts_per_set(&actual),
                "{placement:?} {size}: hosts per machine set\npredicted {predicted:?}\ntwin      {actual:?}"
            );
            let cp = "talos-prod-01-control-planes";
            let stacked = predicted[cp].len() == 1;
            assert_eq!(
                stacked,
                placement == Placement::Unreserved,
                "{placement:?} {size}: {predicted:?}"
            );
            let msg = ram["message"].as_str().unwrap_or_default();
            if stacked {
                assert_eq!(ram["verdict"], "warn", "{ram:#}");
                assert!(
                    msg.contains("control planes land on")
                        && msg.contains("pin each control plane"),
                    "{msg}"
                );
            } else {
                assert!(!msg.contains("control planes land on"), "{msg}");
            }
        }
    }
}

//! `--dry-run` sends no mutating request: `clusterproof provision --yes --dry-run` against the
//! twin leaves the Kubernetes and Proxmox request counters without a single mutating request,
//! creates no VM and syncs no template into Omni.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_provision_changes_nothing() {
    harness::proxmox::tls::install_default_provider();
    let t = twin::Twin::start(twin::TwinOptions {
        exe: Some(env!("CARGO_BIN_EXE_clusterproof").into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let lab = t.lab_path().to_str().unwrap().to_string();
    let out = t.dir().join("dry");
    let vms_before = t.proxmox.request_counts();
    let o = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_clusterproof"))
            .args(["provision", "--yes", "--dry-run", "--lab", &lab, "--out"])
            .arg(&out)
            .output()
            .unwrap()
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    for s in result["scenarios"].as_array().unwrap() {
        assert_eq!(s["outcome"]["verdict"], "skip", "{s}\n{text}");
    }
    assert!(text.contains("dry run"), "{text}");
    let kube = t.kube.request_counts();
    let proxmox = t.proxmox.request_counts();
    assert_eq!(kube.mutating, 0, "Kubernetes: {:?}", kube.by_key);
    assert_eq!(proxmox.mutating, 0, "Proxmox: {:?}", proxmox.by_key);
    assert_eq!(
        proxmox.total, vms_before.total,
        "nothing asked of Proxmox either"
    );
    assert!(
        t.omni.list("MachineRequests.omni.sidero.dev").is_empty(),
        "no template was synced"
    );
    // The same command without --dry-run does change the lab: the counters can see it.
    let o = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_clusterproof"))
            .args(["provision", "--yes", "--lab", &lab, "--out"])
            .arg(t.dir().join("real"))
            .output()
            .unwrap()
    });
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(t.kube.request_counts().mutating > 0);
    assert!(!t.omni.list("MachineRequests.omni.sidero.dev").is_empty());
}

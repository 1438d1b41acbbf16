//! `clusterproof provision` against the twin: Steps 1–5 end with every node of the template
//! Ready and Omni reporting the cluster RUNNING; a re-run changes nothing and passes; the red
//! flags of Step 3 are diagnosed by name.

use std::path::Path;
use std::process::{Command, Output};

use harness::kube::{KubeClient, is_control_plane, node_ready};

fn clusterproof(args: &[&str]) -> (Output, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_clusterproof"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o, text)
}

fn result(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap()
}

fn outcome<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    &r["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing"))["outcome"]
}

/// The twin's omnictl, as the lab names it, with the lab's key and endpoint.
fn omnictl(t: &twin::Twin, args: &[&str]) -> Output {
    let cfg = t.dir().join("omniconfig");
    Command::new(t.dir().join("omnictl"))
        .args(args)
        .env("OMNI_ENDPOINT", t.omni.endpoint())
        .env("OMNI_SERVICE_ACCOUNT_KEY", t.omni.service_account_key())
        .env_remove("SIDERO_SERVICE_ACCOUNT_KEY")
        .env("OMNICONFIG", cfg)
        .output()
        .unwrap()
}

// Multi-threaded: the twin keeps serving while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_brings_every_node_of_the_template_up_and_a_rerun_is_a_no_op() {
    harness::proxmox::tls::install_default_provider();
    let t = twin::Twin::start(twin::TwinOptions {
        exe: Some(env!("CARGO_BIN_EXE_clusterproof").into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let lab = t.lab_path().to_str().unwrap().to_string();
    let out = t.dir().join("first");
    let (o, text) = tokio::task::block_in_place(|| {
        clusterproof(&[
            "provision",
            "--yes",
            "--lab",
            &lab,
            "--out",
            out.to_str().unwrap(),
        ])
    });
    assert_eq!(o.status.code(), Some(0), "{text}");
    let r = result(&out);
    for id in [
        "provision::machine_classes",
        "provision::cluster",
        "provision::kubeconfig",
        "provision::cilium",
    ] {
        assert_eq!(outcome(&r, id)["verdict"], "pass", "{id}: {text}");
    }
    // The run's kubeconfig holds a bearer token: it is kept out of the report directory.
    let kubeconfig = t.dir().join("test-kubeconfig");
    let kc = omnictl(
        &t,
        &[
            "kubeconfig",
            kubeconfig.to_str().unwrap(),
            "-c",
            "talos-prod-01",
            "--service-account",
            "--user",
            "clusterproof",
            "--merge=false",
            "--force",
        ],
    );
    assert!(
        kc.status.success(),
        "{}",
        String::from_utf8_lossy(&kc.stderr)
    );
    let kc_text = std::fs::read_to_string(&kubeconfig).unwrap();
    let token = kc_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .map(|t| t.trim_matches('"').to_string())
        .expect("a service-account kubeconfig has a token");
    assert!(token.len() > 8, "{token}");
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !name.contains("kubeconfig"),
            "{name} in the report directory"
        );
        let body = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        assert!(!body.contains(&token), "{name} holds the cluster's token");
    }
    // Counts come from the template: 3 control planes + 2 workers, all Ready.
    let kube = KubeClient::from_kubeconfig(&kubeconfig).await.unwrap();
    let nodes = kube.nodes().await.unwrap();
    assert_eq!(nodes.len(), 5);
    assert_eq!(nodes.iter().filter(|n| is_control_plane(n)).count(), 3);
    assert!(nodes.iter().all(|n| node_ready(n) == Some("True")));
    // Node name = VM name = machine request id (the name chain).
    for n in &nodes {
        let name = n.metadata.name.clone().unwrap();
        assert!(t.proxmox.vm_by_name(&name).is_some(), "no VM named {name}");
    }
    // Omni says RUNNING, through the same omnictl the lab names.
    let cs = omnictl(&t, &["get", "clusterstatus", "talos-prod-01", "-o", "json"]);
    assert!(
        cs.status.success(),
        "{}",
        String::from_utf8_lossy(&cs.stderr)
    );
    let cs = harness::omni::parse_json(&String::from_utf8_lossy(&cs.stdout)).unwrap();
    assert_eq!(cs[0].spec["phase"], 3, "{:?}", cs[0].spec);
    assert_eq!(cs[0].spec["ready"], true);
    let status = omnictl(
        &t,
        &[
            "cluster",
            "template",
            "status",
            "-f",
            "fixtures/seed/clusters/talos-prod-01.yaml",
            "--wait",
            "0",
        ],
    );
    assert!(
        status.status.success(),
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .starts_with("Cluster \"talos-prod-01\" RUNNING Ready (5/5)")
    );

    // A re-run on the provisioned cluster passes and changes nothing.
    let again = t.dir().join("second");
    let (o, text) = tokio::task::block_in_place(|| {
        clusterproof(&[
            "provision",
            "--yes",
            "--lab",
            &lab,
            "--out",
            again.to_str().unwrap(),
        ])
    });
    assert_eq!(o.status.code(), Some(0), "{text}");
    let r = result(&again);
    assert!(
        outcome(&r, "provision::cluster")["evidence"]
            .to_string()
            .contains("template sync: 0 change(s)"),
        "{}",
        outcome(&r, "provision::cluster")
    );
    assert!(
        outcome(&r, "provision::cilium")["message"]
            .as_str()
            .unwrap()
            .contains("already installed")
    );
    assert_eq!(kube.nodes().await.unwrap().len(), 5, "no new nodes");
    t.shutdown().await;
}

#[test]
fn step_3_red_flags_are_named() {
    for (fault, words) in [
        (
            "dns-public-on-hosts",
            &["stuck at \"Registering\"", "DNS issue", "1.1.1.1"][..],
        ),
        (
            "storage-missing",
            &[
                "failed to pick the disk: no matches for the condition",
                "storage_selector mismatch",
            ][..],
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let (o, text) = clusterproof(&[
            "provision",
            "--fault",
            fault,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{fault}: {text}");
        let r = result(&out);
        let c = outcome(&r, "provision::cluster");
        assert_eq!(c["verdict"], "fail", "{fault}: {c}");
        for w in words {
            assert!(
                c["message"].as_str().unwrap().contains(w),
                "{fault}: no {w:?} in {}",
                c["message"]
            );
        }
        assert!(c["remediation"].is_string(), "{fault}: no remediation");
        for later in ["provision::kubeconfig", "provision::cilium"] {
            assert_eq!(outcome(&r, later)["verdict"], "skip", "{fault}: {later}");
        }
    }
}

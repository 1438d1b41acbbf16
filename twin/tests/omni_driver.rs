//! Contract: the harness's Omni driver against the twin's omnictl shim, over the real process
//! boundary — JSON and YAML outputs parse to the same resources, watches stream typed events,
//! and error exits become the driver's errors.

use std::time::Duration;

use harness::model::lab::{Omni as OmniLab, SecretSource};
use harness::omni::{EventKind, OmniClient, OmniError, parse_yaml};
use twin::omni::{OmniFault, OmniSpec, OmniTwin};

async fn setup(faults: Vec<OmniFault>) -> (OmniTwin, OmniClient, tempfile::TempDir) {
    let t = OmniTwin::start(OmniSpec {
        provider_id: "matrix-cluster".into(),
        account: "clusterproof".into(),
        faults: vec![],
        omni_faults: faults,
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, t.service_account_key()).unwrap();
    let lab = OmniLab {
        endpoint: t.endpoint(),
        omnictl: env!("CARGO_BIN_EXE_omnictl-twin").into(),
        provider_id: "matrix-cluster".into(),
        lan_ip: "192.168.10.20".parse().unwrap(),
        service_account_key: SecretSource::File(key),
        omniconfig: None,
        provider_version: None,
    };
    let c = OmniClient::new(&lab, Duration::from_secs(20)).unwrap();
    (t, c, dir)
}

fn seed(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/seed")
        .join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_yaml_watch_and_errors_round_trip() {
    let (t, c, _dir) = setup(vec![]).await;
    c.apply(&seed("machine-classes/matrix-control-plane.yaml"))
        .await
        .unwrap();
    c.apply(&seed("machine-classes/matrix-worker.yaml"))
        .await
        .unwrap();
    let json = c.get("machineclasses", None).await.unwrap();
    assert_eq!(
        json.iter()
            .map(|r| r.metadata.id.as_str())
            .collect::<Vec<_>>(),
        ["matrix-control-plane", "matrix-worker"]
    );
    assert_eq!(json[0].metadata.kind, "MachineClasses.omni.sidero.dev");
    assert!(
        json[1].spec["autoprovision"]["providerdata"]
            .as_str()
            .unwrap()
            .contains("storage_selector: name == \"vm_ssd\"")
    );
    // The same resources through -o yaml.
    let yaml = parse_yaml(
        &c.run(&["get", "machineclasses", "-o", "yaml"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(yaml, json);
    // A watch sees the 5 machine requests a sync makes, as `created` events.
    let mut w = c.watch("machinerequest").unwrap();
    let out = c
        .template("sync", &seed("clusters/talos-prod-01.yaml"), &[])
        .await
        .unwrap();
    assert!(
        out.contains("* creating Clusters.omni.sidero.dev(talos-prod-01)"),
        "{out}"
    );
    let mut ids = Vec::new();
    while ids.len() < 5 {
        let e = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch stalled")
            .unwrap()
            .unwrap();
        if e.event == EventKind::Created {
            ids.push(e.resource.metadata.id);
        }
    }
    assert_eq!(
        ids.iter()
            .filter(|i| i.starts_with("talos-prod-01-control-planes-"))
            .count(),
        3
    );
    drop(w);
    // Errors.
    assert!(
        c.get_one("clusterstatus", "nope").await.unwrap().is_none(),
        "NotFound is None"
    );
    assert!(matches!(
        c.get("notatype", None).await.unwrap_err(),
        OmniError::NotRegistered { .. }
    ));
    let invalid = c
        .template(
            "validate",
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fixtures/bad/two-controlplanes.yaml"
            )),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        invalid
            .to_string()
            .contains("template should contain 1 controlplane, got 2"),
        "{invalid}"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_unauthenticated_with_a_fix() {
    let (t, c, _dir) = setup(vec![OmniFault::AuthExpired]).await;
    let e = c.get("clusters", None).await.unwrap_err();
    assert!(matches!(e, OmniError::Unauthenticated { .. }), "{e:?}");
    assert!(
        e.to_string().contains("expired or was revoked") && e.to_string().contains("file"),
        "{e}"
    );
    t.shutdown().await;
}

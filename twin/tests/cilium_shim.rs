//! The cilium shim binary against the Kubernetes twin: `cilium status` before and after
//! `cilium install` (summary and `-o json` in cilium-cli's shape, computed from the cluster's
//! objects), `--wait` until the agents run, and the `cilium-mtu-autodetect` fault as the
//! harness's Cilium driver sees it.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::*;

async fn cilium(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_cilium-twin"))
        .arg("--twin-time-scale=0.01")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .await
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sets(values: &BTreeMap<String, String>) -> Vec<String> {
    values
        .iter()
        .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_the_install_and_the_agents() {
    let t = start(0.01).await;
    let c = client(&t).await;
    join(&t, "cp-1", true);
    join(&t, "w-1", false);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, t.kubeconfig_yaml("talos-prod-01", "clusterproof")).unwrap();

    // Nothing installed: the agent DaemonSet is missing — a collection error, exit 1.
    let (code, out, err) = cilium(&kc, &["status", "-o", "json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collection_errors"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(
        v["errors"]["cilium"]["cilium"]["Errors"],
        serde_json::json!([{}])
    );
    assert_eq!(
        v["errors"]["cilium-operator"]["cilium-operator"]["Disabled"],
        true
    );
    assert!(
        err.contains("status check failed: [daemonsets.apps \"cilium\" not found]"),
        "{err}"
    );

    let values = harness::model::lab::default_cilium_values();
    let mut args = vec!["install".to_string()];
    args.extend(sets(&values));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = cilium(&kc, &args).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Auto-detected kube-proxy has not been installed"),
        "{out}"
    );
    assert!(
        out.contains("Cilium will fully replace all functionalities of kube-proxy"),
        "{out}"
    );

    // The twin's CNI physics is the test's here: make each agent's node CNI-ready.
    let agents = eventually("2 agents", || async {
        let l = pods(&c, "kube-system", "k8s-app=cilium").await;
        (l.len() == 2).then_some(l)
    })
    .await;
    for a in &agents {
        t.set_cni_ready(&node_of(a), true).unwrap();
    }
    let (code, out, err) = cilium(&kc, &["status", "--wait", "-o", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["pod_state"]["cilium"],
        serde_json::json!({"Type": "DaemonSet", "Desired": 2, "Ready": 2, "Available": 2, "Unavailable": 0})
    );
    assert_eq!(v["pod_state"]["cilium-operator"]["Type"], "Deployment");
    assert_eq!(v["pod_state"]["cilium-operator"]["Ready"], 2);
    assert_eq!(v["phase_count"]["cilium"]["Running"], 2);
    assert_eq!(
        v["image_count"]["cilium"]["quay.io/cilium/cilium:v1.18.4"],
        2
    );
    assert_eq!(v["cilium_status"].as_object().unwrap().len(), 2);
    assert_eq!(v["helm_chart_version"], "1.18.4");
    assert!(v.get("collection_errors").is_none(), "{out}");
    assert!(
        out.starts_with("{\n \"image_count\""),
        "one-space indent, cilium-cli's field order: {out}"
    );
    let (code, out, _) = cilium(&kc, &["status"]).await;
    assert_eq!(code, 0);
    for line in [
        "Cilium:",
        "Operator:",
        "Envoy DaemonSet:",
        "Hubble Relay:",
        "ClusterMesh:",
        "Helm chart version:",
    ] {
        assert!(out.contains(line), "{line} missing:\n{out}");
    }
    assert!(
        out.contains("Desired: 2, Ready: \x1b[32m2/2\x1b[0m"),
        "{out}"
    );

    // One agent's node loses its kubelet: marked not ready after the grace period, the agent
    // DaemonSet is no longer ready and `--wait` gives up.
    t.set_kubelet_alive("w-1", false).unwrap();
    let dss: kube::Api<k8s_openapi::api::apps::v1::DaemonSet> =
        kube::Api::namespaced(c.clone(), "kube-system");
    eventually("the agent DaemonSet 1/2 ready", || async {
        (dss.get("cilium").await.unwrap().status?.number_ready == 1).then_some(())
    })
    .await;
    let (code, _, err) = cilium(&kc, &["status", "--wait", "--wait-duration", "3s"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("1 pods of DaemonSet cilium are not ready"),
        "{err}"
    );
    assert!(
        err.contains("timeout while waiting for status to become successful"),
        "{err}"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mtu_fault_installs_without_the_mtu() {
    let t = start(0.01).await;
    join(&t, "w-1", false);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, t.kubeconfig_yaml("talos-prod-01", "clusterproof")).unwrap();
    let values = harness::model::lab::default_cilium_values();
    assert_eq!(values["MTU"], "1450");
    let mut args = vec![
        "--twin-fault=cilium-mtu-autodetect".to_string(),
        "install".into(),
    ];
    args.extend(sets(&values));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = cilium(&kc, &args).await;
    assert_eq!(code, 0, "{out}{err}");
    // What dod::cilium_healthy reads: the running config does not have the asked MTU.
    let k = harness::kube::KubeClient::from_kubeconfig(&kc)
        .await
        .unwrap();
    let s = harness::cilium::status(&k).await.unwrap();
    assert_eq!(
        s.config_mismatches(&values),
        ["MTU=1450 but cilium-config mtu is not set"]
    );
    t.shutdown().await;
}

//! CNI physics: nodes join NotReady; once `cilium install` has put its agent DaemonSet in the
//! cluster, an agent pod runs on every node and the node turns Ready. Observed through the
//! harness's own Kubernetes driver, over the twin's HTTPS API.

use std::collections::BTreeMap;
use std::time::Duration;

use harness::kube::{KubeClient, node_ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_turn_ready_when_the_cilium_agent_runs_on_them() {
    harness::proxmox::tls::install_default_provider();
    let t = twin::Twin::start(twin::TwinOptions::default())
        .await
        .unwrap();
    for (name, cp) in [("cp-1", true), ("w-1", false)] {
        t.kube
            .join_node(
                name,
                BTreeMap::new(),
                "11111111-2222-4333-8444-555555555555",
                cp,
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, t.kube.kubeconfig_yaml("talos-prod-01", "clusterproof")).unwrap();
    let k = KubeClient::from_kubeconfig(&kc).await.unwrap();
    let nodes = k
        .wait_nodes("2 nodes", Duration::from_secs(20), |n| n.len() == 2)
        .await
        .unwrap();
    assert!(
        nodes.iter().all(|n| node_ready(n) == Some("False")),
        "NotReady before the CNI"
    );
    for obj in twin::cilium::render(&harness::model::lab::default_cilium_values()).unwrap() {
        k.apply(&obj, "cilium-cli").await.unwrap();
    }
    let nodes = k
        .wait_nodes("2 nodes Ready", Duration::from_secs(20), |n| {
            n.len() == 2 && n.iter().all(|x| node_ready(x) == Some("True"))
        })
        .await
        .unwrap();
    assert_eq!(nodes.len(), 2);
    let status = harness::cilium::status(&k).await.unwrap();
    assert_eq!(status.agent.map(|(d, _)| d), Some(2));
    assert!(
        status
            .config_mismatches(&harness::model::lab::default_cilium_values())
            .is_empty()
    );
    t.shutdown().await;
}

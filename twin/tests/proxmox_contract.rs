//! Contract tests of the Proxmox driver against the twin, over real HTTPS on loopback:
//! auth failures, 595, TLS modes, the envelope, typed decoding of the twin's real-format
//! bodies, and the task life cycle. The token secret must appear in no error text.

use std::path::PathBuf;
use std::time::Duration;

use harness::model::lab::{Proxmox as ProxmoxLab, SecretSource, Tls};
use harness::proxmox::{ProxmoxClient, ProxmoxError, VmAction};
use twin::proxmox::{ProxmoxSpec, ProxmoxTwin, VmPower, default_inventory};

const SECRET: &str = "5b8f0c2e-7d1a-4c3b-9e6f-a2b4c6d8e0f1";
const TOKEN: &str = "clusterproof@pve!contract";

async fn twin() -> ProxmoxTwin {
    ProxmoxTwin::start(ProxmoxSpec {
        inventory: default_inventory(),
        token_id: TOKEN.into(),
        token_secret: SECRET.into(),
        faults: vec![],
        time_scale: 0.01,
        timing: Default::default(),
        ha_managed: false,
        placement: Default::default(),
    })
    .await
    .unwrap()
}

fn pin(t: &ProxmoxTwin) -> [u8; 32] {
    let hex: String = t.fingerprint().split(':').collect();
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// A client for `t`; the secret goes through a file, as a lab would give it.
fn client(
    t: &ProxmoxTwin,
    secret: &str,
    tls: Tls,
    dir: &tempfile::TempDir,
) -> Result<ProxmoxClient, ProxmoxError> {
    let f: PathBuf = dir.path().join("secret");
    std::fs::write(&f, format!("{secret}\n")).unwrap();
    let lab = ProxmoxLab {
        url: t.url(),
        token_id: TOKEN.into(),
        token_secret: SecretSource::File(f),
        tls,
    };
    ProxmoxClient::new(&lab, Duration::from_secs(5))
}

#[tokio::test]
async fn wrong_token_is_a_401_a_person_can_act_on_and_the_secret_never_shows() {
    let t = twin().await;
    let d = tempfile::tempdir().unwrap();
    let c = client(&t, "not-the-secret-0000", Tls::Fingerprint(pin(&t)), &d).unwrap();
    let e = c.version().await.unwrap_err();
    assert!(matches!(e, ProxmoxError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(
            "rejected the API token clusterproof@pve!contract (401 Authentication failed!)"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("check proxmox.token_id and the secret in file"),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-secret") && !msg.contains(SECRET),
        "{msg}"
    );
    assert!(
        !format!("{c:?}").contains("not-the-secret"),
        "Debug leaks the secret"
    );
}

#[tokio::test]
async fn missing_secret_env_is_a_configuration_error() {
    let lab = ProxmoxLab {
        url: "https://127.0.0.1:1/api2/json".into(),
        token_id: TOKEN.into(),
        token_secret: SecretSource::Env("CLUSTERPROOF_TEST_UNSET_VAR".into()),
        tls: Tls::Verify,
    };
    let e = ProxmoxClient::new(&lab, Duration::from_secs(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read the Proxmox API token secret from environment variable CLUSTERPROOF_TEST_UNSET_VAR: the environment variable CLUSTERPROOF_TEST_UNSET_VAR is not set"
    );
}

#[tokio::test]
async fn a_down_node_answers_595_and_becomes_node_unreachable() {
    let t = twin().await;
    let d = tempfile::tempdir().unwrap();
    let c = client(&t, SECRET, Tls::Fingerprint(pin(&t)), &d).unwrap();
    t.set_node_online("golf", false);
    let e = c.node_status("golf").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ProxmoxError::NodeUnreachable { status: 595, .. }),
        "{e:?}"
    );
    assert!(
        msg.contains("node unreachable") && msg.contains("595 No route to host"),
        "{msg}"
    );
    // Cluster-wide calls keep working and report the node offline, without its mem.
    let nodes = c.nodes().await.unwrap();
    let golf = nodes.iter().find(|n| n.node == "golf").unwrap();
    assert_eq!((golf.online(), golf.mem), (false, None));
    t.set_node_online("golf", true);
    assert!(c.node_status("golf").await.is_ok());
}

#[tokio::test]
async fn tls_pin_ca_insecure_and_system_roots() {
    let t = twin().await;
    let d = tempfile::tempdir().unwrap();
    // The right pin works; a wrong pin is refused at the handshake.
    assert!(
        client(&t, SECRET, Tls::Fingerprint(pin(&t)), &d)
            .unwrap()
            .version()
            .await
            .is_ok()
    );
    let mut wrong = pin(&t);
    wrong[0] ^= 0xff;
    let e = client(&t, SECRET, Tls::Fingerprint(wrong), &d)
        .unwrap()
        .version()
        .await
        .unwrap_err();
    assert!(matches!(e, ProxmoxError::Transport { .. }), "{e:?}");
    assert!(e.to_string().contains("does not match the pinned"), "{e}");
    // Trusting the twin's certificate as a CA works (its SAN is 127.0.0.1).
    let ca = d.path().join("ca.pem");
    std::fs::write(&ca, t.cert_pem()).unwrap();
    assert!(
        client(&t, SECRET, Tls::CaFile(ca), &d)
            .unwrap()
            .version()
            .await
            .is_ok()
    );
    // The system roots do not know a self-signed certificate.
    assert!(
        client(&t, SECRET, Tls::Verify, &d)
            .unwrap()
            .version()
            .await
            .is_err()
    );
    // Insecure works and says so.
    let c = client(&t, SECRET, Tls::Insecure, &d).unwrap();
    assert!(c.version().await.is_ok());
    assert!(
        c.notices
            .iter()
            .any(|n| n.contains("TLS verification") && n.contains("DISABLED")),
        "{:?}",
        c.notices
    );
}

#[tokio::test]
async fn envelope_errors_and_typed_bodies() {
    let t = twin().await;
    let d = tempfile::tempdir().unwrap();
    let c = client(&t, SECRET, Tls::Fingerprint(pin(&t)), &d).unwrap();
    // 501 with the message in the body and the reason phrase.
    let e = c
        .get::<serde_json::Value>("/no/such/path")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("501 Method 'GET /no/such/path' not implemented"),
        "{e}"
    );
    // 500 for a VM that is not on that node (Proxmox's own wording).
    let e = c.vm_status("foxtrot", 100).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("Configuration file 'nodes/foxtrot/qemu-server/100.conf' does not exist"),
        "{e}"
    );
    // Typed decoding of every endpoint preflight uses.
    assert_eq!(c.version().await.unwrap().version, "9.1.5");
    let nodes = c.nodes().await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(),
        ["foxtrot", "golf", "hotel"]
    );
    assert_eq!(nodes[0].ssl_fingerprint.as_deref(), Some(t.fingerprint()));
    let golf = c.node_status("golf").await.unwrap();
    assert_eq!(
        golf.memory.used,
        Some(10 << 30),
        "6 GiB host + the running 4 GiB VM"
    );
    assert_eq!(c.node_dns("hotel").await.unwrap().servers(), ["127.0.53.1"]);
    let st = c.node_storage("golf").await.unwrap();
    let vm_ssd = st.iter().find(|s| s.storage == "vm_ssd").unwrap();
    assert!(vm_ssd.is_active() && vm_ssd.shared == Some(true));
    assert!(
        c.storage_config()
            .await
            .unwrap()
            .iter()
            .any(|s| s.storage == "vm_ssd" && s.kind == "rbd")
    );
    assert_eq!(c.ceph_status().await.unwrap().health.status, "HEALTH_OK");
    assert_eq!(c.cluster_vms().await.unwrap().len(), 1);
    assert!(c.ha_resources().await.unwrap().is_empty());
    let cfg = c.vm_config("golf", 100).await.unwrap();
    assert!(cfg["smbios1"].as_str().unwrap().starts_with("uuid="));
}

#[tokio::test]
async fn stop_and_start_are_tasks_that_change_the_vm_when_they_finish() {
    let t = twin().await;
    let d = tempfile::tempdir().unwrap();
    let c = client(&t, SECRET, Tls::Fingerprint(pin(&t)), &d).unwrap();
    let upid = c.vm_action("golf", 100, VmAction::Stop).await.unwrap();
    // UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>: with the token as user.
    let parts: Vec<&str> = upid.split(':').collect();
    assert_eq!(
        (parts[0], parts[1], parts[5], parts[6], parts[7], parts[8]),
        ("UPID", "golf", "qmstop", "100", TOKEN, ""),
        "{upid}"
    );
    let status = wait(&c, "golf", &upid).await;
    assert!(status.succeeded(), "{status:?}");
    assert_eq!(t.vm_power(100), Some(VmPower::Stopped));
    assert_eq!(c.vm_status("golf", 100).await.unwrap().status, "stopped");
    assert_eq!(
        c.node_status("golf").await.unwrap().memory.used,
        Some(6 << 30),
        "a stopped VM frees its memory"
    );
    // Starting twice: the second task fails with Proxmox's text.
    let up = c.vm_action("golf", 100, VmAction::Start).await.unwrap();
    assert!(wait(&c, "golf", &up).await.succeeded());
    let again = c.vm_action("golf", 100, VmAction::Start).await.unwrap();
    let st = wait(&c, "golf", &again).await;
    assert_eq!(st.exitstatus.as_deref(), Some("VM 100 already running"));
    assert!(!st.succeeded());
}

/// Follow a task until it stops (the twin's tasks take milliseconds at this time scale).
async fn wait(c: &ProxmoxClient, node: &str, upid: &str) -> harness::proxmox::types::TaskStatus {
    for _ in 0..500 {
        let s = c.task_status(node, upid).await.unwrap();
        if s.finished() {
            return s;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("task {upid} did not finish");
}

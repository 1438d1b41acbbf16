//! A VM's power drives its machine: Proxmox power actions through the harness's own Proxmox
//! client, what Kubernetes (kube-rs against the twin) and Omni then show, every wait bounded
//! and on a condition (never a sleep).

mod support;

use std::time::Duration;

use harness::model::lab::{Proxmox as ProxmoxLab, SecretSource, Tls};
use harness::proxmox::{ProxmoxClient, VmAction};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::eventually;
use twin::faults::Fault;
use twin::kube::TransitionKind;
use twin::omni::Resource;
use twin::{Timing, Twin, TwinOptions};

const CLUSTER: &str = "talos-prod-01";
const SCALE: f64 = 0.01;

struct World {
    twin: Twin,
    /// The two workers' node names (= VM names = MachineRequest ids), in name order.
    workers: Vec<String>,
    pve: ProxmoxClient,
    kube: Client,
    _dir: tempfile::TempDir,
}

/// A twin with two provisioned workers (VMs created by the twin's infra provider from
/// MachineRequests), a Cilium agent DaemonSet and a `web` Deployment + Service on them.
async fn world(faults: Vec<Fault>, timing: Timing) -> World {
    harness::proxmox::tls::install_default_provider();
    let twin = Twin::start(TwinOptions {
        faults,
        time_scale: SCALE,
        timing,
        ..Default::default()
    })
    .await
    .unwrap();
    // Omni's MachineRequestSet controller makes the two MachineRequests; the twin's infra
    // provider creates their VMs.
    twin.omni.put(Resource::in_default_namespace(
        "MachineRequestSets.omni.sidero.dev",
        format!("{CLUSTER}-workers"),
        json!({"machinecount": 2, "providerid": twin::PROVIDER_ID, "talosversion": "v1.11.5",
            "providerdata": "cores: 2\nmemory: 4096\ndisk_size: 10\nstorage_selector: name == \"vm_ssd\"\n"}),
    ));
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::copy(twin.dir().join("proxmox-token-secret"), &secret).unwrap();
    let pve = ProxmoxClient::new(
        &ProxmoxLab {
            url: twin.proxmox.url(),
            token_id: "clusterproof@pve!twin".into(),
            token_secret: SecretSource::File(secret),
            tls: Tls::Insecure,
        },
        Duration::from_secs(5),
    )
    .unwrap();
    let kube = support::client(&twin.kube).await;
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "cilium", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}},
            "template": {"metadata": {"labels": {"k8s-app": "cilium"}},
                "spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.18.4"}]}}}
    }))
    .unwrap();
    Api::<DaemonSet>::namespaced(kube.clone(), "kube-system")
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "netexec", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                    "args": ["netexec", "--http-port=8080"], "ports": [{"containerPort": 8080}]}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}}]}}}}}
    }))
    .unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(kube.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let nodes = Api::<Node>::all(kube.clone());
    let mut workers = eventually("two worker nodes", || async {
        let names: Vec<String> = nodes
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    workers.sort();
    let w = World {
        twin,
        workers,
        pve,
        kube,
        _dir: dir,
    };
    for n in &w.workers {
        w.wait_ready(n, "True").await;
    }
    Api::<Deployment>::namespaced(w.kube.clone(), "default")
        .create(&PostParams::default(), &dep)
        .await
        .unwrap();
    eventually("both web pods ready", || async {
        (w.web_pods().await.iter().filter(|p| ready(p)).count() == 2).then_some(())
    })
    .await;
    w
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

impl World {
    async fn node(&self, name: &str) -> Node {
        Api::<Node>::all(self.kube.clone()).get(name).await.unwrap()
    }

    async fn node_ready(&self, name: &str) -> Option<String> {
        let n = Api::<Node>::all(self.kube.clone())
            .get_opt(name)
            .await
            .ok()??;
        n.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status)
    }

    async fn wait_ready(&self, name: &str, want: &str) {
        eventually(&format!("node {name} Ready={want}"), || async {
            (self.node_ready(name).await.as_deref() == Some(want)).then_some(())
        })
        .await
    }

    async fn web_pods(&self) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.kube.clone(), "default")
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
    }

    async fn agent_on(&self, node: &str) -> Pod {
        Api::<Pod>::namespaced(self.kube.clone(), "kube-system")
            .list(&ListParams::default().labels("k8s-app=cilium"))
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|p| node_of(p) == node)
            .unwrap()
    }

    /// The VM of a node: (host, vmid).
    fn vm(&self, node: &str) -> (String, u32) {
        let (vmid, host) = self.twin.proxmox.vm_by_name(node).unwrap();
        (host, vmid)
    }

    /// Run a power action to the end of its task; the task's exit status.
    async fn power(&self, node: &str, action: VmAction) -> String {
        let (host, vmid) = self.vm(node);
        let upid = self.pve.vm_action(&host, vmid, action).await.unwrap();
        eventually(&format!("task {upid}"), || async {
            let s = self.pve.task_status(&host, &upid).await.unwrap();
            s.finished().then(|| s.exitstatus.unwrap_or_default())
        })
        .await
    }

    async fn vm_status(&self, node: &str) -> harness::proxmox::types::VmStatus {
        let (host, vmid) = self.vm(node);
        self.pve.vm_status(&host, vmid).await.unwrap()
    }

    /// ClusterStatus `machines.connected`.
    fn cluster_connected(&self) -> i64 {
        self.twin
            .omni
            .get("ClusterStatuses.omni.sidero.dev", "default", CLUSTER)
            .and_then(|r| r.spec["machines"]["connected"].as_i64())
            .unwrap_or(-1)
    }

    fn machine_connected(&self, node: &str) -> Option<bool> {
        let (_, vmid) = self.vm(node);
        let cfg = self.twin.proxmox.vm_config(vmid)?;
        let uuid = cfg["smbios1"].as_str()?.strip_prefix("uuid=")?.to_string();
        let m = self
            .twin
            .omni
            .get("Machines.omni.sidero.dev", "default", &uuid)?;
        let ms = self
            .twin
            .omni
            .get("MachineStatuses.omni.sidero.dev", "default", &uuid)?;
        let cms = self
            .twin
            .omni
            .get("ClusterMachineStatuses.omni.sidero.dev", "default", &uuid)?;
        let c = m.spec["connected"].as_bool()?;
        // Every copy of the link state agrees.
        assert_eq!(ms.spec["connected"].as_bool(), Some(c));
        assert_eq!(ms.label("omni.sidero.dev/connected").is_some(), c);
        assert_eq!(cms.spec["ready"].as_bool(), Some(c));
        Some(c)
    }
}

#[tokio::test]
async fn a_stopped_worker_goes_unknown_its_pods_move_and_a_start_brings_it_back() {
    let w = world(vec![], Timing::default()).await;
    let victim = w.workers[0].as_str();
    // The config carries the SMBIOS uuid = the Omni machine id = the node's systemUUID.
    let (_, vmid) = w.vm(victim);
    let cfg = w.twin.proxmox.vm_config(vmid).unwrap();
    let system_uuid = w
        .node(victim)
        .await
        .status
        .unwrap()
        .node_info
        .unwrap()
        .system_uuid;
    assert_eq!(cfg["smbios1"], json!(format!("uuid={system_uuid}")));
    assert_eq!(w.machine_connected(victim), Some(true));
    assert_eq!(w.cluster_connected(), 2);

    assert_eq!(w.power(victim, VmAction::Stop).await, "OK");
    assert_eq!(w.vm_status(victim).await.status, "stopped");
    w.wait_ready(victim, "Unknown").await;
    let node = w.node(victim).await;
    let cond = node
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .clone();
    assert_eq!(cond.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        cond.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    let taints = node.spec.unwrap().taints.unwrap_or_default();
    for effect in ["NoSchedule", "NoExecute"] {
        let t = taints
            .iter()
            .find(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == effect)
            .unwrap_or_else(|| panic!("no unreachable {effect} taint: {taints:?}"));
        assert_eq!(t.time_added.is_some(), effect == "NoExecute", "{t:?}");
    }
    // Its pod is NotReady at once, and out of the Service's endpoints.
    let on_victim = |pods: &[Pod]| pods.iter().find(|p| node_of(p) == victim).cloned();
    let pod = on_victim(&w.web_pods().await).unwrap();
    assert!(!ready(&pod));
    let eps = Api::<Endpoints>::namespaced(w.kube.clone(), "default");
    eventually("the endpoints drop the pod", || async {
        let e = eps.get("web").await.ok()?;
        let ips: Vec<String> = e
            .subsets
            .unwrap_or_default()
            .into_iter()
            .flat_map(|s| s.addresses.unwrap_or_default())
            .map(|a| a.ip)
            .collect();
        let ip = pod.status.as_ref()?.pod_ip.clone()?;
        (ips.len() == 1 && !ips.contains(&ip)).then_some(())
    })
    .await;
    // The API server's proxy to the pod on the dead node: its dial times out, 503 with a
    // Status (k8s.io/apimachinery/pkg/util/proxy transport.go: "error trying to reach
    // service: …"), never 200.
    let path = format!(
        "/api/v1/namespaces/default/pods/{}:8080/proxy/hostname",
        pod.metadata.name.clone().unwrap()
    );
    let (code, _, body) = support::raw(&w.kube, "GET", &path).await;
    assert_eq!(code, 503, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    let msg = status["message"].as_str().unwrap();
    assert!(msg.starts_with("error trying to reach service: "), "{msg}");
    // Omni notices once the link's last handshake is older than the peer-down interval.
    eventually("Omni marks the machine disconnected", || async {
        (w.machine_connected(victim) == Some(false)).then_some(())
    })
    .await;
    assert_eq!(w.cluster_connected(), 1);
    // After the 300 s toleration: Terminating (kept, the kubelet is gone), a replacement.
    eventually("the pod is Terminating and replaced", || async {
        let pods = w.web_pods().await;
        let old = pods
            .iter()
            .find(|p| p.metadata.uid == pod.metadata.uid)?
            .clone();
        old.metadata.deletion_timestamp.as_ref()?;
        // The replacement runs on the healthy worker, never on the dead node.
        let new: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.uid != pod.metadata.uid)
            .collect();
        (new.len() == 2 && new.iter().all(|p| node_of(p) == w.workers[1] && ready(p))).then_some(())
    })
    .await;
    // The DaemonSet's agent stays.
    let agent = w.agent_on(victim).await;
    assert!(agent.metadata.deletion_timestamp.is_none());

    // Start: the agent is ready again before the node turns Ready; the taints go.
    let before = w.twin.kube.transitions().len();
    assert_eq!(w.power(victim, VmAction::Start).await, "OK");
    w.wait_ready(victim, "True").await;
    let log: Vec<_> = w.twin.kube.transitions()[before..].to_vec();
    let agent_name = format!("kube-system/{}", agent.metadata.name.clone().unwrap());
    let agent_ready = log
        .iter()
        .position(|t| t.kind == TransitionKind::Pod && t.name == agent_name && t.to == "True")
        .unwrap_or_else(|| panic!("agent never turned Ready: {log:?}"));
    let node_ready = log
        .iter()
        .position(|t| t.kind == TransitionKind::Node && t.name == victim && t.to == "True")
        .unwrap();
    assert!(agent_ready < node_ready, "{log:?}");
    assert!(log[agent_ready].at <= log[node_ready].at);
    let taints = w
        .node(victim)
        .await
        .spec
        .unwrap()
        .taints
        .unwrap_or_default();
    assert!(
        taints
            .iter()
            .all(|t| !t.key.starts_with("node.kubernetes.io/")),
        "{taints:?}"
    );
    // The returning kubelet finishes the Terminating pod; the replacement takes its place.
    eventually("two ready web pods again, the old one gone", || async {
        let pods = w.web_pods().await;
        (pods.len() == 2
            && pods.iter().all(ready)
            && pods.iter().all(|p| p.metadata.uid != pod.metadata.uid))
        .then_some(())
    })
    .await;
    eventually("Omni sees the machine again", || async {
        (w.machine_connected(victim) == Some(true) && w.cluster_connected() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_the_pods_before_the_node_goes_unknown_without_a_cordon() {
    let w = world(vec![], Timing::default()).await;
    let victim = w.workers[1].as_str();
    let pod = w
        .web_pods()
        .await
        .into_iter()
        .find(|p| node_of(p) == victim)
        .unwrap();
    let pod_name = format!("default/{}", pod.metadata.name.clone().unwrap());
    let before = w.twin.kube.transitions().len();
    assert_eq!(w.power(victim, VmAction::Shutdown).await, "OK");
    assert_eq!(w.vm_status(victim).await.status, "stopped");
    w.wait_ready(victim, "Unknown").await;
    let pods = Api::<Pod>::namespaced(w.kube.clone(), "default");
    let p = pods
        .get(pod.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    let st = p.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    assert_eq!(st.reason.as_deref(), Some("Terminated"));
    assert_eq!(
        st.message.as_deref(),
        Some("Pod was terminated in response to imminent node shutdown.")
    );
    let log = w.twin.kube.transitions()[before..].to_vec();
    let pod_down = log
        .iter()
        .position(|t| t.name == pod_name && t.to == "False")
        .unwrap_or_else(|| panic!("{log:?}"));
    let unknown = log
        .iter()
        .position(|t| t.kind == TransitionKind::Node && t.name == victim && t.to == "Unknown")
        .unwrap();
    assert!(pod_down < unknown, "{log:?}");
    // Forced shutdown: never cordoned.
    assert_ne!(w.node(victim).await.spec.unwrap().unschedulable, Some(true));
    // The DaemonSet's agent was not stopped by the kubelet.
    let agent = w.agent_on(victim).await;
    assert_ne!(
        agent.status.unwrap().phase.as_deref(),
        Some("Failed"),
        "DaemonSet pods are left to the machine's own shutdown"
    );
}

#[tokio::test]
async fn a_reset_is_an_outage_after_which_containers_restart() {
    let w = world(vec![], Timing::default()).await;
    let victim = w.workers[0].as_str();
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| c.iter().map(|c| c.restart_count).sum::<i32>())
            .unwrap_or(0)
    };
    let agent = w.agent_on(victim).await;
    let boot = w
        .node(victim)
        .await
        .status
        .unwrap()
        .node_info
        .unwrap()
        .boot_id;
    assert_eq!(w.power(victim, VmAction::Reset).await, "OK");
    assert_eq!(w.vm_status(victim).await.status, "running");
    eventually("the agent's containers restarted in a new boot", || async {
        let a = w.agent_on(victim).await;
        let n = w.node(victim).await.status?.node_info?.boot_id;
        (restarts(&a) > restarts(&agent) && n != boot).then_some(())
    })
    .await;
    w.wait_ready(victim, "True").await;
}

#[tokio::test]
async fn a_reboot_shuts_the_guest_down_then_boots_it_again() {
    let w = world(vec![], Timing::default()).await;
    let victim = w.workers[0].as_str();
    let (host, vmid) = w.vm(victim);
    let boot = w
        .node(victim)
        .await
        .status
        .unwrap()
        .node_info
        .unwrap()
        .boot_id;
    let pod = w
        .web_pods()
        .await
        .into_iter()
        .find(|p| node_of(p) == victim)
        .unwrap();
    let upid = w
        .pve
        .post(&format!("/nodes/{host}/qemu/{vmid}/status/reboot"), &[])
        .await
        .unwrap();
    let upid = upid.as_str().unwrap().to_string();
    assert_eq!(upid.split(':').nth(5), Some("qmreboot"));
    eventually("the reboot task", || async {
        let s = w.pve.task_status(&host, &upid).await.unwrap();
        s.finished().then(|| assert!(s.succeeded(), "{s:?}"))
    })
    .await;
    assert_eq!(w.vm_status(victim).await.status, "running");
    // The guest's graceful shutdown stopped the pod; the node comes back in a new boot.
    let pods = Api::<Pod>::namespaced(w.kube.clone(), "default");
    let p = pods
        .get(pod.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Failed"));
    eventually("a new boot, Ready", || async {
        let n = w.node(victim).await;
        let ready = w.node_ready(victim).await;
        (n.status?.node_info?.boot_id != boot && ready.as_deref() == Some("True")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn suspend_pauses_the_machine_and_resume_continues_the_same_boot() {
    let w = world(vec![], Timing::default()).await;
    let victim = w.workers[0].as_str();
    let boot = w
        .node(victim)
        .await
        .status
        .unwrap()
        .node_info
        .unwrap()
        .boot_id;
    assert_eq!(w.power(victim, VmAction::Suspend).await, "OK");
    let st = w.vm_status(victim).await;
    assert_eq!(
        (st.status.as_str(), st.qmpstatus.as_deref()),
        ("running", Some("paused"))
    );
    w.wait_ready(victim, "Unknown").await;
    // A paused VM cannot shut down.
    let (host, vmid) = w.vm(victim);
    let e = w
        .pve
        .vm_action(&host, vmid, VmAction::Shutdown)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("VM is paused - cannot shutdown"),
        "{e}"
    );
    assert_eq!(w.power(victim, VmAction::Resume).await, "OK");
    w.wait_ready(victim, "True").await;
    let after = w
        .node(victim)
        .await
        .status
        .unwrap()
        .node_info
        .unwrap()
        .boot_id;
    assert_eq!(after, boot, "a resume is not a reboot");
}

#[tokio::test]
async fn stopped_vms_refuse_reset_and_shutdown_and_the_task_log_ends_with_the_result() {
    let w = world(vec![], Timing::default()).await;
    let victim = w.workers[0].as_str();
    assert_eq!(w.power(victim, VmAction::Stop).await, "OK");
    let (host, vmid) = w.vm(victim);
    for a in [VmAction::Reset, VmAction::Shutdown] {
        let e = w.pve.vm_action(&host, vmid, a).await.unwrap_err();
        assert!(
            e.to_string().contains(&format!("VM {vmid} not running")),
            "{e}"
        );
    }
    let upid = w.pve.vm_action(&host, vmid, VmAction::Start).await.unwrap();
    eventually("start task", || async {
        w.pve
            .task_status(&host, &upid)
            .await
            .unwrap()
            .finished()
            .then_some(())
    })
    .await;
    let log: serde_json::Value = w
        .pve
        .get(&format!(
            "/nodes/{host}/tasks/{}/log",
            ProxmoxClient::seg(&upid)
        ))
        .await
        .unwrap();
    assert_eq!(log, json!([{"n": 1, "t": "TASK OK"}]));
}

#[tokio::test]
async fn ha_managed_vms_stop_and_start_through_the_ha_stack() {
    let w = world(vec![Fault::VictimHaManaged], Timing::default()).await;
    let victim = w.workers[0].as_str();
    let (host, vmid) = w.vm(victim);
    let ha = w.pve.ha_resources().await.unwrap();
    let sid = format!("vm:{vmid}");
    assert!(
        ha.iter()
            .any(|r| r.sid == sid && r.state.as_deref() == Some("started"))
    );
    let upid = w.pve.vm_action(&host, vmid, VmAction::Stop).await.unwrap();
    assert_eq!(upid.split(':').nth(5), Some("hastop"));
    // The request state is persisted at once; the VM stops one CRM cycle later.
    let ha = w.pve.ha_resources().await.unwrap();
    assert!(
        ha.iter()
            .any(|r| r.sid == sid && r.state.as_deref() == Some("stopped"))
    );
    eventually("the CRM stops the VM", || async {
        let st = w.vm_status(victim).await;
        (st.status == "stopped"
            && st.ha.as_ref().and_then(|h| h.state.as_deref()) == Some("stopped"))
        .then_some(())
    })
    .await;
    let status: serde_json::Value = w.pve.get("/cluster/ha/status/current").await.unwrap();
    let svc = status
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["sid"] == json!(sid))
        .unwrap();
    assert_eq!(
        (svc["crm_state"].as_str(), svc["request_state"].as_str()),
        (Some("stopped"), Some("stopped"))
    );
    w.wait_ready(victim, "Unknown").await;
    let upid = w.pve.vm_action(&host, vmid, VmAction::Start).await.unwrap();
    assert_eq!(upid.split(':').nth(5), Some("hastart"));
    eventually("the CRM starts the VM", || async {
        (w.vm_status(victim).await.status == "running").then_some(())
    })
    .await;
    assert_eq!(w.twin.proxmox.ha_state(vmid).as_deref(), Some("started"));
    w.wait_ready(victim, "True").await;
}

#[tokio::test]
async fn the_first_start_of_a_vm_fails_once_with_vm_start_fails_once() {
    let w = world(vec![Fault::VmStartFailsOnce], Timing::default()).await;
    let victim = w.workers[0].as_str();
    assert_eq!(w.power(victim, VmAction::Stop).await, "OK");
    assert_eq!(
        w.power(victim, VmAction::Start).await,
        "start failed: QEMU exited with code 1"
    );
    assert_eq!(w.vm_status(victim).await.status, "stopped");
    assert_eq!(w.power(victim, VmAction::Start).await, "OK");
    assert_eq!(w.vm_status(victim).await.status, "running");
    w.wait_ready(victim, "True").await;
}

#[tokio::test]
async fn with_node_never_recovers_the_vm_runs_but_the_node_stays_not_ready() {
    let w = world(vec![Fault::NodeNeverRecovers], Timing::default()).await;
    let victim = w.workers[0].as_str();
    assert_eq!(w.power(victim, VmAction::Stop).await, "OK");
    w.wait_ready(victim, "Unknown").await;
    assert_eq!(w.power(victim, VmAction::Start).await, "OK");
    // The kubelet is back (Ready False, posted by it), and renews its Lease again and again.
    w.wait_ready(victim, "False").await;
    let leases = Api::<Lease>::namespaced(w.kube.clone(), "kube-node-lease");
    let renew = |l: Lease| l.spec.and_then(|s| s.renew_time).map(|t| t.0);
    let first = renew(leases.get(victim).await.unwrap()).unwrap();
    let mut seen = first;
    for _ in 0..3 {
        seen = eventually("another Lease renewal", || async {
            let t = renew(leases.get(victim).await.ok()?)?;
            (t > seen).then_some(t)
        })
        .await;
        assert_eq!(w.node_ready(victim).await.as_deref(), Some("False"));
    }
    assert!(seen > first);
    assert_eq!(w.vm_status(victim).await.status, "running");
}

/// How long after its kubelet stops a node of a bare Kubernetes twin turns Unknown, by the
/// transition log.
async fn time_to_unknown(timing: Timing) -> f64 {
    harness::proxmox::tls::install_default_provider();
    let t = twin::kube::KubeTwin::start(twin::kube::KubeSpec {
        token: "t".into(),
        time_scale: 0.02,
        timing,
    })
    .await
    .unwrap();
    support::join_ready(&t, &[("w-1", false)]);
    let c = support::client(&t).await;
    let nodes = Api::<Node>::all(c);
    eventually("w-1 Ready", || async {
        let n = nodes.get("w-1").await.ok()?;
        n.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    // The grace counts from the last renewal; renewals are every 10 s, so compare from it.
    let stopped = chrono::Utc::now();
    t.set_kubelet_alive("w-1", false).unwrap();
    let unknown = eventually("w-1 Unknown", || async {
        t.transitions()
            .into_iter()
            .find(|x| x.kind == TransitionKind::Node && x.to == "Unknown")
    })
    .await;
    (unknown.at - stopped).num_milliseconds() as f64
}

#[tokio::test]
async fn a_doubled_grace_period_doubles_the_time_to_unknown() {
    let base = Timing {
        lease_renew: 1.0,
        ..Timing::default()
    };
    let doubled = Timing {
        node_monitor_grace: base.node_monitor_grace * 2.0,
        ..base.clone()
    };
    let (a, b) = tokio::join!(time_to_unknown(base), time_to_unknown(doubled));
    let ratio = b / a;
    assert!(
        (1.6..2.4).contains(&ratio),
        "{a} ms vs {b} ms: ratio {ratio}"
    );
}

#[tokio::test]
async fn leases_conflict_like_the_api_server() {
    let t = support::start(0.01).await;
    let c = support::client(&t).await;
    let leases = Api::<Lease>::namespaced(c, "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "clusterproof-chaos", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "run-1", "leaseDurationSeconds": 30}
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let e = leases
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"), "{s:?}")
        }
        e => panic!("{e}"),
    }
    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().holder_identity = Some("run-1".into());
    renewed.spec.as_mut().unwrap().lease_duration_seconds = Some(31);
    leases
        .replace("clusterproof-chaos", &PostParams::default(), &renewed)
        .await
        .unwrap();
    // The same (now stale) resourceVersion again: 409 Conflict.
    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("run-2".into());
    match leases
        .replace("clusterproof-chaos", &PostParams::default(), &stale)
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"), "{s:?}"),
        e => panic!("{e}"),
    }
}

/// The `[chaos]` bounds of the twin's lab file, in milliseconds.
async fn chaos_bounds(timing: Timing) -> std::collections::BTreeMap<String, u64> {
    harness::proxmox::tls::install_default_provider();
    let t = Twin::start(TwinOptions {
        timing,
        ..Default::default()
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(t.lab_path()).unwrap();
    // The `[chaos]` table's `key = "<n>ms"` lines (the twin writes milliseconds).
    let section = text.split("\n[chaos]\n").nth(1).unwrap();
    let out = section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| {
            let ms = v.trim_matches('"').strip_suffix("ms").unwrap();
            (k.to_string(), ms.parse::<u64>().unwrap())
        })
        .collect();
    t.shutdown().await;
    out
}

#[tokio::test]
async fn the_lab_files_chaos_bounds_follow_the_timing() {
    let base = chaos_bounds(Timing::default()).await;
    let doubled = chaos_bounds(Timing {
        node_monitor_grace: 100.0,
        ..Timing::default()
    })
    .await;
    for k in [
        "detect_timeout",
        "reschedule_timeout",
        "recovery_timeout",
        "restore_timeout",
        "probe_interval",
    ] {
        assert!(base.contains_key(k), "{k} missing: {base:?}");
    }
    // 2 × 50 s + 20 s at the default scale 0.01.
    assert_eq!(base["detect_timeout"], 1200);
    assert!(doubled["detect_timeout"] > base["detect_timeout"]);
    assert!(doubled["reschedule_timeout"] > base["reschedule_timeout"]);
    assert_eq!(doubled["recovery_timeout"], base["recovery_timeout"]);
}

//! The twin's world in motion: the Omni infra provider for Proxmox and what follows it.
//!
//! For every MachineRequest Omni creates (from a synced template), the provider writes a
//! MachineRequestStatus as the real one does (`shared/reference/omni.md` §9.6: stage 1
//! PROVISIONING with `Running Step: "<step>" (i/5)`, stage 3 FAILED with the step's error —
//! retried every minute —, stage 2 PROVISIONED `Provision Complete` with the machine id), and
//! creates the VM on the Proxmox twin. The VM boots and resolves the Omni name through its
//! host's resolver; only with Omni's LAN address does SideroLink connect (Link, Machine,
//! MachineStatus, ClusterMachine*), and the machine joins Kubernetes as a node named after
//! the request (NotReady until a CNI runs). Every duration is scaled by `time_scale`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::kube::KubeTwin;
use crate::omni::{EventKind, OmniTwin, Resource};
use crate::provider::{Resolvers, vm_request};
use crate::proxmox::ProxmoxTwin;

/// Everything the provider acts on.
pub struct World {
    pub omni: Arc<OmniTwin>,
    pub proxmox: Arc<ProxmoxTwin>,
    pub kube: Arc<KubeTwin>,
    pub resolvers: Resolvers,
    pub provider_id: String,
    /// `false` with the `provider-disconnected` fault: requests are never picked up.
    pub connected: bool,
    pub time_scale: f64,
    /// Every emulated duration (boot, Omni's link timing, …), in real seconds.
    pub timing: crate::timing::Timing,
    /// The twin's faults (the power physics plays `node-never-recovers`).
    pub faults: Vec<crate::faults::Fault>,
}

const MR: &str = "MachineRequests.omni.sidero.dev";
const STEPS: [&str; 5] = [
    "pickNode",
    "createSchematic",
    "uploadISO",
    "syncVM",
    "startVM",
];

impl World {
    fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(secs * self.time_scale)
    }

    /// Run until the Omni twin's change feed closes.
    pub async fn run(self: Arc<Self>) {
        if !self.connected {
            return;
        }
        let mut rx = self.omni.subscribe();
        for r in self.omni.list(MR) {
            tokio::spawn(Arc::clone(&self).provision(r));
        }
        loop {
            match rx.recv().await {
                Ok(ch) if ch.event == EventKind::Created && ch.resource.metadata.kind == MR => {
                    tokio::spawn(Arc::clone(&self).provision(ch.resource));
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed changes: pick up any request that has no status yet.
                    for r in self.omni.list(MR) {
                        if self
                            .omni
                            .get(
                                "MachineRequestStatuses.omni.sidero.dev",
                                "infra-provider",
                                &r.metadata.id,
                            )
                            .is_none()
                        {
                            tokio::spawn(Arc::clone(&self).provision(r));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn status(&self, req: &Resource, stage: i64, status: &str, error: &str, machine: &str) {
        let mut r = Resource::new(
            "MachineRequestStatuses.omni.sidero.dev",
            "infra-provider",
            req.metadata.id.clone(),
            json!({
                "id": machine, "stage": stage, "error": error, "status": status,
            }),
        )
        .with_owner(format!("{}.ProvisionController", self.provider_id));
        r.metadata.labels = req.metadata.labels.clone();
        self.omni.put(r);
    }

    /// One request, as the provider's ProvisionController runs it.
    async fn provision(self: Arc<Self>, req: Resource) {
        let id = req.metadata.id.clone();
        let set = req
            .metadata
            .labels
            .get("omni.sidero.dev/machine-request-set")
            .cloned()
            .unwrap_or_default();
        let providerdata = req.spec["providerdata"].as_str().unwrap_or("").to_string();
        let vm = loop {
            // A request deleted meanwhile (template delete) is no longer ours.
            if self.omni.get(MR, "infra-provider", &id).is_none() {
                return;
            }
            for (i, step) in STEPS.iter().enumerate().take(3) {
                self.status(
                    &req,
                    1,
                    &format!("Running Step: \"{step}\" ({}/5)", i + 1),
                    "",
                    "",
                );
                tokio::time::sleep(self.scaled(1.0)).await;
            }
            let created = vm_request(&id, &set, &providerdata)
                .and_then(|r| self.proxmox.create_vm(&r).map(|vm| (vm, r.uuid)));
            match created {
                Ok(vm) => break vm,
                Err(e) => {
                    // The failure persists only stage and error: `status` still names the last
                    // persisted step (omni.md §9.6). Retried every minute.
                    self.status(&req, 3, "Running Step: \"uploadISO\" (3/5)", &e, "");
                    tokio::time::sleep(self.scaled(60.0)).await;
                }
            }
        };
        let ((created, uuid), cp) = (vm, set.ends_with("-control-planes"));
        self.status(&req, 2, "Provision Complete", "", &uuid);
        tokio::time::sleep(self.scaled(self.timing.boot)).await;

        // SideroLink: the VM resolves Omni through its host's DNS.
        let answer = self
            .resolvers
            .resolve_as_vm(&self.proxmox.host_dns(&created.node), crate::OMNI_HOSTNAME)
            .await;
        let connected = answer == Some(std::net::IpAddr::V4(crate::OMNI_LAN_IP));
        let labels = [
            ("omni.sidero.dev/machine-request", id.as_str()),
            ("omni.sidero.dev/machine-request-set", set.as_str()),
            (
                "omni.sidero.dev/infra-provider-id",
                self.provider_id.as_str(),
            ),
        ];
        let with = |mut r: Resource| {
            for (k, v) in labels {
                r = r.with_label(k, v);
            }
            r
        };
        self.omni.put(with(Resource::in_default_namespace("Links.omni.sidero.dev", uuid.clone(), json!({
            "nodesubnet": "", "nodepublickey": "", "lastendpoint": if connected { "192.168.3.200:51820" } else { "" },
            "connected": connected, "virtualaddrport": "", "remoteaddr": "", "nodeuniquetoken": "",
        }))));
        if !connected {
            tracing::info!(%id, ?answer, "VM cannot reach Omni on its LAN address: SideroLink stays at Registering");
            return;
        }
        self.omni.put(with(Resource::in_default_namespace("Machines.omni.sidero.dev", uuid.clone(), json!({
            "managementaddress": "fdae:41e4:649b:9303::1", "connected": true, "usegrpctunnel": false,
        }))));
        let cluster = set
            .rsplit_once(if cp { "-control-planes" } else { "-workers" })
            .map(|(c, _)| c.to_string())
            .unwrap_or_default();
        let role = if cp {
            "omni.sidero.dev/role-controlplane"
        } else {
            "omni.sidero.dev/role-worker"
        };
        self.omni.put(with(Resource::in_default_namespace("MachineStatuses.omni.sidero.dev", uuid.clone(), json!({
            "talosversion": "v1.11.5", "connected": true, "maintenance": false, "cluster": cluster, "role": if cp { 1 } else { 2 },
            "lasterror": "", "managementaddress": "fdae:41e4:649b:9303::1", "powerstate": 2,
        }))).with_label("omni.sidero.dev/connected", "").with_label("omni.sidero.dev/cluster", cluster.clone()).with_label(role, ""));
        self.omni.put(
            with(Resource::in_default_namespace(
                "ClusterMachines.omni.sidero.dev",
                uuid.clone(),
                json!({"kubernetesversion": "1.34.2"}),
            ))
            .with_label("omni.sidero.dev/cluster", cluster.clone())
            .with_label("omni.sidero.dev/machine-set", set.clone())
            .with_label(role, ""),
        );
        self.omni.put(Resource::in_default_namespace("ClusterMachineIdentities.omni.sidero.dev", uuid.clone(), json!({
            "nodeidentity": "", "etcdmemberid": 0, "nodename": id, "nodeips": [], "discoveryserviceendpoint": "", "discoveryserviceendpoints": [],
        })).with_label("omni.sidero.dev/cluster", cluster.clone()).with_label("omni.sidero.dev/machine-set", set.clone()).with_label(role, ""));
        self.omni.put(with(Resource::in_default_namespace("ClusterMachineStatuses.omni.sidero.dev", uuid.clone(), json!({
            "ready": true, "stage": 4, "configuptodate": true, "lastconfigerror": "", "managementaddress": "fdae:41e4:649b:9303::1",
            "configapplystatus": 2, "isremoved": false, "provisionstatus": {"providerid": self.provider_id, "requestid": id},
        })))
        .with_label("omni.sidero.dev/cluster", cluster.clone())
        .with_label("omni.sidero.dev/machine-set", set.clone())
        .with_label("omni.sidero.dev/connected", "")
        .with_label("omni.sidero.dev/node-name", id.clone())
        .with_label("omni.sidero.dev/hostname", id.clone())
        .with_label(role, ""));
        let node_labels = [("kubernetes.io/hostname".to_string(), id.clone())]
            .into_iter()
            .collect();
        if let Err(e) = self.kube.join_node(&id, node_labels, &uuid, cp) {
            tracing::warn!(%id, "cannot join the node: {e}");
        }
        self.update_cluster_status(&cluster);
    }

    /// What Omni's status controllers derive from the machines (omni.md §5.3): per machine set
    /// a MachineSetStatus, and for the cluster ClusterStatus, LoadBalancerStatus and the upgrade
    /// statuses — RUNNING and ready once every requested machine is connected.
    pub(crate) fn update_cluster_status(&self, cluster: &str) {
        use crate::omni::{LABEL_CLUSTER, LABEL_MACHINE_SET};
        // Machines connect concurrently: reading the members and writing the statuses is one
        // step, or a stale count written last would win (Omni's controllers run serially).
        static STATUS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _serial = STATUS.lock().unwrap_or_else(|p| p.into_inner());
        let prefix = format!("{cluster}-");
        let sets: Vec<Resource> = self
            .omni
            .list("MachineRequestSets.omni.sidero.dev")
            .into_iter()
            .filter(|r| r.metadata.id.starts_with(&prefix))
            .collect();
        let members: Vec<Resource> = self
            .omni
            .list("ClusterMachineStatuses.omni.sidero.dev")
            .into_iter()
            .filter(|r| r.label(LABEL_CLUSTER) == Some(cluster))
            .collect();
        let (mut requested_all, mut connected_all, mut all_running, mut cp_connected) =
            (0i64, 0i64, true, 0i64);
        for set in &sets {
            let requested = set.spec["machinecount"].as_i64().unwrap_or(0);
            // Members whose link is up (omni.md §5: the `connected` label).
            let connected = members
                .iter()
                .filter(|m| m.label(LABEL_MACHINE_SET) == Some(set.metadata.id.as_str()))
                .filter(|m| m.label("omni.sidero.dev/connected").is_some())
                .count() as i64;
            let running = connected >= requested;
            all_running &= running;
            requested_all += requested;
            connected_all += connected;
            if set.metadata.id.ends_with("-control-planes") {
                cp_connected = connected;
            }
            self.omni.put(
                Resource::in_default_namespace("MachineSetStatuses.omni.sidero.dev", set.metadata.id.clone(), json!({
                    "phase": if running { 3 } else { 1 }, "ready": running, "error": "",
                    "machines": {"total": connected, "healthy": connected, "connected": connected, "requested": requested},
                    "confighash": "", "machineallocation": {"name": "", "machinecount": requested, "allocationtype": 0}, "lockedupdates": 0,
                }))
                .with_owner("MachineSetStatusController")
                .with_label(LABEL_CLUSTER, cluster),
            );
        }
        let running = all_running && !sets.is_empty();
        // ControlPlaneStatus (omni.md §5: conditions{type 1 Etcd / 2 WireguardConnection,
        // status 1 Ready / 2 NotReady, severity 0 Info / 2 Error}), id = the control-plane
        // machine set, recomputed with the rest whenever a member changes.
        if let Some(cp) = sets
            .iter()
            .find(|s| s.metadata.id.ends_with("-control-planes"))
        {
            let want = cp.spec["machinecount"].as_i64().unwrap_or(0);
            let quorum = cp_connected > want / 2;
            let (status, severity, reason) = if cp_connected >= want && want > 0 {
                (1, 0, String::new())
            } else if quorum {
                (
                    1,
                    1,
                    format!("{} of {want} etcd members are connected", cp_connected),
                )
            } else {
                (
                    2,
                    2,
                    format!("etcd has no quorum: {cp_connected} of {want} members connected"),
                )
            };
            let link = if cp_connected >= want { (1, 0) } else { (2, 1) };
            self.omni.put(
                Resource::in_default_namespace(
                    "ControlPlaneStatuses.omni.sidero.dev",
                    cp.metadata.id.clone(),
                    json!({
                        "conditions": [
                            {"type": 1, "reason": reason, "status": status, "severity": severity},
                            {"type": 2, "reason": "", "status": link.0, "severity": link.1},
                        ],
                    }),
                )
                .with_owner("ControlPlaneStatusController")
                .with_label(LABEL_CLUSTER, cluster)
                .with_label(LABEL_MACHINE_SET, cp.metadata.id.as_str()),
            );
        }
        self.omni.put(
            Resource::in_default_namespace("ClusterStatuses.omni.sidero.dev", cluster.to_string(), json!({
                "available": cp_connected > 0,
                "machines": {"total": connected_all, "healthy": connected_all, "connected": connected_all, "requested": requested_all},
                "phase": if running { 3 } else { 1 }, "ready": running, "kubernetesapiready": cp_connected > 0,
                "controlplaneready": running, "hasconnectedcontrolplanes": cp_connected > 0, "useembeddeddiscoveryservice": false,
                "talosversion": "1.11.5", "kubernetesversion": "1.34.2", "disablepublicdiscoveryservice": false, "initialtalosversion": "1.11.5",
            }))
            .with_owner("ClusterStatusController")
            .with_label(LABEL_CLUSTER, cluster),
        );
        self.omni.put(
            Resource::in_default_namespace(
                "LoadBalancerStatuses.omni.sidero.dev",
                cluster.to_string(),
                json!({"healthy": cp_connected > 0, "stopped": false}),
            )
            .with_label(LABEL_CLUSTER, cluster),
        );
        for kind in [
            "KubernetesUpgradeStatuses.omni.sidero.dev",
            "TalosUpgradeStatuses.omni.sidero.dev",
        ] {
            self.omni.put(
                Resource::in_default_namespace(
                    kind,
                    cluster.to_string(),
                    json!({"phase": 2, "error": "", "step": "", "status": ""}),
                )
                .with_label(LABEL_CLUSTER, cluster),
            );
        }
    }
}

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
        tokio::time::sleep(self.scaled(30.0)).await; // boot

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
    }
}

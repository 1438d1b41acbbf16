//! A VM's power drives its machine: what the Proxmox twin's power changes do to the node in
//! Kubernetes and the machine in Omni, on the twin's one clock (every duration from
//! [`crate::timing::Timing`], scaled).
//!
//! - running: the kubelet renews its Lease and posts node status; the SideroLink is up.
//! - stop / suspend: the kubelet and the link stop at once. The node lifecycle controller
//!   notices after the grace period; Omni marks the link (and Machine, MachineStatus,
//!   ClusterMachineStatus) disconnected once the last handshake is older than siderolink's
//!   peer-down interval.
//! - shutdown (ACPI power button, failure-semantics.md §3): Talos' forced shutdown — no
//!   cordon, no drain; the kubelet's graceful node shutdown stops the pods (Failed,
//!   `Terminated`), then the kubelet stops, then the power goes.
//! - reset: the machine reboots at once: no kubelet for the outage, then a new boot
//!   (containers restarted, restart counts grow).
//! - start / resume: after the boot (resume: at once) the kubelet runs again and the link
//!   reconnects; the node's Cilium agent is ready before the node turns Ready.
//!
//! `node-never-recovers`: after its first outage a machine's kubelet comes back but never
//! finds the CNI configuration, so its node stays NotReady.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::faults::Fault;
use crate::omni::{LABEL_CLUSTER, Resource};
use crate::proxmox::{PowerEvent, PowerEventKind};
use crate::world::World;

const CONNECTED: &str = "omni.sidero.dev/connected";
const DISCONNECTED: &str = "omni.sidero.dev/disconnected";

/// Per machine: a generation that every power change bumps, so a delayed step of an older
/// change (a boot, a disconnect) does nothing once something newer happened.
#[derive(Default)]
struct Gens(Mutex<BTreeMap<String, u64>>);

impl Gens {
    fn bump(&self, name: &str) -> u64 {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let g = m.entry(name.to_string()).or_default();
        *g += 1;
        *g
    }
    fn current(&self, name: &str, gen_: u64) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(name).copied() == Some(gen_)
    }
}

impl World {
    fn after(&self, secs: f64) -> Duration {
        crate::timing::scaled(secs, self.time_scale)
    }

    /// Follow the Proxmox twin's power changes until its feed closes.
    pub async fn run_power(self: Arc<Self>) {
        let mut rx = self.proxmox.subscribe_power();
        let gens = Arc::new(Gens::default());
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let g = gens.bump(&ev.name);
                    tokio::spawn(Arc::clone(&self).apply(ev, g, Arc::clone(&gens)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("twin power: {n} power changes missed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn apply(self: Arc<Self>, ev: PowerEvent, g: u64, gens: Arc<Gens>) {
        let name = ev.name.as_str();
        let t = &self.timing;
        tracing::info!(vm = ev.vmid, %name, kind = ?ev.kind, "twin power change");
        match ev.kind {
            PowerEventKind::PoweredOff | PowerEventKind::Paused => {
                self.machine_down(name);
                self.link_lost(&ev, g, &gens).await;
            }
            PowerEventKind::AcpiShutdown => {
                // Forced shutdown: no cordon or drain; the kubelet stops the pods, then itself.
                let _ = self.kube.begin_node_shutdown(name);
                tokio::time::sleep(self.after(t.pod_shutdown.min(t.talos_shutdown_grace))).await;
                if !gens.current(name, g) {
                    return;
                }
                self.machine_down(name);
                self.link_lost(&ev, g, &gens).await;
            }
            PowerEventKind::Reset => {
                self.machine_down(name);
                tokio::time::sleep(self.after(t.reset_outage)).await;
                if gens.current(name, g) {
                    self.machine_up(&ev, true);
                }
            }
            PowerEventKind::PoweredOn => {
                self.machine_down(name);
                tokio::time::sleep(self.after(t.boot)).await;
                if gens.current(name, g) {
                    self.machine_up(&ev, true);
                }
            }
            PowerEventKind::Resumed => self.machine_up(&ev, false),
        }
    }

    /// The kubelet stops (its heartbeats with it). A machine that never joined has none.
    fn machine_down(&self, name: &str) {
        let _ = self.kube.set_kubelet_alive(name, false);
    }

    /// The kubelet runs again (a new boot, or the same one after a resume) and the link
    /// reconnects at once (the first handshake after boot).
    fn machine_up(&self, ev: &PowerEvent, boot: bool) {
        let name = ev.name.as_str();
        if self.faults.contains(&Fault::NodeNeverRecovers) {
            let _ = self.kube.set_cni_broken(name, true);
        }
        let _ = if boot {
            self.kube.set_kubelet_alive(name, true)
        } else {
            self.kube.resume_kubelet(name)
        };
        self.set_link(&ev.uuid, true);
    }

    /// The link is silent: Omni marks it disconnected once the last handshake is older than
    /// the peer-down interval, unless the machine came back meanwhile.
    async fn link_lost(&self, ev: &PowerEvent, g: u64, gens: &Gens) {
        tokio::time::sleep(self.after(self.timing.omni_link_down_after)).await;
        if gens.current(&ev.name, g) {
            self.set_link(&ev.uuid, false);
        }
    }

    /// Link.spec.connected and its copies (omni.md §5: Machine, MachineStatus and its
    /// connected/disconnected label, ClusterMachineStatus `ready` and its connected label),
    /// then the cluster's statuses.
    pub(crate) fn set_link(&self, uuid: &str, connected: bool) {
        if uuid.is_empty() {
            return;
        }
        let edit = |kind: &str, f: &dyn Fn(&mut Resource)| {
            if let Some(mut r) = self.omni.get(kind, "default", uuid) {
                let before = r.clone();
                f(&mut r);
                if r != before {
                    self.omni.put(r);
                }
            }
        };
        edit("Links.omni.sidero.dev", &|r| {
            r.spec["connected"] = json!(connected);
        });
        edit("Machines.omni.sidero.dev", &|r| {
            r.spec["connected"] = json!(connected);
        });
        edit("MachineStatuses.omni.sidero.dev", &|r| {
            r.spec["connected"] = json!(connected);
            let labels = &mut r.metadata.labels;
            if connected {
                labels.remove(DISCONNECTED);
                labels.insert(CONNECTED.into(), String::new());
            } else {
                labels.remove(CONNECTED);
                labels.insert(DISCONNECTED.into(), String::new());
            }
        });
        edit("ClusterMachineStatuses.omni.sidero.dev", &|r| {
            // `ready` = Talos reports ready and the machine is connected.
            r.spec["ready"] = json!(connected);
            if connected {
                r.metadata.labels.insert(CONNECTED.into(), String::new());
            } else {
                r.metadata.labels.remove(CONNECTED);
            }
        });
        if let Some(cluster) = self
            .omni
            .get("ClusterMachineStatuses.omni.sidero.dev", "default", uuid)
            .and_then(|r| r.label(LABEL_CLUSTER).map(str::to_string))
        {
            self.update_cluster_status(&cluster);
        }
    }
}

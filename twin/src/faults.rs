//! Named faults: switches that change the twin's world so that one scenario must notice.
//! Each fault names the scenario that must catch it and the verdict it must give; every other
//! scenario must stay green (the fault matrix test checks exactly this).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Every Proxmox host resolves through public DNS (1.1.1.1, 8.8.8.8) instead of the LAN
    /// gateway: VMs inherit it and never reach Omni by its LAN address.
    DnsPublicOnHosts,
    /// The LAN DNS view answers the Omni name with the public (Tailscale) address.
    DnsLanWrongAnswer,
    /// The Ceph storage `vm_ssd` is not configured at all.
    StorageMissing,
    /// `vm_ssd` is configured but inactive on every host.
    StorageInactive,
    /// Ceph is down: HEALTH_ERR, no OSD up, RBD storages inactive.
    CephDown,
    /// One OSD down: HEALTH_WARN with OSD_DOWN and degraded PGs.
    CephDegraded,
    /// The hosts' memory is nearly all in use: the planned VMs do not fit.
    RamExhausted,
    /// The infra provider stopped heartbeating (its key expired): Omni says disconnected and
    /// no machine request is picked up.
    ProviderDisconnected,
    /// clusterproof's own Omni service-account key is expired: every omnictl call fails.
    OmniAuthExpired,
    /// The cilium shim installs without honouring the `MTU` value: `cilium-config` has no
    /// `mtu` key (the chart's default `MTU: 0`, auto-detect).
    CiliumMtuAutodetect,
    /// One CoreDNS replica crash-loops (CoreDNS's `loop` plugin exits 1 after every start):
    /// `CrashLoopBackOff` with `lastState.terminated` `Error`, exit code 1, restarts growing.
    CrashloopPod,
    /// The first worker to join never turns Ready (its kubelet never finds the CNI
    /// configuration). Also seen by `dod::workers_ready`; `provision::cilium`'s wait for every
    /// node Ready fails too.
    NodeNeverReady,
    /// Pod traffic between the first two workers to join is dropped: connections between
    /// their pods time out, everything else works.
    CrossNodeDrop,
    /// After a node failure the VM runs again but its node never turns Ready (its kubelet
    /// comes back without finding the CNI configuration).
    NodeNeverRecovers,
    /// The first start task of each VM fails (`start failed: QEMU exited with code 1`); a
    /// second start succeeds.
    VmStartFailsOnce,
    /// Every VM is HA-managed (an HA resource, state `started`): a plain stop would persist
    /// the HA request state `stopped`.
    VictimHaManaged,
}

/// The verdict a fault must produce in its scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Fail,
    Warn,
}

impl Fault {
    pub const ALL: [Fault; 16] = [
        Fault::DnsPublicOnHosts,
        Fault::DnsLanWrongAnswer,
        Fault::StorageMissing,
        Fault::StorageInactive,
        Fault::CephDown,
        Fault::CephDegraded,
        Fault::RamExhausted,
        Fault::ProviderDisconnected,
        Fault::OmniAuthExpired,
        Fault::CiliumMtuAutodetect,
        Fault::CrashloopPod,
        Fault::NodeNeverReady,
        Fault::CrossNodeDrop,
        Fault::NodeNeverRecovers,
        Fault::VmStartFailsOnce,
        Fault::VictimHaManaged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::DnsPublicOnHosts => "dns-public-on-hosts",
            Fault::DnsLanWrongAnswer => "dns-lan-wrong-answer",
            Fault::StorageMissing => "storage-missing",
            Fault::StorageInactive => "storage-inactive",
            Fault::CephDown => "ceph-down",
            Fault::CephDegraded => "ceph-degraded",
            Fault::RamExhausted => "ram-exhausted",
            Fault::ProviderDisconnected => "provider-disconnected",
            Fault::OmniAuthExpired => "omni-auth-expired",
            Fault::CiliumMtuAutodetect => "cilium-mtu-autodetect",
            Fault::CrashloopPod => "crashloop-pod",
            Fault::NodeNeverReady => "node-never-ready",
            Fault::CrossNodeDrop => "cross-node-drop",
            Fault::NodeNeverRecovers => "node-never-recovers",
            Fault::VmStartFailsOnce => "vm-start-fails-once",
            Fault::VictimHaManaged => "victim-ha-managed",
        }
    }

    /// The scenario that must catch it, and how.
    pub fn caught_by(self) -> (&'static str, Expect) {
        match self {
            Fault::DnsPublicOnHosts | Fault::DnsLanWrongAnswer => ("preflight::dns", Expect::Fail),
            Fault::StorageMissing => ("preflight::machine_classes", Expect::Fail),
            Fault::StorageInactive | Fault::CephDown => ("preflight::ceph", Expect::Fail),
            Fault::CephDegraded => ("preflight::ceph", Expect::Warn),
            Fault::RamExhausted => ("preflight::ram_budget", Expect::Fail),
            Fault::ProviderDisconnected | Fault::OmniAuthExpired => {
                ("preflight::omni", Expect::Fail)
            }
            Fault::CiliumMtuAutodetect => ("dod::cilium_healthy", Expect::Fail),
            Fault::CrashloopPod => ("dod::core_pods", Expect::Fail),
            Fault::NodeNeverReady => ("dod::all_nodes_ready", Expect::Fail),
            Fault::CrossNodeDrop => ("dod::connectivity", Expect::Fail),
            // The chaos experiment: the node never recovers (fail, the VM is running); the
            // restore retries the failed start and says so (the run passes); an HA-managed
            // victim is refused before any VM is touched.
            Fault::NodeNeverRecovers | Fault::VictimHaManaged => {
                ("chaos::node_failure", Expect::Fail)
            }
            Fault::VmStartFailsOnce => ("chaos::node_failure", Expect::Warn),
        }
    }
}

impl Fault {
    /// The Kubernetes twin's part of the fault, if it has one.
    pub fn kube(self) -> Option<crate::kube::KubeFault> {
        use crate::kube::KubeFault;
        match self {
            Fault::CrashloopPod => Some(KubeFault::CrashLoopPod),
            Fault::NodeNeverReady => Some(KubeFault::NodeNeverReady),
            Fault::CrossNodeDrop => Some(KubeFault::CrossNodeDrop),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown fault \"{s}\"; known faults: {}",
                    Fault::ALL
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

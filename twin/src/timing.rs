//! The twin's one clock: every duration of the emulated world, in real seconds. The twin
//! multiplies each by its `time_scale`; tests step time by choosing these (a doubled grace
//! period, a longer boot).

use std::time::Duration;

/// Durations of the emulated systems, in real (unscaled) seconds. `Default` is what the real
/// systems do; each field names its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// kube-controller-manager `--node-monitor-grace-period`: 50 s since v1.32
    /// (failure-semantics.md §2, kubernetes PR #126287).
    pub node_monitor_grace: f64,
    /// `--node-monitor-period`: how often the node lifecycle controller looks (5 s).
    pub node_monitor_period: f64,
    /// kubelet `nodeLeaseDurationSeconds` (40 s).
    pub lease_duration: f64,
    /// kubelet Lease renewal: a quarter of the duration (`nodeLeaseRenewIntervalFraction`).
    pub lease_renew: f64,
    /// `DefaultTolerationSeconds` admission: 300 s for not-ready and unreachable.
    pub default_toleration: f64,
    /// Talos' kubelet `shutdownGracePeriod` (30 s, failure-semantics.md §3): the bound on how
    /// long the graceful node shutdown may take.
    pub talos_shutdown_grace: f64,
    /// How long the kubelet's graceful node shutdown takes to stop the pods (they exit on
    /// SIGTERM well within `talos_shutdown_grace`); the kubelet stops right after.
    pub pod_shutdown: f64,
    /// From power-on (or reset) to a running kubelet and SideroLink. Talos on a Proxmox VM
    /// boots in roughly half a minute (firmware, kernel, machined, kubelet start); 30 s.
    pub boot: f64,
    /// A hard reset's outage: the machine reboots (`boot`).
    pub reset_outage: f64,
    /// SideroLink's WireGuard keepalive: how often a running machine's link proves itself.
    pub omni_link_heartbeat: f64,
    /// How long after the last handshake Omni marks a link disconnected (siderolink
    /// `PeerDownInterval`: handshake timeout 180 s + rekey timeout 5 s + rekey attempt
    /// timeout 90 s, the WireGuard paper's "downed peer").
    pub omni_link_down_after: f64,
    /// Proxmox task run times.
    pub task_start: f64,
    pub task_stop: f64,
    /// `qmshutdown` of a running guest: until the guest powered off after its ACPI shutdown.
    pub task_shutdown: f64,
    pub task_reboot: f64,
    pub task_reset: f64,
    pub task_suspend: f64,
    pub task_resume: f64,
    /// `hastop`/`hastart`: the task ends once the command is queued.
    pub task_ha: f64,
    /// The HA stack acts one CRM + LRM cycle later (both loop about every 10 s; proxmox.md §9
    /// "expect roughly 10–20 s"): 15 s.
    pub ha_crm_delay: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            node_monitor_grace: 50.0,
            node_monitor_period: 5.0,
            lease_duration: 40.0,
            lease_renew: 10.0,
            default_toleration: 300.0,
            talos_shutdown_grace: 30.0,
            pod_shutdown: 2.0,
            boot: 30.0,
            reset_outage: 30.0,
            omni_link_heartbeat: 25.0,
            omni_link_down_after: 275.0,
            task_start: 2.0,
            task_stop: 1.0,
            task_shutdown: 5.0,
            task_reboot: 5.0,
            task_reset: 0.5,
            task_suspend: 0.5,
            task_resume: 0.5,
            task_ha: 0.5,
            ha_crm_delay: 15.0,
        }
    }
}

/// `secs` of the emulated world at the twin's pace.
pub fn scaled(secs: f64, time_scale: f64) -> Duration {
    Duration::from_secs_f64((secs * time_scale).max(0.0))
}

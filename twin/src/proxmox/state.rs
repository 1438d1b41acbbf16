//! The emulated Proxmox cluster's state: hosts, storages, Ceph, VMs and tasks. Response
//! bodies come from the inventory; memory use, VM power and task status are computed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};

use super::Answer;
use crate::TwinError;
use crate::faults::Fault;

/// The response bodies the twin starts from (`data` of each file).
pub struct Inventory {
    pub version: Value,
    pub cluster_status: Value,
    pub nodes: Vec<Value>,
    pub storage: Vec<Value>,
    pub ceph: Value,
    pub ha: Vec<Value>,
    /// Per node: status, dns, storage, qemu list, and VM configs by vmid.
    pub per_node: BTreeMap<String, NodeFiles>,
}

pub struct NodeFiles {
    pub status: Value,
    pub dns: Value,
    pub storage: Vec<Value>,
    pub qemu: Vec<Value>,
    pub configs: BTreeMap<u32, Value>,
}

/// Where an inventory's response bodies are read from.
#[derive(Debug, Clone)]
pub enum InventorySource {
    /// `fixtures/twin/proxmox`, embedded in the binary.
    Bundled,
    /// A directory of the same layout.
    Dir(PathBuf),
    /// The bundled inventory grown to more hosts (a sized twin): see [`HostSizing`].
    Sized(HostSizing),
}

/// How a sized twin's host inventory grows from the bundled one: every host (the bundled
/// ones and the added ones, which copy the first host's bodies) gets `host_memory` bytes,
/// and the shared storages get at least `shared_storage` bytes free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSizing {
    pub hosts: usize,
    pub host_memory: u64,
    pub shared_storage: u64,
}

/// Names of added hosts: the seed's hosts are foxtrot, golf and hotel; the phonetic alphabet
/// goes on, then `pve27`, `pve28`, ….
fn host_name(i: usize) -> String {
    const NATO: [&str; 26] = [
        "alfa", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
        "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
    ];
    NATO.get(i + 5)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("pve{}", i + 6))
}

fn data(src: &InventorySource, rel: &str) -> Result<Value, TwinError> {
    let (path, text): (PathBuf, Vec<u8>) = match src {
        // A sized inventory grows from the bundled bodies.
        InventorySource::Bundled | InventorySource::Sized(_) => {
            let path = Path::new("fixtures/twin/proxmox").join(rel);
            let text =
                crate::bundle::file(&format!("fixtures/twin/proxmox/{rel}")).ok_or_else(|| {
                    TwinError::Inventory(format!(
                        "{}: not in the bundled inventory",
                        path.display()
                    ))
                })?;
            (path, text.to_vec())
        }
        InventorySource::Dir(dir) => {
            let path = dir.join(rel);
            let text = std::fs::read(&path)
                .map_err(|e| TwinError::Io(format!("read {}", path.display()), e))?;
            (path, text)
        }
    };
    let mut v: Value = serde_json::from_slice(&text)
        .map_err(|e| TwinError::Inventory(format!("{}: {e}", path.display())))?;
    match v.get_mut("data") {
        Some(d) => Ok(d.take()),
        None => Err(TwinError::Inventory(format!(
            "{}: not a Proxmox response body (no \"data\")",
            path.display()
        ))),
    }
}

fn list(v: Value, what: &str) -> Result<Vec<Value>, TwinError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(TwinError::Inventory(format!("{what}: expected a list"))),
    }
}

impl Inventory {
    pub fn load(dir: &InventorySource) -> Result<Self, TwinError> {
        if let InventorySource::Sized(sizing) = dir {
            let mut inv = Inventory::load(&InventorySource::Bundled)?;
            inv.grow(sizing)?;
            return Ok(inv);
        }
        let nodes = list(data(dir, "nodes.json")?, "nodes.json")?;
        let mut per_node = BTreeMap::new();
        for n in &nodes {
            let name = n["node"]
                .as_str()
                .ok_or_else(|| TwinError::Inventory("nodes.json: an entry has no \"node\"".into()))?
                .to_string();
            let qemu = list(data(dir, &format!("nodes/{name}/qemu.json"))?, "qemu.json")?;
            let mut configs = BTreeMap::new();
            for vm in &qemu {
                let id = vm["vmid"].as_u64().ok_or_else(|| {
                    TwinError::Inventory(format!("nodes/{name}/qemu.json: vmid missing"))
                })? as u32;
                configs.insert(
                    id,
                    data(dir, &format!("nodes/{name}/qemu/{id}/config.json"))?,
                );
            }
            per_node.insert(
                name.clone(),
                NodeFiles {
                    status: data(dir, &format!("nodes/{name}/status.json"))?,
                    dns: data(dir, &format!("nodes/{name}/dns.json"))?,
                    storage: list(
                        data(dir, &format!("nodes/{name}/storage.json"))?,
                        "storage.json",
                    )?,
                    qemu,
                    configs,
                },
            );
        }
        Ok(Inventory {
            version: data(dir, "version.json")?,
            cluster_status: data(dir, "cluster-status.json")?,
            nodes,
            storage: list(data(dir, "storage.json")?, "storage.json")?,
            ceph: data(dir, "cluster-ceph-status.json")?,
            ha: list(
                data(dir, "cluster-ha-resources.json")?,
                "cluster-ha-resources.json",
            )?,
            per_node,
        })
    }
}

impl Inventory {
    /// Grow to `sizing.hosts` hosts (never fewer than there are), each with
    /// `sizing.host_memory` bytes of RAM, and the shared storages to `sizing.shared_storage`
    /// bytes free. An added host answers like the first one, under its own name, with no VMs.
    fn grow(&mut self, sizing: &HostSizing) -> Result<(), TwinError> {
        let first = self
            .nodes
            .first()
            .cloned()
            .ok_or_else(|| TwinError::Inventory("nodes.json: no host to copy".into()))?;
        let first_name = first["node"].as_str().unwrap_or_default().to_string();
        let pattern = self
            .per_node
            .get(&first_name)
            .ok_or_else(|| TwinError::Inventory(format!("nodes/{first_name}: missing")))?;
        let pattern = NodeFiles {
            status: pattern.status.clone(),
            dns: pattern.dns.clone(),
            storage: pattern.storage.clone(),
            qemu: Vec::new(),
            configs: BTreeMap::new(),
        };
        let pattern_status = self
            .cluster_status
            .as_array()
            .and_then(|a| a.iter().find(|e| e["type"] == "node").cloned())
            .unwrap_or_else(|| json!({"type": "node"}));
        for i in self.nodes.len()..sizing.hosts {
            let name = host_name(i);
            let mut item = first.clone();
            item["node"] = json!(name);
            item["id"] = json!(format!("node/{name}"));
            self.nodes.push(item);
            self.per_node.insert(
                name.clone(),
                NodeFiles {
                    status: pattern.status.clone(),
                    dns: pattern.dns.clone(),
                    storage: pattern.storage.clone(),
                    qemu: Vec::new(),
                    configs: BTreeMap::new(),
                },
            );
            if let Some(a) = self.cluster_status.as_array_mut() {
                let mut e = pattern_status.clone();
                e["id"] = json!(format!("node/{name}"));
                e["name"] = json!(name);
                e["nodeid"] = json!(i + 1);
                e["local"] = json!(0);
                e["ip"] = json!(format!("192.168.3.{}", 11 + i));
                a.push(e);
            }
        }
        let hosts = self.nodes.len();
        if let Some(c) = self
            .cluster_status
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|e| e["type"] == "cluster"))
        {
            c["nodes"] = json!(hosts);
        }
        for item in &mut self.nodes {
            item["maxmem"] = json!(sizing.host_memory);
        }
        for files in self.per_node.values_mut() {
            let used = files.status["memory"]["used"].as_u64().unwrap_or(0);
            files.status["memory"]["total"] = json!(sizing.host_memory);
            files.status["memory"]["free"] = json!(sizing.host_memory.saturating_sub(used));
            for s in files.storage.iter_mut().filter(|s| s["shared"] == 1) {
                grow_storage(s, sizing.shared_storage);
            }
        }
        for s in self.storage.iter_mut().filter(|s| s["shared"] == 1) {
            grow_storage(s, sizing.shared_storage);
        }
        Ok(())
    }
}

/// A storage status with at least `avail` bytes free (total grown by the difference).
fn grow_storage(s: &mut Value, avail: u64) {
    let Some(have) = s["avail"].as_u64() else {
        return;
    };
    if have >= avail {
        return;
    }
    let total = s["total"].as_u64().unwrap_or(0) + (avail - have);
    s["avail"] = json!(avail);
    s["total"] = json!(total);
    if let Some(used) = s["used"].as_u64() {
        s["used_fraction"] = json!(used as f64 / total.max(1) as f64);
    }
}

/// What a VM's guest sees when a power action takes effect (the world's machines follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerEventKind {
    /// Power on (start, HA start, the restart half of a reboot): the guest boots.
    PoweredOn,
    /// Power cut (stop, the end of a shutdown): the guest is gone at once.
    PoweredOff,
    /// An ACPI power-button press (`qmshutdown`, `qmreboot`, an HA graceful stop): the guest
    /// shuts itself down before the power goes.
    AcpiShutdown,
    /// A hard reset: the guest reboots at once, the VM stays running.
    Reset,
    /// The VM is paused (suspend): the guest is frozen.
    Paused,
    /// A paused VM runs on.
    Resumed,
}

/// A power change of one VM, as it happens on the twin's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerEvent {
    pub vmid: u32,
    /// The VM's name (for provider-created VMs: the MachineRequest id = node name).
    pub name: String,
    /// The SMBIOS uuid of its config (= Omni machine id), empty if it has none.
    pub uuid: String,
    pub kind: PowerEventKind,
}

/// Something the HA stack does one CRM cycle after it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crm {
    Start,
    /// Stop: hard (`status/stop`, timeout 0) or graceful (`status/shutdown`).
    Stop {
        graceful: bool,
    },
    /// The end of a graceful HA stop: the guest has shut down.
    Off,
}

struct Scheduled {
    at: Instant,
    vmid: u32,
    what: Crm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmPower {
    Running,
    Stopped,
    Paused,
}

impl VmPower {
    fn as_str(self) -> &'static str {
        match self {
            VmPower::Running => "running",
            VmPower::Stopped => "stopped",
            VmPower::Paused => "running",
        }
    }
    fn qmp(self) -> &'static str {
        match self {
            VmPower::Running => "running",
            VmPower::Stopped => "stopped",
            VmPower::Paused => "paused",
        }
    }
}

struct Vm {
    node: String,
    power: VmPower,
    /// The `GET /nodes/{node}/qemu` item the VM started as (static fields).
    item: Value,
    config: Value,
}

impl Vm {
    fn maxmem(&self) -> u64 {
        self.item["maxmem"].as_u64().unwrap_or(0)
    }
    fn name(&self) -> String {
        self.item["name"].as_str().unwrap_or("").to_string()
    }
}

struct Task {
    node: String,
    kind: &'static str,
    vmid: u32,
    user: String,
    start_epoch: u64,
    pid: u32,
    done_at: Instant,
    /// Applied when the task finishes.
    effect: Option<(VmPower, PowerEventKind)>,
    /// `OK`, or the error; lines before the last are what the task printed before it.
    exit: String,
    applied: bool,
}

impl Task {
    /// The task's output lines before its verdict, and its `exitstatus`.
    fn output_and_status(&self) -> (Vec<&str>, &str) {
        let mut lines: Vec<&str> = self.exit.lines().collect();
        let status = lines.pop().unwrap_or("OK");
        (lines, status)
    }
}

struct Host {
    files: NodeFiles,
    item: Value,
    online: bool,
}

pub struct State {
    version: Value,
    cluster_status: Value,
    storage: Vec<Value>,
    ceph: Value,
    ha: Vec<Value>,
    hosts: BTreeMap<String, Host>,
    vms: BTreeMap<u32, Vm>,
    tasks: BTreeMap<String, Task>,
    next_pid: u32,
    time_scale: f64,
    timing: crate::timing::Timing,
    /// HA: requested state (`started`, `stopped`, …) of each HA-managed VM, and the CRM's
    /// state of it (`started`, `stopping`, `stopped`, `starting`).
    ha_requested: BTreeMap<u32, String>,
    ha_crm: BTreeMap<u32, String>,
    /// Whether VMs the provider creates become HA-managed.
    ha_new_vms: bool,
    scheduled: Vec<Scheduled>,
    /// `vm-start-fails-once`: VMs whose first start task already failed.
    start_fails_once: bool,
    start_failed: std::collections::BTreeSet<u32>,
    events: tokio::sync::broadcast::Sender<PowerEvent>,
    pub(crate) placement: Placement,
}

/// How the provider's `pickNode` calls for one machine set see each other
/// (`shared/reference/failure-semantics.md` §1, from the provider's `provision.go` at `0d9fd58`,
/// its v0.2.0 CHANGELOG, issue #51 and PR #68).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// v0.2.0 and later: the scheduler remembers each pick (a reservation), so every VM of a
    /// set counts for the next pick and a set spreads over the hosts.
    #[default]
    Reserving,
    /// Up to v0.1.x: a set's requests are picked before any of its VMs runs (Proxmox's `mem`
    /// counts only what running VMs use) and before the VMs carry the set's tag (the "fewest
    /// VMs of this set" key is 0 for all): the set's own VMs are invisible to its picks, and
    /// the whole set lands on the host that was the most free.
    Unreserved,
}

impl Placement {
    /// The version the twin's provider stands for (written into the twin's lab file).
    pub fn version(self) -> &'static str {
        match self {
            Placement::Reserving => "v0.2.0",
            Placement::Unreserved => "v0.1.4",
        }
    }
}

const GIB: u64 = 1 << 30;

impl State {
    pub fn new(
        inv: Inventory,
        faults: &[Fault],
        fingerprint: &str,
        time_scale: f64,
        timing: crate::timing::Timing,
        ha_managed: bool,
    ) -> Self {
        let mut hosts = BTreeMap::new();
        let mut vms = BTreeMap::new();
        let mut per_node = inv.per_node;
        for mut item in inv.nodes {
            let name = item["node"].as_str().unwrap_or_default().to_string();
            item["ssl_fingerprint"] = json!(fingerprint);
            let Some(mut files) = per_node.remove(&name) else {
                continue;
            };
            for q in std::mem::take(&mut files.qemu) {
                let id = q["vmid"].as_u64().unwrap_or(0) as u32;
                let power = if q["status"] == "running" {
                    VmPower::Running
                } else {
                    VmPower::Stopped
                };
                let config = files.configs.remove(&id).unwrap_or_else(|| json!({}));
                vms.insert(
                    id,
                    Vm {
                        node: name.clone(),
                        power,
                        item: q,
                        config,
                    },
                );
            }
            hosts.insert(
                name,
                Host {
                    files,
                    item,
                    online: true,
                },
            );
        }
        let mut s = State {
            version: inv.version,
            cluster_status: inv.cluster_status,
            storage: inv.storage,
            ceph: inv.ceph,
            ha: inv.ha,
            hosts,
            vms,
            tasks: BTreeMap::new(),
            next_pid: 0x0019_4d13,
            time_scale,
            timing,
            ha_requested: BTreeMap::new(),
            ha_crm: BTreeMap::new(),
            ha_new_vms: ha_managed || faults.contains(&Fault::VictimHaManaged),
            placement: Placement::default(),
            scheduled: Vec::new(),
            start_fails_once: faults.contains(&Fault::VmStartFailsOnce),
            start_failed: Default::default(),
            events: tokio::sync::broadcast::channel(1024).0,
        };
        for f in faults {
            s.apply_fault(*f);
        }
        s
    }

    fn apply_fault(&mut self, f: Fault) {
        match f {
            // Data only: nothing ever queries these addresses.
            Fault::DnsPublicOnHosts => self.set_hosts_dns(&["1.1.1.1", "8.8.8.8"]),
            // The DNS views, the Omni twin, the Kubernetes twin and the cilium shim implement
            // these.
            Fault::DnsLanWrongAnswer
            | Fault::ProviderDisconnected
            | Fault::OmniAuthExpired
            | Fault::CiliumMtuAutodetect
            | Fault::CrashloopPod
            | Fault::NodeNeverReady
            | Fault::CrossNodeDrop
            | Fault::NodeNeverRecovers
            | Fault::VmStartFailsOnce
            | Fault::VictimHaManaged => {}
            Fault::StorageMissing => {
                self.storage.retain(|s| s["storage"] != "vm_ssd");
                for h in self.hosts.values_mut() {
                    h.files.storage.retain(|s| s["storage"] != "vm_ssd");
                }
            }
            Fault::StorageInactive => self.deactivate(|s| s["storage"] == "vm_ssd"),
            Fault::CephDown => {
                self.ceph["health"] = json!({
                    "status": "HEALTH_ERR",
                    "checks": {
                        "OSD_DOWN": {"severity": "HEALTH_WARN", "summary": {"message": "6 osds down", "count": 6}, "detail": [], "muted": false},
                        "PG_AVAILABILITY": {"severity": "HEALTH_ERR", "summary": {"message": "Reduced data availability: 129 pgs inactive", "count": 129}, "detail": [], "muted": false}
                    },
                    "mutes": []
                });
                self.ceph["osdmap"]["num_up_osds"] = json!(0);
                self.deactivate(|s| s["type"] == "rbd" || s["type"] == "cephfs");
            }
            Fault::CephDegraded => {
                self.ceph["health"] = json!({
                    "status": "HEALTH_WARN",
                    "checks": {
                        "OSD_DOWN": {"severity": "HEALTH_WARN", "summary": {"message": "1 osds down", "count": 1}, "detail": [{"message": "osd.4 (root=default,host=hotel) is down"}], "muted": false},
                        "PG_DEGRADED": {"severity": "HEALTH_WARN", "summary": {"message": "Degraded data redundancy: 25500/459000 objects degraded (5.556%), 43 pgs degraded", "count": 43}, "detail": [], "muted": false}
                    },
                    "mutes": []
                });
                self.ceph["osdmap"]["num_up_osds"] = json!(5);
            }
            Fault::RamExhausted => {
                for h in self.hosts.values_mut() {
                    let total = h.item["maxmem"].as_u64().unwrap_or(64 * GIB);
                    let used = total - 4 * GIB;
                    h.item["mem"] = json!(used);
                    h.files.status["memory"]["used"] = json!(used);
                    h.files.status["memory"]["free"] = json!(total - used);
                }
            }
        }
    }

    fn deactivate(&mut self, which: impl Fn(&Value) -> bool) {
        for h in self.hosts.values_mut() {
            for s in h.files.storage.iter_mut().filter(|s| which(s)) {
                s["active"] = json!(0);
                s["avail"] = json!(0);
                s["used"] = json!(0);
                s["total"] = json!(0);
                if let Some(o) = s.as_object_mut() {
                    o.remove("used_fraction");
                }
            }
        }
    }

    /// Every host's DNS servers (`dns1`..`dns3` of `GET /nodes/{node}/dns`, at most three, as
    /// Proxmox allows), as `PUT /nodes/{node}/dns` would set them; `search` stays.
    pub fn set_hosts_dns(&mut self, servers: &[&str]) {
        for h in self.hosts.values_mut() {
            let search = h.files.dns.get("search").cloned();
            let mut dns = serde_json::Map::new();
            if let Some(search) = search {
                dns.insert("search".into(), search);
            }
            for (i, server) in servers.iter().take(3).enumerate() {
                dns.insert(format!("dns{}", i + 1), json!(server));
            }
            h.files.dns = Value::Object(dns);
        }
    }

    pub fn set_node_online(&mut self, node: &str, online: bool) {
        if let Some(h) = self.hosts.get_mut(node) {
            h.online = online;
        }
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    pub fn vm_power(&self, vmid: u32) -> Option<VmPower> {
        self.vms.get(&vmid).map(|v| v.power)
    }

    /// Apply the effects of tasks (and HA actions) that have finished by now, in time order.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, String)> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.applied && t.done_at <= now)
            .map(|(k, t)| (t.done_at, k.clone()))
            .collect();
        due.sort();
        for (_, upid) in due {
            let Some(t) = self.tasks.get_mut(&upid) else {
                continue;
            };
            t.applied = true;
            let (vmid, effect) = (t.vmid, t.effect);
            if let Some((p, kind)) = effect {
                self.set_power(vmid, p, kind);
            }
        }
        let (ready, later): (Vec<Scheduled>, Vec<Scheduled>) = std::mem::take(&mut self.scheduled)
            .into_iter()
            .partition(|s| s.at <= now);
        self.scheduled = later;
        let mut ready = ready;
        ready.sort_by_key(|s| s.at);
        for s in ready {
            self.crm_act(s.vmid, s.what, now);
        }
    }

    /// When the next task or HA action is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.tasks
            .values()
            .filter(|t| !t.applied)
            .map(|t| t.done_at)
            .chain(self.scheduled.iter().map(|s| s.at))
            .min()
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<PowerEvent> {
        self.events.subscribe()
    }

    fn emit(&self, vmid: u32, kind: PowerEventKind) {
        if let Some(vm) = self.vms.get(&vmid) {
            let uuid = vm.config["smbios1"]
                .as_str()
                .unwrap_or("")
                .split(',')
                .find_map(|kv| kv.strip_prefix("uuid="))
                .unwrap_or("")
                .to_string();
            let _ = self.events.send(PowerEvent {
                vmid,
                name: vm.name(),
                uuid,
                kind,
            });
        }
    }

    fn set_power(&mut self, vmid: u32, power: VmPower, kind: PowerEventKind) {
        if let Some(vm) = self.vms.get_mut(&vmid) {
            vm.power = power;
            self.emit(vmid, kind);
        }
    }

    /// One CRM/LRM step for an HA-managed VM, unless the request changed meanwhile.
    fn crm_act(&mut self, vmid: u32, what: Crm, now: Instant) {
        let requested = self.ha_requested.get(&vmid).cloned().unwrap_or_default();
        let power = self.vms.get(&vmid).map(|v| v.power);
        match what {
            Crm::Start if requested == "started" => {
                if power == Some(VmPower::Stopped) {
                    self.set_power(vmid, VmPower::Running, PowerEventKind::PoweredOn);
                }
                self.ha_crm.insert(vmid, "started".into());
            }
            Crm::Stop { graceful } if requested == "stopped" || requested == "disabled" => {
                if power == Some(VmPower::Stopped) {
                    self.ha_crm.insert(vmid, "stopped".into());
                } else if graceful {
                    self.ha_crm.insert(vmid, "stopping".into());
                    self.emit(vmid, PowerEventKind::AcpiShutdown);
                    self.scheduled.push(Scheduled {
                        at: now + self.scaled(self.timing.task_shutdown),
                        vmid,
                        what: Crm::Off,
                    });
                } else {
                    self.set_power(vmid, VmPower::Stopped, PowerEventKind::PoweredOff);
                    self.ha_crm.insert(vmid, "stopped".into());
                }
            }
            Crm::Off => {
                if power != Some(VmPower::Stopped) {
                    self.set_power(vmid, VmPower::Stopped, PowerEventKind::PoweredOff);
                }
                self.ha_crm.insert(vmid, "stopped".into());
            }
            _ => {}
        }
    }

    fn scaled(&self, secs: f64) -> Duration {
        crate::timing::scaled(secs, self.time_scale)
    }

    /// Set an HA resource's requested state (`PUT /cluster/ha/resources/{sid}`, `hastop`,
    /// `hastart`) and queue the CRM's reaction.
    fn ha_request(&mut self, vmid: u32, state: &str, graceful: bool) {
        let state = if state == "enabled" { "started" } else { state };
        self.ha_requested.insert(vmid, state.to_string());
        let what = match state {
            "started" => Crm::Start,
            "stopped" | "disabled" => Crm::Stop { graceful },
            _ => return,
        };
        if what == Crm::Start {
            self.ha_crm.insert(vmid, "starting".into());
        }
        self.scheduled.push(Scheduled {
            at: Instant::now() + self.scaled(self.timing.task_ha + self.timing.ha_crm_delay),
            vmid,
            what,
        });
    }

    /// Whether a VM is under HA control (a resource with a state other than `ignored`).
    fn ha_managed(&self, vmid: u32) -> bool {
        self.ha_requested.get(&vmid).is_some_and(|s| s != "ignored")
    }

    /// The HA state a VM shows (`status/current` `ha`, `/cluster/resources` `hastate`).
    fn ha_json(&self, vmid: u32) -> Value {
        match self.ha_requested.get(&vmid) {
            Some(req) if req != "ignored" => {
                let crm = self
                    .ha_crm
                    .get(&vmid)
                    .cloned()
                    .unwrap_or_else(|| req.clone());
                json!({"managed": 1, "state": crm})
            }
            _ => json!({"managed": 0}),
        }
    }

    fn ha_resources(&self) -> Vec<Value> {
        let mut out = self.ha.clone();
        for (vmid, state) in &self.ha_requested {
            out.push(json!({
                "sid": format!("vm:{vmid}"), "type": "vm", "state": state,
                "max_restart": 1, "max_relocate": 1, "failback": 1,
                "digest": format!("{:040x}", u128::from(*vmid) * 0x9e37_79b9),
            }));
        }
        out
    }

    fn ha_status(&self) -> Vec<Value> {
        let epoch = chrono::Utc::now().timestamp();
        let stamp = chrono::Utc::now()
            .format("%a %b %e %H:%M:%S %Y")
            .to_string();
        let first = self.hosts.keys().next().cloned().unwrap_or_default();
        let mut out = vec![
            json!({"id": "quorum", "type": "quorum", "node": first, "status": "OK", "quorate": 1}),
            json!({"id": "master", "type": "master", "node": first,
                "status": format!("{first} (active, {stamp})"), "timestamp": epoch}),
        ];
        for (name, h) in &self.hosts {
            let st = if h.online {
                "active"
            } else {
                "old timestamp - dead?"
            };
            out.push(
                json!({"id": format!("lrm:{name}"), "type": "lrm", "node": name,
                "status": format!("{name} ({st}, {stamp})"), "timestamp": epoch}),
            );
        }
        for (vmid, req) in &self.ha_requested {
            let node = self
                .vms
                .get(vmid)
                .map(|v| v.node.clone())
                .unwrap_or_default();
            let crm = self
                .ha_crm
                .get(vmid)
                .cloned()
                .unwrap_or_else(|| req.clone());
            out.push(json!({
                "id": format!("service:vm:{vmid}"), "type": "service", "sid": format!("vm:{vmid}"),
                "node": node, "crm_state": crm, "state": crm, "request_state": req,
                "status": format!("vm:{vmid} ({node}, {crm})"), "max_restart": 1, "max_relocate": 1,
            }));
        }
        out
    }

    /// Memory in use on a host: its own use plus its running VMs.
    /// What `mem` shows of `node` to a pick of the set tagged `tag` under
    /// [`Placement::Unreserved`]: the set's own VMs are not running (nor tagged) yet.
    fn host_used_without(&self, node: &str, tag: &str) -> u64 {
        self.host_used(node)
            - self
                .vms
                .values()
                .filter(|v| v.node == node && v.power != VmPower::Stopped)
                .filter(|v| v.config["tags"].as_str() == Some(tag))
                .map(Vm::maxmem)
                .sum::<u64>()
    }

    /// Why QEMU could not map `bytes` of guest memory on `node`, if it could not. Proxmox
    /// reserves nothing for a VM's configured memory (failure-semantics.md §1) and checks
    /// none before a start; what refuses is the host kernel: under Linux's default
    /// heuristic overcommit (`vm.overcommit_memory=0`, mm/util.c `__vm_enough_memory`) an
    /// allocation larger than the host's RAM plus swap fails, and QEMU exits with
    /// `kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory`, which the start
    /// task reports as `start failed: QEMU exited with code 1`. (A start that fits the
    /// commit limit but not the free memory succeeds; the host's OOM killer acting later is
    /// not emulated.)
    fn commit_refused(&self, node: &str, bytes: u64) -> Option<String> {
        let h = self.hosts.get(node)?;
        let ram = h.item["maxmem"].as_u64().unwrap_or(u64::MAX);
        let swap = h.files.status["swap"]["total"].as_u64().unwrap_or(0);
        (bytes > ram.saturating_add(swap)).then(|| {
            "kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory\n\
             start failed: QEMU exited with code 1"
                .to_string()
        })
    }

    fn host_used(&self, node: &str) -> u64 {
        let base = self
            .hosts
            .get(node)
            .and_then(|h| h.item["mem"].as_u64())
            .unwrap_or(0);
        base + self
            .vms
            .values()
            .filter(|v| v.node == node && v.power != VmPower::Stopped)
            .map(Vm::maxmem)
            .sum::<u64>()
    }

    pub(crate) fn answer(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        _form: &str,
        token_id: &str,
    ) -> Answer {
        self.tick();
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let get = method == Method::GET;
        match (get, segs.as_slice()) {
            (true, ["version"]) => Answer::Data(self.version.clone()),
            (true, ["cluster", "status"]) => Answer::Data(self.cluster_status_now()),
            (true, ["cluster", "resources"]) => Answer::Data(self.resources(query)),
            (true, ["cluster", "ceph", "status"]) => Answer::Data(self.ceph.clone()),
            (true, ["cluster", "ha", "resources"]) => {
                Answer::Data(Value::Array(self.ha_resources()))
            }
            (true, ["cluster", "ha", "status", "current"]) => {
                Answer::Data(Value::Array(self.ha_status()))
            }
            (false, ["cluster", "ha", "resources", sid]) if method == Method::PUT => {
                self.put_ha_resource(sid, _form)
            }
            (true, ["nodes"]) => Answer::Data(Value::Array(self.nodes_now())),
            (true, ["storage"]) => Answer::Data(Value::Array(self.storage.clone())),
            (_, ["nodes", node, rest @ ..]) => self.node_call(get, node, rest, token_id),
            _ => Answer::Error(
                501,
                format!("Method '{} /{}' not implemented", method, segs.join("/")),
                None,
            ),
        }
    }

    /// `PUT /cluster/ha/resources/{sid}` with `state=…`: synchronous, `null`.
    fn put_ha_resource(&mut self, sid: &str, form: &str) -> Answer {
        let vmid = sid
            .strip_prefix("vm:")
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| self.ha_requested.contains_key(v));
        let Some(vmid) = vmid else {
            return Answer::Error(500, format!("service '{sid}' not defined"), None);
        };
        let state = form.split('&').find_map(|kv| kv.strip_prefix("state="));
        match state {
            Some(s @ ("started" | "stopped" | "enabled" | "disabled" | "ignored")) => {
                self.ha_request(vmid, s, false);
                Answer::Data(Value::Null)
            }
            Some(other) => Answer::Error(
                400,
                "Parameter verification failed.".into(),
                Some(
                    json!({"state": format!("value '{other}' does not have a value in the enumeration 'started, stopped, enabled, disabled, ignored'")}),
                ),
            ),
            None => Answer::Data(Value::Null),
        }
    }

    fn nodes_now(&self) -> Vec<Value> {
        self.hosts
            .iter()
            .map(|(name, h)| {
                let mut item = h.item.clone();
                if h.online {
                    item["mem"] = json!(self.host_used(name));
                } else {
                    // An offline node keeps only its max* keys.
                    item["status"] = json!("offline");
                    if let Some(o) = item.as_object_mut() {
                        for k in ["uptime", "cpu", "mem", "disk"] {
                            o.remove(k);
                        }
                    }
                }
                item
            })
            .collect()
    }

    fn cluster_status_now(&self) -> Value {
        let mut v = self.cluster_status.clone();
        if let Some(items) = v.as_array_mut() {
            for it in items.iter_mut().filter(|i| i["type"] == "node") {
                let name = it["name"].as_str().unwrap_or_default().to_string();
                let online = self.hosts.get(&name).is_some_and(|h| h.online);
                it["online"] = json!(u8::from(online));
            }
        }
        v
    }

    fn resources(&self, query: &str) -> Value {
        let kind = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("type="))
            .unwrap_or("");
        let mut out = Vec::new();
        if kind.is_empty() || kind == "vm" {
            for (id, vm) in &self.vms {
                out.push(json!({
                    "id": format!("qemu/{id}"), "vmid": id, "node": vm.node, "type": "qemu",
                    "status": vm.power.as_str(), "name": vm.name(), "template": 0,
                    "maxmem": vm.maxmem(), "mem": if vm.power == VmPower::Stopped { 0 } else { vm.maxmem() },
                    "maxcpu": vm.item["cpus"].clone(), "uptime": if vm.power == VmPower::Stopped { 0 } else { 1 },
                }));
                if let Some(state) = self.ha_json(*id).get("state").cloned()
                    && let Some(last) = out.last_mut()
                {
                    last["hastate"] = state;
                }
            }
        }
        if kind.is_empty() || kind == "node" {
            for n in self.nodes_now() {
                let mut n = n;
                n["id"] = json!(format!("node/{}", n["node"].as_str().unwrap_or("")));
                out.push(n);
            }
        }
        if kind.is_empty() || kind == "storage" {
            for (name, h) in &self.hosts {
                for s in &h.files.storage {
                    out.push(json!({
                        "id": format!("storage/{name}/{}", s["storage"].as_str().unwrap_or("")),
                        "storage": s["storage"], "node": name, "type": "storage", "plugintype": s["type"],
                        "status": if s["active"] == 1 { "available" } else { "unknown" },
                        "shared": s["shared"], "content": s["content"], "disk": s["used"], "maxdisk": s["total"],
                    }));
                }
            }
        }
        Value::Array(out)
    }

    fn node_call(&mut self, get: bool, node: &str, rest: &[&str], token_id: &str) -> Answer {
        let Some(host) = self.hosts.get(node) else {
            return Answer::Error(
                500,
                format!(
                    "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
                ),
                None,
            );
        };
        if !host.online {
            return Answer::Bare(595, "No route to host".into());
        }
        match (get, rest) {
            (true, ["status"]) => {
                let mut s = host.files.status.clone();
                let total = s["memory"]["total"].as_u64().unwrap_or(0);
                let used = self.host_used(node).min(total);
                s["memory"]["used"] = json!(used);
                s["memory"]["free"] = json!(total - used);
                s["memory"]["available"] = json!(total - used);
                Answer::Data(s)
            }
            (true, ["dns"]) => Answer::Data(host.files.dns.clone()),
            (true, ["storage"]) => Answer::Data(Value::Array(host.files.storage.clone())),
            (true, ["qemu"]) => Answer::Data(Value::Array(
                self.vms
                    .iter()
                    .filter(|(_, v)| v.node == node)
                    .map(|(id, v)| {
                        let mut it = v.item.clone();
                        it["vmid"] = json!(id);
                        it["status"] = json!(v.power.as_str());
                        if v.power == VmPower::Stopped {
                            it["mem"] = json!(0);
                            it["uptime"] = json!(0);
                            if let Some(o) = it.as_object_mut() {
                                o.remove("pid");
                            }
                        }
                        it
                    })
                    .collect(),
            )),
            (_, ["qemu", id, more @ ..]) => {
                let Some(vmid) = id
                    .parse::<u32>()
                    .ok()
                    .filter(|v| self.vms.get(v).is_some_and(|vm| vm.node == node))
                else {
                    return Answer::Error(
                        500,
                        format!(
                            "Configuration file 'nodes/{node}/qemu-server/{id}.conf' does not exist"
                        ),
                        None,
                    );
                };
                self.vm_call(get, node, vmid, more, token_id)
            }
            (true, ["tasks", upid, "log"]) => {
                match self.tasks.get(*upid).filter(|t| t.node == node) {
                    Some(t) => {
                        let mut lines = Vec::new();
                        if t.applied {
                            // What the task printed before its verdict, then the verdict.
                            let (output, status) = t.output_and_status();
                            for l in output {
                                lines.push(json!({"n": lines.len() + 1, "t": l}));
                            }
                            let last = if status == "OK" {
                                "TASK OK".to_string()
                            } else {
                                format!("TASK ERROR: {status}")
                            };
                            lines.push(json!({"n": lines.len() + 1, "t": last}));
                        }
                        Answer::Data(Value::Array(lines))
                    }
                    None => Answer::Error(
                        400,
                        "Parameter verification failed.".into(),
                        Some(json!({"upid": "no such task"})),
                    ),
                }
            }
            (true, ["tasks", upid, "status"]) => {
                match self.tasks.get(*upid).filter(|t| t.node == node) {
                    Some(t) => {
                        let done = t.applied;
                        let (user, tokenid) = match t.user.split_once('!') {
                            Some((u, tk)) => (u.to_string(), Some(tk.to_string())),
                            None => (t.user.clone(), None),
                        };
                        let mut v = json!({
                            "upid": upid, "node": node, "pid": t.pid, "pstart": 27652691, "starttime": t.start_epoch,
                            "type": t.kind, "id": t.vmid.to_string(), "user": user,
                            "status": if done { "stopped" } else { "running" },
                        });
                        if let Some(tk) = tokenid {
                            v["tokenid"] = json!(tk);
                        }
                        if done {
                            v["exitstatus"] = json!(t.output_and_status().1);
                        }
                        Answer::Data(v)
                    }
                    None => Answer::Error(
                        400,
                        "Parameter verification failed.".into(),
                        Some(json!({"upid": "no such task"})),
                    ),
                }
            }
            _ => Answer::Error(
                501,
                format!(
                    "Method '{} /nodes/{node}/{}' not implemented",
                    if get { "GET" } else { "POST" },
                    rest.join("/")
                ),
                None,
            ),
        }
    }

    fn vm_call(
        &mut self,
        get: bool,
        node: &str,
        vmid: u32,
        rest: &[&str],
        token_id: &str,
    ) -> Answer {
        let vm = &self.vms[&vmid];
        match (get, rest) {
            (true, ["status", "current"]) => {
                let mut it = vm.item.clone();
                it["vmid"] = json!(vmid);
                it["status"] = json!(vm.power.as_str());
                it["qmpstatus"] = json!(vm.power.qmp());
                it["ha"] = self.ha_json(vmid);
                it["agent"] = json!(1);
                if vm.power == VmPower::Stopped {
                    it["mem"] = json!(0);
                    it["uptime"] = json!(0);
                }
                Answer::Data(it)
            }
            (true, ["config"]) => Answer::Data(vm.config.clone()),
            (false, ["status", action]) => self.power_action(node, vmid, action, token_id),
            _ => Answer::Error(
                501,
                format!(
                    "Method '{} /nodes/{node}/qemu/{vmid}/{}' not implemented",
                    if get { "GET" } else { "POST" },
                    rest.join("/")
                ),
                None,
            ),
        }
    }

    /// `POST …/status/{action}`: a task whose effect lands when it ends (on the twin's
    /// clock), HA-forwarded for HA-managed VMs (`hastop`/`hastart`, proxmox.md §9).
    fn power_action(&mut self, node: &str, vmid: u32, action: &str, token_id: &str) -> Answer {
        use PowerEventKind as K;
        let power = self.vms[&vmid].power;
        let t = self.timing.clone();
        let ha = self.ha_managed(vmid);
        let not_running = || Answer::Error(500, format!("VM {vmid} not running"), None);
        type Plan = (
            &'static str,
            Option<(VmPower, PowerEventKind)>,
            f64,
            Option<String>,
        );
        let plan: Plan = match (action, power) {
            ("start", _) if ha => {
                self.ha_request(vmid, "started", false);
                ("hastart", None, t.task_ha, None)
            }
            ("stop" | "shutdown", p) if ha => {
                if action == "shutdown" && p == VmPower::Paused {
                    return Answer::Error(500, "VM is paused - cannot shutdown".into(), None);
                }
                self.ha_request(vmid, "stopped", action == "shutdown");
                ("hastop", None, t.task_ha, None)
            }
            ("start", VmPower::Stopped) => {
                let need = self.vms.get(&vmid).map_or(0, Vm::maxmem);
                if let Some(refused) = self.commit_refused(node, need) {
                    ("qmstart", None, t.task_start, Some(refused))
                } else if self.start_fails_once && self.start_failed.insert(vmid) {
                    // `vm-start-fails-once`: QEMU dies at its first start (as when a host
                    // resource is briefly unavailable); the next start works.
                    (
                        "qmstart",
                        None,
                        t.task_start,
                        Some("start failed: QEMU exited with code 1".into()),
                    )
                } else {
                    (
                        "qmstart",
                        Some((VmPower::Running, K::PoweredOn)),
                        t.task_start,
                        None,
                    )
                }
            }
            ("start", _) => (
                "qmstart",
                None,
                t.task_resume,
                Some(format!("VM {vmid} already running")),
            ),
            ("stop", _) => (
                "qmstop",
                Some((VmPower::Stopped, K::PoweredOff)),
                t.task_stop,
                None,
            ),
            ("shutdown", VmPower::Paused) => {
                return Answer::Error(500, "VM is paused - cannot shutdown".into(), None);
            }
            ("shutdown", VmPower::Running) => {
                self.emit(vmid, K::AcpiShutdown);
                (
                    "qmshutdown",
                    Some((VmPower::Stopped, K::PoweredOff)),
                    t.task_shutdown,
                    None,
                )
            }
            ("shutdown" | "reset" | "reboot", VmPower::Stopped) => return not_running(),
            ("reset", _) => (
                "qmreset",
                Some((VmPower::Running, K::Reset)),
                t.task_reset,
                None,
            ),
            ("reboot", VmPower::Paused) => return not_running(),
            ("reboot", _) => {
                // The guest shuts down on the ACPI event; QEMU then starts it again.
                self.emit(vmid, K::AcpiShutdown);
                (
                    "qmreboot",
                    Some((VmPower::Running, K::PoweredOn)),
                    t.task_reboot,
                    None,
                )
            }
            ("suspend", VmPower::Running) => (
                "qmpause",
                Some((VmPower::Paused, K::Paused)),
                t.task_suspend,
                None,
            ),
            ("suspend", _) => return not_running(),
            ("resume", VmPower::Paused) => (
                "qmresume",
                Some((VmPower::Running, K::Resumed)),
                t.task_resume,
                None,
            ),
            ("resume", _) => return not_running(),
            _ => {
                return Answer::Error(
                    501,
                    format!(
                        "Method 'POST /nodes/{node}/qemu/{vmid}/status/{action}' not implemented"
                    ),
                    None,
                );
            }
        };
        let (kind, effect, secs, error) = plan;
        Answer::Data(json!(
            self.start_task(node, kind, vmid, token_id, secs, effect, error)
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn start_task(
        &mut self,
        node: &str,
        kind: &'static str,
        vmid: u32,
        user: &str,
        secs: f64,
        effect: Option<(VmPower, PowerEventKind)>,
        error: Option<String>,
    ) -> String {
        self.next_pid += 1;
        let start_epoch = chrono::Utc::now().timestamp().max(0) as u64;
        // UPID:<node>:<pid 8 hex>:<pstart 8 hex>:<starttime 8 hex>:<type>:<id>:<user>: (trailing colon)
        let upid = format!(
            "UPID:{node}:{:08X}:{:08X}:{:08X}:{kind}:{vmid}:{user}:",
            self.next_pid, 27652691, start_epoch
        );
        let done_at = Instant::now() + Duration::from_secs_f64(secs * self.time_scale);
        let exit = error.unwrap_or_else(|| "OK".into());
        let effect = if exit == "OK" { effect } else { None };
        self.tasks.insert(
            upid.clone(),
            Task {
                node: node.into(),
                kind,
                vmid,
                user: user.into(),
                start_epoch,
                pid: self.next_pid,
                done_at,
                effect,
                exit,
                applied: false,
            },
        );
        upid
    }
}

/// What the infra provider asks for when it creates a VM (omni.md §9.5 `syncVM`).
#[derive(Debug)]
pub struct VmRequest {
    /// The MachineRequest id: VM name, Talos hostname, Kubernetes node name.
    pub name: String,
    /// SMBIOS uuid = Omni machine id.
    pub uuid: String,
    pub cores: u64,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// Compiled by the caller; evaluated here against each storage, in API order.
    pub selector: harness::model::selector::StorageSelector,
    pub pin: Option<String>,
    /// `machine-request.<set id>`.
    pub tag: String,
}

/// A VM the provider created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedVm {
    pub node: String,
    pub vmid: u32,
    pub storage: String,
}

impl State {
    /// `pickNode` (omni.md §9.4): the pin if online, else the online host with the highest
    /// free-memory fraction. Errors carry the provider's own texts.
    fn pick_node(&self, pin: Option<&str>, tag: &str) -> Result<String, String> {
        if self.hosts.is_empty() {
            return Err("no nodes available".into());
        }
        if let Some(p) = pin {
            return match self.hosts.get(p) {
                None => Err(format!("specified node \"{p}\" not found in cluster")),
                Some(h) if !h.online => Err(format!(
                    "specified node \"{p}\" is not online (status: offline)"
                )),
                Some(_) => Ok(p.to_string()),
            };
        }
        // A down node answers 595 through the cluster: the provider's node lookup fails.
        if let Some((name, _)) = self.hosts.iter().find(|(_, h)| !h.online) {
            return Err(format!(
                "failed to get node \"{name}\", unexpected end of JSON input"
            ));
        }
        // Sort keys as the provider's: the fewest VMs of this set on the host (v0.2.0's
        // scheduler counts its picks; before it the set's tag is written too late to count),
        // then the most free memory fraction, then the name.
        self.hosts
            .iter()
            .map(|(name, h)| {
                let total = h.item["maxmem"].as_u64().unwrap_or(0).max(1);
                let (of_set, used) = match self.placement {
                    Placement::Reserving => (
                        self.vms
                            .values()
                            .filter(|v| &v.node == name && v.config["tags"].as_str() == Some(tag))
                            .count(),
                        self.host_used(name),
                    ),
                    Placement::Unreserved => (0, self.host_used_without(name, tag)),
                };
                let free = total.saturating_sub(used) as f64 / total as f64;
                (name, of_set, free)
            })
            .min_by(|a, b| {
                a.1.cmp(&b.1)
                    .then_with(|| b.2.total_cmp(&a.2))
                    .then_with(|| a.0.cmp(b.0))
            })
            .map(|(n, _, _)| n.clone())
            .ok_or_else(|| "no nodes available".into())
    }

    /// Create and start a VM for the provider: node choice, storage choice (first match in API
    /// order, nothing filtered on active/enabled — like the provider), RAM and disk accounted.
    pub fn create_vm(&mut self, req: &VmRequest) -> Result<CreatedVm, String> {
        self.tick();
        let node = self.pick_node(req.pin.as_deref(), &req.tag)?;
        let host = self.hosts.get(&node).ok_or("no nodes available")?;
        let facts: Vec<_> = host
            .files
            .storage
            .iter()
            .map(|s| harness::model::selector::StorageFacts {
                name: s["storage"].as_str().unwrap_or("").to_string(),
                node: node.clone(),
                storage_type: s["type"].as_str().unwrap_or("").to_string(),
                available_space: s["avail"].as_u64().unwrap_or(0),
            })
            .collect();
        let storage = req
            .selector
            .pick(&facts)
            .map(|f| f.name.clone())
            .ok_or_else(|| req.selector.no_match_message())?;
        let disk = req.disk_gib << 30;
        // The provider starts the VM right after creating it (failure-semantics.md §1).
        if let Some(refused) = self.commit_refused(&node, req.memory_mib << 20) {
            return Err(format!("VM {} on {node}: {refused}", req.name));
        }
        {
            // Proxmox refuses a disk on a storage it cannot activate or that has no room.
            let s = self
                .hosts
                .get(&node)
                .and_then(|h| {
                    h.files
                        .storage
                        .iter()
                        .find(|s| s["storage"] == storage.as_str())
                })
                .ok_or("storage vanished")?;
            if s["active"] != 1 {
                return Err(format!("storage '{storage}' is not online"));
            }
            if s["avail"].as_u64().unwrap_or(0) < disk {
                return Err(format!("no space left on storage '{storage}'"));
            }
        }
        let vmid = (100..)
            .find(|id| !self.vms.contains_key(id))
            .unwrap_or(9999);
        let item = json!({
            "vmid": vmid, "name": req.name, "status": "running", "cpus": req.cores,
            "maxmem": req.memory_mib << 20, "mem": req.memory_mib << 20, "maxdisk": disk, "disk": 0,
            "cpu": 0.01, "uptime": 1, "netin": 0, "netout": 0, "serial": 0,
        });
        let config = json!({
            "name": req.name, "memory": (req.memory_mib).to_string(), "cores": req.cores, "sockets": 1,
            "cpu": "x86-64-v2-AES", "scsihw": "virtio-scsi-single", "onboot": 1,
            "scsi0": format!("{storage}:vm-{vmid}-disk-0,size={}G", req.disk_gib),
            "net0": "virtio,bridge=vmbr0,firewall=1", "agent": "enabled=true",
            "smbios1": format!("uuid={}", req.uuid), "tags": req.tag,
        });
        self.consume_storage(&node, &storage, disk as i128);
        if self.ha_new_vms {
            self.ha_requested.insert(vmid, "started".into());
            self.ha_crm.insert(vmid, "started".into());
        }
        self.vms.insert(
            vmid,
            Vm {
                node: node.clone(),
                power: VmPower::Running,
                item,
                config,
            },
        );
        Ok(CreatedVm {
            node,
            vmid,
            storage,
        })
    }

    /// Stop and delete a VM (deprovision); its disk space is returned.
    pub fn delete_vm(&mut self, vmid: u32) -> bool {
        let Some(vm) = self.vms.remove(&vmid) else {
            return false;
        };
        self.ha_requested.remove(&vmid);
        self.ha_crm.remove(&vmid);
        if let Some(storage) = vm.config["scsi0"]
            .as_str()
            .and_then(|s| s.split(':').next())
        {
            let disk = vm.item["maxdisk"].as_u64().unwrap_or(0);
            self.consume_storage(&vm.node, storage, -(disk as i128));
        }
        true
    }

    /// Adjust used/avail of a storage (on every host when it is shared).
    fn consume_storage(&mut self, node: &str, storage: &str, bytes: i128) {
        let shared = self
            .storage
            .iter()
            .any(|s| s["storage"] == storage && s["shared"] == 1);
        for (name, h) in self.hosts.iter_mut() {
            if name != node && !shared {
                continue;
            }
            for s in h
                .files
                .storage
                .iter_mut()
                .filter(|s| s["storage"] == storage)
            {
                let used = (s["used"].as_u64().unwrap_or(0) as i128 + bytes).max(0) as u64;
                let total = s["total"].as_u64().unwrap_or(0);
                s["used"] = json!(used);
                s["avail"] = json!(total.saturating_sub(used));
            }
        }
    }

    /// The HA requested state of a VM (`None`: not HA-managed).
    pub fn ha_state(&self, vmid: u32) -> Option<String> {
        self.ha_requested.get(&vmid).cloned()
    }

    /// The VM's config (`GET …/config`).
    pub fn vm_config(&self, vmid: u32) -> Option<Value> {
        self.vms.get(&vmid).map(|v| v.config.clone())
    }

    /// The VM id and host of the VM with this name.
    pub fn vm_by_name(&self, name: &str) -> Option<(u32, String)> {
        self.vms
            .iter()
            .find(|(_, v)| v.name() == name)
            .map(|(id, v)| (*id, v.node.clone()))
    }

    /// The resolvers a host's VMs inherit (`dns1..3` of the host).
    pub fn host_dns(&self, node: &str) -> Vec<String> {
        self.hosts
            .get(node)
            .map(|h| {
                ["dns1", "dns2", "dns3"]
                    .iter()
                    .filter_map(|k| h.files.dns[*k].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

//! Typed Proxmox VE API responses: only the fields clusterproof reads, every one optional
//! where Proxmox may omit it (an offline node has no `mem`), unknown fields ignored, Perl
//! values parsed laxly. Field names and semantics: `shared/reference/proxmox.md` §6.

use serde::{Deserialize, Serialize};

use super::perl;

/// `GET /version`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Version {
    pub version: String,
    #[serde(default)]
    pub release: Option<String>,
}

/// An item of `GET /nodes`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NodeItem {
    pub node: String,
    /// `online` | `offline` | `unknown`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub maxcpu: Option<u64>,
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
}

impl NodeItem {
    pub fn online(&self) -> bool {
        self.status.as_deref() == Some("online")
    }
}

/// `GET /nodes/{node}/status` (the parts preflight uses).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NodeStatus {
    pub memory: Memory,
    #[serde(default)]
    pub pveversion: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Memory {
    #[serde(default, deserialize_with = "perl::u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub free: Option<u64>,
}

/// `GET /nodes/{node}/dns`: keys appear only when present in the node's resolv.conf.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NodeDns {
    #[serde(default)]
    pub search: Option<String>,
    #[serde(default)]
    pub dns1: Option<String>,
    #[serde(default)]
    pub dns2: Option<String>,
    #[serde(default)]
    pub dns3: Option<String>,
}

impl NodeDns {
    /// The configured resolvers, in order.
    pub fn servers(&self) -> Vec<&str> {
        [&self.dns1, &self.dns2, &self.dns3]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

/// An item of `GET /storage` (cluster-wide storage configuration).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StorageConfig {
    pub storage: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: Option<String>,
    /// Comma list of nodes; absent = all nodes.
    #[serde(default)]
    pub nodes: Option<String>,
    #[serde(default, deserialize_with = "perl::bool")]
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "perl::bool")]
    pub disable: Option<bool>,
    #[serde(default)]
    pub pool: Option<String>,
}

impl StorageConfig {
    /// Whether the storage is configured for `node` (absent `nodes` = every node).
    pub fn allowed_on(&self, node: &str) -> bool {
        self.nodes
            .as_deref()
            .is_none_or(|n| n.split(',').any(|x| x.trim() == node))
    }
}

/// An item of `GET /nodes/{node}/storage` (what one node can use right now).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StorageStatus {
    pub storage: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "perl::bool")]
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "perl::bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "perl::bool")]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub avail: Option<u64>,
}

impl StorageStatus {
    pub fn is_active(&self) -> bool {
        self.active == Some(true)
    }
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }
}

/// `GET /cluster/ceph/status` (Ceph's own JSON, passed through: real booleans).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CephStatus {
    pub health: CephHealth,
    #[serde(default)]
    pub osdmap: Option<OsdMap>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CephHealth {
    /// `HEALTH_OK` | `HEALTH_WARN` | `HEALTH_ERR`.
    pub status: String,
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, CephCheck>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CephCheck {
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub summary: Option<CephCheckSummary>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CephCheckSummary {
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OsdMap {
    #[serde(default, deserialize_with = "perl::u64")]
    pub num_osds: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub num_up_osds: Option<u64>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub num_in_osds: Option<u64>,
}

/// An item of `GET /nodes/{node}/qemu`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VmItem {
    #[serde(deserialize_with = "vmid")]
    pub vmid: u32,
    #[serde(default)]
    pub name: Option<String>,
    /// `running` | `stopped`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "perl::bool")]
    pub template: Option<bool>,
}

/// `GET /nodes/{node}/qemu/{vmid}/status/current` (the parts chaos uses).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VmStatus {
    #[serde(deserialize_with = "vmid")]
    pub vmid: u32,
    #[serde(default)]
    pub name: Option<String>,
    pub status: String,
    #[serde(default)]
    pub qmpstatus: Option<String>,
    #[serde(default)]
    pub ha: Option<VmHa>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VmHa {
    #[serde(default, deserialize_with = "perl::bool")]
    pub managed: Option<bool>,
    #[serde(default)]
    pub state: Option<String>,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TaskStatus {
    pub upid: String,
    /// `running` | `stopped`.
    pub status: String,
    #[serde(default)]
    pub exitstatus: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl TaskStatus {
    pub fn finished(&self) -> bool {
        self.status == "stopped"
    }
    /// `OK` or `WARNINGS: n` count as success.
    pub fn succeeded(&self) -> bool {
        self.exitstatus
            .as_deref()
            .is_some_and(|e| e == "OK" || e.starts_with("WARNINGS: "))
    }
}

/// An item of `GET /cluster/ha/resources`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HaResource {
    pub sid: String,
    /// Requested state: `started` | `stopped` | `disabled` | `ignored`.
    #[serde(default)]
    pub state: Option<String>,
}

/// An item of `GET /cluster/resources?type=vm`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ClusterVm {
    pub id: String,
    #[serde(default, deserialize_with = "opt_vmid")]
    pub vmid: Option<u32>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "perl::u64")]
    pub maxmem: Option<u64>,
    #[serde(default)]
    pub hastate: Option<String>,
}

fn vmid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_vmid(d)?.ok_or_else(|| serde::de::Error::custom("missing vmid"))
}

fn opt_vmid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(perl::u64(d)?.and_then(|v| u32::try_from(v).ok()))
}

impl StorageStatus {
    /// What the provider's `storage_selector` sees for this storage on `node`.
    pub fn facts(&self, node: &str) -> crate::model::selector::StorageFacts {
        crate::model::selector::StorageFacts {
            name: self.storage.clone(),
            node: node.to_string(),
            storage_type: self.kind.clone(),
            available_space: self.avail.unwrap_or(0),
        }
    }
}

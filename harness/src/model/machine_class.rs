//! Omni `MachineClasses.omni.sidero.dev` resources as `omnictl apply -f` reads them, and the
//! Proxmox provider's `providerdata` (a YAML *string* inside the class). Formats:
//! `shared/reference/omni.md` §6 (resource, server validation) and §9.2 (providerdata keys,
//! types, schema constraints and provider defaults).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::source::{Finding, Location};
use crate::yaml::{self, At, Decoder, Node, Value};

/// Rule id of schema problems in machine class files.
pub const SCHEMA_RULE: &str = "class.schema";
/// Rule id of providerdata problems (schema, types, required keys).
pub const PROVIDERDATA_RULE: &str = "class.providerdata";

#[derive(Debug, Clone)]
pub struct MachineClass {
    pub file: Arc<PathBuf>,
    pub at: Location,
    pub id: At<String>,
    pub namespace: Option<At<String>>,
    pub match_labels: Vec<At<String>>,
    pub auto_provision: Option<AutoProvision>,
}

#[derive(Debug, Clone)]
pub struct AutoProvision {
    pub at: Location,
    pub provider_id: Option<At<String>>,
    pub kernel_args: Vec<At<String>>,
    pub grpc_tunnel: Option<At<i128>>,
    /// `None` when providerdata is missing or not parseable (a finding says why).
    pub provider_data: Option<ProviderData>,
}

/// The provider's `Data` (siderolabs/omni-infra-provider-proxmox `internal/pkg/provider/data.go`).
#[derive(Debug, Clone, Default)]
pub struct ProviderData {
    pub at: Option<Location>,
    pub cores: Option<At<i128>>,
    pub sockets: Option<At<i128>>,
    /// MiB.
    pub memory: Option<At<i128>>,
    /// GiB.
    pub disk_size: Option<At<i128>>,
    pub storage_selector: Option<At<String>>,
    pub network_bridge: Option<At<String>>,
    pub vlan: Option<At<i128>>,
    pub node: Option<At<String>>,
    pub cpu_type: Option<At<String>>,
    pub machine_type: Option<At<String>>,
    pub balloon: Option<At<bool>>,
    pub numa: Option<At<bool>>,
    pub hugepages: Option<At<String>>,
    pub disk_ssd: Option<At<bool>>,
    pub disk_discard: Option<At<bool>>,
    pub disk_iothread: Option<At<bool>>,
    pub disk_cache: Option<At<String>>,
    pub disk_aio: Option<At<String>>,
    pub additional_disks: Vec<AdditionalDisk>,
    pub additional_nics: Vec<AdditionalNic>,
    pub pci_devices: Vec<PciDevice>,
}

impl ProviderData {
    /// Memory in MiB as the provider sends it (0 when unset, as Go would).
    pub fn memory_mib(&self) -> u64 {
        self.memory
            .as_ref()
            .and_then(|m| u64::try_from(m.value).ok())
            .unwrap_or(0)
    }

    /// Disk in GiB (0 when unset).
    pub fn disk_gib(&self) -> u64 {
        self.disk_size
            .as_ref()
            .and_then(|m| u64::try_from(m.value).ok())
            .unwrap_or(0)
    }

    /// The network bridge, with the provider's default.
    pub fn bridge(&self) -> &str {
        self.network_bridge
            .as_ref()
            .map(|b| b.value.as_str())
            .unwrap_or("vmbr0")
    }

    /// The CPU type, with the provider's default.
    pub fn cpu(&self) -> &str {
        self.cpu_type
            .as_ref()
            .map(|b| b.value.as_str())
            .unwrap_or("x86-64-v2-AES")
    }
}

#[derive(Debug, Clone)]
pub struct AdditionalDisk {
    pub at: Location,
    pub storage_selector: Option<At<String>>,
    pub disk_size: Option<At<i128>>,
}

#[derive(Debug, Clone)]
pub struct AdditionalNic {
    pub at: Location,
    pub bridge: Option<At<String>>,
    pub vlan: Option<At<i128>>,
    pub firewall: Option<At<bool>>,
}

#[derive(Debug, Clone)]
pub struct PciDevice {
    pub at: Location,
    pub mapping: Option<At<String>>,
    pub pcie: Option<At<bool>>,
    pub primary_gpu: Option<At<bool>>,
    pub rombar: Option<At<bool>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MachineClassError {
    #[error("{path}: cannot read the machine class file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Syntax(#[from] yaml::SyntaxError),
}

/// Every class in one file, plus the findings met while decoding them.
#[derive(Debug, Clone)]
pub struct MachineClassFile {
    pub path: Arc<PathBuf>,
    pub classes: Vec<MachineClass>,
    pub findings: Vec<Finding>,
}

pub const PROVIDERDATA_KEYS: &[&str] = &[
    "cores",
    "sockets",
    "memory",
    "disk_size",
    "storage_selector",
    "network_bridge",
    "vlan",
    "node",
    "cpu_type",
    "machine_type",
    "balloon",
    "numa",
    "hugepages",
    "disk_ssd",
    "disk_discard",
    "disk_iothread",
    "disk_cache",
    "disk_aio",
    "additional_disks",
    "additional_nics",
    "pci_devices",
];

impl MachineClassFile {
    pub fn load(path: &Path) -> Result<Self, MachineClassError> {
        let text = std::fs::read_to_string(path).map_err(|source| MachineClassError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, MachineClassError> {
        let file = Arc::new(path.to_path_buf());
        let docs = yaml::parse_documents(&file, text)?;
        let mut findings = Vec::new();
        let mut classes = Vec::new();
        for doc in &docs {
            let mut d = Decoder::new(&file, SCHEMA_RULE, &mut findings);
            if let Some(c) = decode_class(&mut d, doc) {
                classes.push(c);
            }
        }
        if docs.is_empty() {
            findings.push(Finding::error(SCHEMA_RULE, Location::file(path), "the file holds no machine class").fix(
                "write a document with `metadata: {namespace: default, type: MachineClasses.omni.sidero.dev, id: NAME}` and `spec:`",
            ));
        }
        Ok(MachineClassFile {
            path: file,
            classes,
            findings,
        })
    }
}

fn decode_class(d: &mut Decoder, doc: &Node) -> Option<MachineClass> {
    // The provider README's `apiVersion/kind/spec.config` form is not a real format.
    if doc.get("apiVersion").is_some() || doc.get("kind").is_some() {
        d.error(
            doc,
            "this looks like a Kubernetes-style manifest (`apiVersion`/`kind`); omnictl expects exactly `metadata` and `spec` (\"expected 4 elements node\")",
            "rewrite as `metadata: {namespace: default, type: MachineClasses.omni.sidero.dev, id: NAME}` and `spec: {autoprovision: {providerid: ..., providerdata: |...}}`",
        );
        return None;
    }
    let f = d.fields(doc, "machine class resource", &["metadata", "spec"])?;
    let (Some(meta), Some(spec)) = (f.get("metadata"), f.get("spec")) else {
        d.error(
            doc,
            "a resource needs both `metadata` and `spec`",
            "add the missing key",
        );
        return None;
    };
    let mf = d.fields(
        meta,
        "metadata",
        &[
            "namespace",
            "type",
            "id",
            "version",
            "owner",
            "phase",
            "created",
            "updated",
            "labels",
            "annotations",
            "finalizers",
        ],
    )?;
    let ty = mf.get("type").and_then(|n| d.string(n, "metadata.type"));
    match &ty {
        Some(t) if t.value == "MachineClasses.omni.sidero.dev" => {}
        Some(t) => {
            let loc = t.at.clone();
            d.findings.push(
                Finding::error(
                    SCHEMA_RULE,
                    loc,
                    format!("metadata.type is \"{}\", not a machine class", t.value),
                )
                .fix("set `type: MachineClasses.omni.sidero.dev`"),
            );
            return None;
        }
        None => {
            d.error(
                meta,
                "metadata.type is missing",
                "set `type: MachineClasses.omni.sidero.dev`",
            );
            return None;
        }
    }
    let Some(id) = mf.get("id").and_then(|n| d.string(n, "metadata.id")) else {
        d.error(
            meta,
            "metadata.id is missing",
            "set `id:` to the class name the template references",
        );
        return None;
    };
    let namespace = mf
        .get("namespace")
        .and_then(|n| d.string(n, "metadata.namespace"));
    // Omni decodes spec non-strictly: camelCase keys are silently ignored. Say so.
    let mut match_labels = Vec::new();
    let mut auto_provision = None;
    if let Some(entries) = spec.as_map() {
        for (k, v) in entries {
            match k.as_str() {
                Some("matchlabels") => {
                    match_labels = d.string_list(v, "matchlabels").unwrap_or_default()
                }
                Some("autoprovision") => auto_provision = decode_auto(d, v),
                Some(other) => {
                    let hint = yaml::closest(other, &["matchlabels", "autoprovision"])
                        .map(|s| format!("write `{s}` (Omni's keys are lower-case)"))
                        .unwrap_or_else(|| "remove it".into());
                    let loc = d.loc(k);
                    d.findings.push(
                        Finding::error(SCHEMA_RULE, loc, format!("`{other}` is not a MachineClass spec field; Omni silently ignores it"))
                            .fix(hint),
                    );
                }
                None => d.error(k, "spec keys must be strings", ""),
            }
        }
    } else {
        d.error(spec, "spec must be a mapping", "");
    }
    if !match_labels.is_empty() && auto_provision.is_some() {
        d.error(
            spec,
            "a machine class cannot have both matchlabels and autoprovision",
            "keep `autoprovision` for provider-created VMs",
        );
    }
    Some(MachineClass {
        file: d.file.clone(),
        at: d.loc(doc),
        id,
        namespace,
        match_labels,
        auto_provision,
    })
}

fn decode_auto(d: &mut Decoder, n: &Node) -> Option<AutoProvision> {
    let entries = n.as_map()?;
    let mut a = AutoProvision {
        at: d.loc(n),
        provider_id: None,
        kernel_args: Vec::new(),
        grpc_tunnel: None,
        provider_data: None,
    };
    let known = [
        "providerid",
        "kernelargs",
        "metavalues",
        "providerdata",
        "grpctunnel",
    ];
    for (k, v) in entries {
        match k.as_str() {
            Some("providerid") => a.provider_id = d.string(v, "providerid"),
            Some("kernelargs") => {
                a.kernel_args = d.string_list(v, "kernelargs").unwrap_or_default()
            }
            Some("metavalues") => {}
            Some("grpctunnel") => a.grpc_tunnel = d.int(v, "grpctunnel"),
            Some("providerdata") => a.provider_data = decode_provider_data(d, v),
            Some(other) => {
                let hint = yaml::closest(other, &known)
                    .map(|s| format!("write `{s}`: Omni's keys are the lower-cased Go names"))
                    .unwrap_or_else(|| format!("known keys: {}", known.join(", ")));
                let loc = d.loc(k);
                d.findings.push(
                    Finding::error(
                        SCHEMA_RULE,
                        loc,
                        format!(
                            "`{other}` is not an autoprovision field; Omni silently ignores it"
                        ),
                    )
                    .fix(hint),
                );
            }
            None => d.error(k, "autoprovision keys must be strings", ""),
        }
    }
    Some(a)
}

/// Decode a `providerdata` string on its own (as the provider does with a MachineRequest's
/// copy): the data, and every problem found. `origin` names it in findings.
pub fn parse_provider_data(origin: &str, text: &str) -> (Option<ProviderData>, Vec<Finding>) {
    let file = Arc::new(PathBuf::from(origin));
    let node = Node {
        value: Value::String(text.to_string()),
        line: 1,
        col: 1,
    };
    let mut findings = Vec::new();
    let mut d = Decoder::new(&file, PROVIDERDATA_RULE, &mut findings);
    let pd = decode_provider_data(&mut d, &node);
    (pd, findings)
}

/// Decode the providerdata string: YAML, non-strict like the provider, but every unknown key
/// is reported (the provider would drop it), and types/constraints follow the JSON schema.
fn decode_provider_data(d: &mut Decoder, n: &Node) -> Option<ProviderData> {
    let text = match &n.value {
        Value::String(s) => s.clone(),
        Value::Map(_) => {
            d.error(
                n,
                "providerdata is a mapping, but Omni expects a string holding YAML",
                "write `providerdata: |` and indent the keys below it",
            );
            return None;
        }
        other => {
            d.error(
                n,
                format!("providerdata must be a YAML string, found {}", other.kind()),
                "write `providerdata: |` followed by the keys",
            );
            return None;
        }
    };
    let file = d.file.clone();
    let mut root = match yaml::parse_documents(&file, &text) {
        Ok(mut docs) if docs.len() <= 1 => docs.pop(),
        Ok(_) => {
            d.error(
                n,
                "providerdata holds several YAML documents",
                "keep a single mapping",
            );
            return None;
        }
        Err(e) => {
            let loc = d.loc(n);
            d.findings.push(Finding::error(
                PROVIDERDATA_RULE,
                loc,
                format!("providerdata is not valid YAML: {}", e.message),
            ));
            return None;
        }
    };
    // The string node is anchored at its first content line (for `providerdata: |`, the
    // line below the key): inner line 1 is that line.
    if let Some(r) = root.as_mut() {
        r.shift(n.line.saturating_sub(1), n.col.saturating_sub(1));
    }
    let mut pd_findings = Vec::new();
    let mut pd = ProviderData {
        at: Some(d.loc(n)),
        ..Default::default()
    };
    {
        let mut p = Decoder::new(&file, PROVIDERDATA_RULE, &mut pd_findings);
        if let Some(root) = &root {
            decode_pd_fields(&mut p, root, &mut pd);
        }
        // Required by the provider's schema.
        let anchor = root.as_ref().unwrap_or(n);
        for (key, present) in [
            ("cores", pd.cores.is_some()),
            ("memory", pd.memory.is_some()),
            ("disk_size", pd.disk_size.is_some()),
            ("storage_selector", pd.storage_selector.is_some()),
        ] {
            if !present && !has_key(root.as_ref(), key) {
                p.error(
                    anchor,
                    format!("providerdata is missing the required key `{key}`"),
                    required_fix(key),
                );
            }
        }
        if pd.sockets.is_none() && !has_key(root.as_ref(), "sockets") {
            let loc = p.loc(anchor);
            p.findings.push(
                Finding::warning(PROVIDERDATA_RULE, loc, "`sockets` is not set: the provider then sends sockets=0, which Proxmox rejects")
                    .fix("add `sockets: 1`"),
            );
        }
    }
    d.findings.extend(pd_findings);
    Some(pd)
}

fn has_key(root: Option<&Node>, key: &str) -> bool {
    root.and_then(|r| r.get(key)).is_some()
}

fn required_fix(key: &str) -> String {
    match key {
        "cores" => "add e.g. `cores: 4`".into(),
        "memory" => "add the VM memory in MiB, e.g. `memory: 8192` (at least 2048)".into(),
        "disk_size" => "add the disk size in GiB, e.g. `disk_size: 40` (at least 5)".into(),
        _ => "add e.g. `storage_selector: name == \"vm_ssd\"` (snake_case: the provider ignores `storageSelector`)".into(),
    }
}

fn decode_pd_fields(p: &mut Decoder, root: &Node, pd: &mut ProviderData) {
    let Some(entries) = root.as_map() else {
        p.error(
            root,
            format!(
                "providerdata must be a mapping, found {}",
                root.value.kind()
            ),
            "",
        );
        return;
    };
    for (k, v) in entries {
        let Some(key) = k.as_str() else {
            p.error(k, "providerdata keys must be strings", "");
            continue;
        };
        match key {
            "cores" => pd.cores = min_int(p, v, key, 1),
            "sockets" => pd.sockets = min_int(p, v, key, 1),
            "memory" => pd.memory = min_int(p, v, key, 2048),
            "disk_size" => pd.disk_size = min_int(p, v, key, 5),
            "vlan" => pd.vlan = min_int(p, v, key, 0),
            "storage_selector" => pd.storage_selector = p.string(v, key),
            "network_bridge" => pd.network_bridge = p.string(v, key),
            "node" => pd.node = p.string(v, key),
            "cpu_type" => pd.cpu_type = p.string(v, key),
            "machine_type" => pd.machine_type = one_of(p, v, key, &["q35", "i440fx"]),
            "hugepages" => pd.hugepages = one_of(p, v, key, &["2MB", "1GB"]),
            "disk_cache" => {
                pd.disk_cache = one_of(
                    p,
                    v,
                    key,
                    &["none", "writethrough", "writeback", "directsync", "unsafe"],
                )
            }
            "disk_aio" => pd.disk_aio = one_of(p, v, key, &["native", "threads", "io_uring"]),
            "balloon" => pd.balloon = p.bool(v, key),
            "numa" => pd.numa = p.bool(v, key),
            "disk_ssd" => pd.disk_ssd = p.bool(v, key),
            "disk_discard" => pd.disk_discard = p.bool(v, key),
            "disk_iothread" => pd.disk_iothread = p.bool(v, key),
            "additional_disks" => {
                for item in items(p, v, key) {
                    let known = [
                        "storage_selector",
                        "disk_size",
                        "disk_cache",
                        "disk_aio",
                        "disk_ssd",
                        "disk_discard",
                        "disk_iothread",
                    ];
                    if let Some(f) = p.fields(item, "additional_disks item", &known) {
                        let disk = AdditionalDisk {
                            at: p.loc(item),
                            storage_selector: f
                                .get("storage_selector")
                                .and_then(|n| p.string(n, "storage_selector")),
                            disk_size: f
                                .get("disk_size")
                                .and_then(|n| min_int(p, n, "disk_size", 1)),
                        };
                        if disk.storage_selector.is_none() || disk.disk_size.is_none() {
                            p.error(
                                item,
                                "every additional disk needs `storage_selector` and `disk_size`",
                                "add the missing key",
                            );
                        }
                        pd.additional_disks.push(disk);
                    }
                }
            }
            "additional_nics" => {
                for item in items(p, v, key) {
                    if let Some(f) = p.fields(
                        item,
                        "additional_nics item",
                        &["bridge", "vlan", "firewall"],
                    ) {
                        let nic = AdditionalNic {
                            at: p.loc(item),
                            bridge: f.get("bridge").and_then(|n| p.string(n, "bridge")),
                            vlan: f.get("vlan").and_then(|n| min_int(p, n, "vlan", 0)),
                            firewall: f.get("firewall").and_then(|n| p.bool(n, "firewall")),
                        };
                        if nic.bridge.is_none() {
                            p.error(
                                item,
                                "every additional NIC needs `bridge`",
                                "add e.g. `bridge: vmbr1`",
                            );
                        }
                        pd.additional_nics.push(nic);
                    }
                }
            }
            "pci_devices" => {
                for item in items(p, v, key) {
                    if let Some(f) = p.fields(
                        item,
                        "pci_devices item",
                        &["mapping", "pcie", "primary_gpu", "rombar"],
                    ) {
                        let dev = PciDevice {
                            at: p.loc(item),
                            mapping: f.get("mapping").and_then(|n| p.string(n, "mapping")),
                            pcie: f.get("pcie").and_then(|n| p.bool(n, "pcie")),
                            primary_gpu: f
                                .get("primary_gpu")
                                .and_then(|n| p.bool(n, "primary_gpu")),
                            rombar: f.get("rombar").and_then(|n| p.bool(n, "rombar")),
                        };
                        if dev.mapping.is_none() {
                            p.error(item, "every PCI device needs `mapping` (a Proxmox resource mapping name)", "add e.g. `mapping: nvidia-gpu-1`");
                        }
                        pd.pci_devices.push(dev);
                    }
                }
            }
            other => {
                let hint = yaml::closest(other, PROVIDERDATA_KEYS)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                let loc = p.loc(k);
                p.findings.push(
                    Finding::warning(
                        PROVIDERDATA_RULE,
                        loc,
                        format!("unknown providerdata key `{other}`: the provider ignores it"),
                    )
                    .fix(format!(
                        "{hint}the provider's keys are snake_case: {}",
                        PROVIDERDATA_KEYS.join(", ")
                    )),
                );
            }
        }
    }
}

fn items<'n>(p: &mut Decoder, v: &'n Node, key: &str) -> Vec<&'n Node> {
    match v.as_seq() {
        Some(s) => s.iter().collect(),
        None if v.is_null() => Vec::new(),
        None => {
            p.error(v, format!("`{key}` must be a list"), "");
            Vec::new()
        }
    }
}

fn min_int(p: &mut Decoder, v: &Node, key: &str, min: i128) -> Option<At<i128>> {
    if let Value::String(s) = &v.value {
        let unit = match key {
            "memory" => " of MiB, e.g. `memory: 16384`",
            "disk_size" => " of GiB, e.g. `disk_size: 100`",
            _ => "",
        };
        let fix = if s.trim().parse::<i128>().is_ok() {
            format!("write `{key}: {}` without quotes", s.trim())
        } else {
            format!("write a whole number{unit}")
        };
        p.error(
            v,
            format!("`{key}` must be an integer, found the string \"{s}\""),
            fix,
        );
        return None;
    }
    let n = p.int(v, &format!("`{key}`"))?;
    if n.value < min {
        p.error(
            v,
            format!(
                "`{key}` is {}, below the provider's minimum of {min}",
                n.value
            ),
            format!("set `{key}` to at least {min}"),
        );
    }
    Some(n)
}

fn one_of(p: &mut Decoder, v: &Node, key: &str, allowed: &[&str]) -> Option<At<String>> {
    let s = p.string(v, key)?;
    if !allowed.contains(&s.value.as_str()) {
        p.error(
            v,
            format!(
                "`{key}` is \"{}\", not one of {}",
                s.value,
                allowed.join(", ")
            ),
            format!("use one of {}", allowed.join(", ")),
        );
    }
    Some(s)
}

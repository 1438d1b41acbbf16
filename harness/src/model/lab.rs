//! The lab file: one TOML file that says where the user's Omni, Proxmox and DNS are, what
//! the cluster should look like (template and machine classes), and how checks and chaos
//! behave. Every key is documented in `docs/lab-file.md`.
//!
//! Secrets are never read from this file: the Proxmox token secret and the Omni
//! service-account key come from an environment variable or a file the lab *names*.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::source::Location;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{path}: cannot read the lab file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Syntax, type, unknown key or invalid value — with the place and a fix.
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
}

/// The parsed lab file. Paths are already resolved against the lab file's directory.
#[derive(Debug, Clone)]
pub struct LabFile {
    pub path: PathBuf,
    pub name: String,
    pub omni: Omni,
    pub proxmox: Proxmox,
    pub dns: Dns,
    pub resources: Resources,
    pub cluster: Cluster,
    pub cilium: Cilium,
    pub chaos: Chaos,
    pub kubernetes: Kubernetes,
    pub verify: Verify,
    /// Where clusterproof keeps what must outlive a run's report directory (the chaos
    /// journal, the private kubeconfig): never inside a report directory.
    pub state_dir: PathBuf,
}

/// How the harness reaches the cluster's Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kubernetes {
    /// A kubeconfig file the user gives (and its context, else the current one).
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    /// Ask Omni for a service-account kubeconfig when a run first needs the cluster; it is
    /// kept in a private (0600) file under the state directory for the run and removed after.
    Omni,
}

/// How the Definition-of-Done checks wait and probe.
#[derive(Debug, Clone)]
pub struct Verify {
    /// How long each check waits for its condition (watching) before it fails.
    pub timeout: Duration,
    /// How long restart counts must stay unchanged for `dod::core_pods`.
    pub restart_window: Duration,
    /// A kube-system pod Pending for longer than this fails `dod::core_pods`.
    pub pending_bound: Duration,
    /// The agnhost image of the connectivity probe and the chaos canary (a mirror's, if
    /// the cluster cannot reach registry.k8s.io).
    pub probe_image: String,
    /// Namespace of the probe workload (created and deleted by `dod::connectivity`).
    pub probe_namespace: String,
    /// Also run `cilium connectivity test --junit-file` and merge its cases.
    pub cilium_connectivity_test: bool,
}

impl Default for Verify {
    /// The documented defaults (docs/lab-file.md).
    fn default() -> Self {
        Verify {
            timeout: Duration::from_secs(300),
            restart_window: Duration::from_secs(30),
            pending_bound: Duration::from_secs(300),
            probe_image: DEFAULT_PROBE_IMAGE.into(),
            probe_namespace: "clusterproof-probe".into(),
            cilium_connectivity_test: false,
        }
    }
}

/// The agnhost image Kubernetes' own network e2e tests use (registry.k8s.io/e2e-test-images).
pub const DEFAULT_PROBE_IMAGE: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

#[derive(Debug, Clone)]
pub struct Omni {
    pub endpoint: String,
    pub omnictl: PathBuf,
    pub provider_id: String,
    pub lan_ip: IpAddr,
    pub service_account_key: SecretSource,
    pub omniconfig: Option<PathBuf>,
    /// The Proxmox infra provider's version (`v0.1.4`, `0.2.0`), when the lab says it;
    /// otherwise it is read from the provider's status, and placement predictions follow it.
    pub provider_version: Option<crate::model::placement::ProviderVersion>,
}

#[derive(Debug, Clone)]
pub struct Proxmox {
    /// Base URL ending in `/api2/json`.
    pub url: String,
    pub token_id: String,
    pub token_secret: SecretSource,
    pub tls: Tls,
}

/// Where a secret is read from when a driver connects. The value itself is never stored
/// in the lab model, logged or reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(v) => write!(f, "environment variable {v}"),
            SecretSource::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Verify against the system's trust store.
    Verify,
    /// Verify against this CA (PEM).
    CaFile(PathBuf),
    /// Accept exactly the certificate with this SHA-256 fingerprint (32 bytes).
    Fingerprint([u8; 32]),
    /// No verification at all; every report says so.
    Insecure,
}

#[derive(Debug, Clone)]
pub struct Dns {
    /// The name VMs resolve to reach Omni (SideroLink).
    pub omni_hostname: String,
    /// The LAN resolvers (e.g. the gateway) every Proxmox host must use.
    pub lan_resolvers: Vec<IpAddr>,
    /// Nameserver answering the LAN view (default: first LAN resolver, port 53).
    pub lan_view: std::net::SocketAddr,
    /// Nameserver answering the public view, if it should be compared.
    pub public_view: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct Resources {
    /// Memory kept free on each host, percent of its total.
    pub ram_headroom_percent: u8,
    /// Space kept free on each storage, percent of its total.
    pub storage_headroom_percent: u8,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub template: PathBuf,
    pub machine_classes: Vec<PathBuf>,
    /// How long provisioning may take (the plan: 10 minutes).
    pub provision_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Cilium {
    /// The `cilium` CLI to run for `cilium install`.
    pub cli: PathBuf,
    /// Gateway API CRDs: URL or file.
    pub gateway_api_crds: String,
    /// Helm values passed as `--set key=value`, defaults merged with the file's.
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Chaos {
    pub target: ChaosTarget,
    pub mode: StopMode,
    /// What to do with a victim VM that Proxmox HA manages.
    pub ha_managed: HaPolicy,
    pub detect_timeout: Duration,
    /// How long the victim stays down waiting for its pods to be replaced elsewhere (the
    /// node grace plus the 300 s toleration, with room); then the VM is restored anyway.
    pub reschedule_timeout: Duration,
    pub recovery_timeout: Duration,
    /// The restore stage's own deadline (starting the VM again, retries included).
    pub restore_timeout: Duration,
    /// How often the API server and the canary are probed during the experiment.
    pub probe_interval: Duration,
    /// `leaseDurationSeconds` of the cluster-wide chaos lock: a dead holder's lock expires
    /// after this long.
    pub lock_lease: Duration,
    /// Victim choice for `worker`/`control-plane` targets; `None`: a fresh seed per run
    /// (printed, so a run can be replayed with `--seed`).
    pub seed: Option<u64>,
    pub slo: Slo,
}

/// The service levels a chaos run is judged by, in percent of successful probes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// API availability while a worker is down.
    pub api_worker: f64,
    /// API availability while a control plane is down.
    pub api_control_plane: f64,
    /// Canary (netexec behind a Service) availability.
    pub canary: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            api_worker: 100.0,
            api_control_plane: 99.0,
            canary: 99.0,
        }
    }
}

impl Default for Chaos {
    fn default() -> Self {
        Chaos {
            target: ChaosTarget::Worker,
            mode: StopMode::Stop,
            ha_managed: HaPolicy::Refuse,
            detect_timeout: Duration::from_secs(120),
            reschedule_timeout: Duration::from_secs(420),
            recovery_timeout: Duration::from_secs(600),
            restore_timeout: Duration::from_secs(300),
            probe_interval: Duration::from_millis(250),
            lock_lease: Duration::from_secs(30),
            seed: None,
            slo: Slo::default(),
        }
    }
}

/// The victim of a node-failure experiment (`chaos.target`, `--target`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ChaosTarget {
    /// Any worker (the default).
    #[default]
    Worker,
    /// Any control plane (refused when losing it breaks etcd quorum).
    ControlPlane,
    /// The node of this name (VM name = Talos hostname = node name).
    Node(String),
}

impl std::str::FromStr for ChaosTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "worker" => Ok(ChaosTarget::Worker),
            "control-plane" => Ok(ChaosTarget::ControlPlane),
            "" => Err("the target is empty: use worker, control-plane or a node name".into()),
            n if n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                Ok(ChaosTarget::Node(n.to_string()))
            }
            n => Err(format!(
                "{n:?} is neither worker, control-plane nor a node name (letters, digits, '-', '.')"
            )),
        }
    }
}

impl std::fmt::Display for ChaosTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChaosTarget::Worker => f.write_str("worker"),
            ChaosTarget::ControlPlane => f.write_str("control-plane"),
            ChaosTarget::Node(n) => f.write_str(n),
        }
    }
}

/// How the victim's VM is taken down: the Proxmox VM power action (`chaos.mode`, `--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopMode {
    /// Hard stop (power off).
    #[default]
    Stop,
    /// ACPI power button: Talos shuts down (forced, no drain).
    Shutdown,
    /// Hard reset: a reboot.
    Reset,
    /// Suspend (pause).
    Suspend,
}

impl StopMode {
    pub const ALL: [StopMode; 4] = [
        StopMode::Stop,
        StopMode::Shutdown,
        StopMode::Reset,
        StopMode::Suspend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StopMode::Stop => "stop",
            StopMode::Shutdown => "shutdown",
            StopMode::Reset => "reset",
            StopMode::Suspend => "suspend",
        }
    }
}

impl std::str::FromStr for StopMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StopMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of stop, shutdown, reset, suspend"))
    }
}

impl std::fmt::Display for StopMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaPolicy {
    Refuse,
    /// Set the HA resource to `stopped` for the experiment and restore its state after.
    Disable,
}

/// The plan's `cilium install --set` values (Step 5) plus `MTU=1450`.
pub fn default_cilium_values() -> BTreeMap<String, String> {
    [
        ("ipam.mode", "kubernetes"),
        ("kubeProxyReplacement", "true"),
        (
            "securityContext.capabilities.ciliumAgent",
            "{CHOWN,KILL,NET_ADMIN,NET_RAW,IPC_LOCK,SYS_ADMIN,SYS_RESOURCE,DAC_OVERRIDE,FOWNER,SETGID,SETUID}",
        ),
        ("securityContext.capabilities.cleanCiliumState", "{NET_ADMIN,SYS_ADMIN,SYS_RESOURCE}"),
        ("cgroup.autoMount.enabled", "false"),
        ("cgroup.hostRoot", "/sys/fs/cgroup"),
        ("k8sServiceHost", "localhost"),
        ("k8sServicePort", "7445"),
        ("gatewayAPI.enabled", "true"),
        ("gatewayAPI.enableAlpn", "true"),
        ("gatewayAPI.enableAppProtocol", "true"),
        ("MTU", "1450"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub const DEFAULT_GATEWAY_API_CRDS: &str =
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.0.0/standard-install.yaml";

// ---- raw TOML ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    name: Option<String>,
    omni: Spanned<RawOmni>,
    proxmox: Spanned<RawProxmox>,
    dns: Option<Spanned<RawDns>>,
    #[serde(default)]
    resources: RawResources,
    cluster: Spanned<RawCluster>,
    #[serde(default)]
    cilium: RawCilium,
    #[serde(default)]
    chaos: RawChaos,
    #[serde(default)]
    kubernetes: RawKubernetes,
    #[serde(default)]
    verify: RawVerify,
    state_dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    kubeconfig: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    timeout: Option<Spanned<String>>,
    restart_window: Option<Spanned<String>>,
    pending_bound: Option<Spanned<String>>,
    probe_image: Option<Spanned<String>>,
    probe_namespace: Option<Spanned<String>>,
    #[serde(default)]
    cilium_connectivity_test: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOmni {
    endpoint: Spanned<String>,
    omnictl: Option<String>,
    provider_id: Spanned<String>,
    lan_ip: Spanned<String>,
    service_account_key_env: Option<String>,
    service_account_key_file: Option<String>,
    omniconfig: Option<String>,
    provider_version: Option<Spanned<String>>,
    /// Only here to give a clear refusal.
    service_account_key: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxmox {
    url: Spanned<String>,
    token_id: Spanned<String>,
    token_secret_env: Option<String>,
    token_secret_file: Option<String>,
    /// Only here to give a clear refusal.
    token_secret: Option<Spanned<toml::Value>>,
    tls: Option<Spanned<RawTls>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    fingerprint: Option<Spanned<String>>,
    #[serde(default)]
    insecure: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    omni_hostname: Option<String>,
    lan_resolvers: Spanned<Vec<String>>,
    lan_view: Option<Spanned<String>>,
    public_view: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    #[serde(default = "ten")]
    ram_headroom_percent: Spanned<u8>,
    #[serde(default = "ten")]
    storage_headroom_percent: Spanned<u8>,
}

fn ten() -> Spanned<u8> {
    Spanned::new(0..0, 10)
}

impl Default for RawResources {
    fn default() -> Self {
        RawResources {
            ram_headroom_percent: ten(),
            storage_headroom_percent: ten(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    template: Spanned<String>,
    machine_classes: Spanned<Vec<Spanned<String>>>,
    provision_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCilium {
    cli: Option<String>,
    gateway_api_crds: Option<String>,
    #[serde(default)]
    values: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChaos {
    target: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    ha_managed: Option<Spanned<String>>,
    detect_timeout: Option<Spanned<String>>,
    reschedule_timeout: Option<Spanned<String>>,
    recovery_timeout: Option<Spanned<String>>,
    restore_timeout: Option<Spanned<String>>,
    probe_interval: Option<Spanned<String>>,
    lock_lease: Option<Spanned<String>>,
    seed: Option<Spanned<toml::Value>>,
    slo_api_worker: Option<Spanned<toml::Value>>,
    slo_api_control_plane: Option<Spanned<toml::Value>>,
    slo_canary: Option<Spanned<toml::Value>>,
}

impl LabFile {
    /// The stand-in for "no lab file" when a cluster template and machine classes are linted
    /// on their own: its values are defaults, not facts about anyone's lab, nothing may connect
    /// with it, and `LabSpec::lab_given` is false so checks that need the lab leave it out.
    pub fn none(template: &Path, machine_classes: &[PathBuf]) -> LabFile {
        LabFile {
            path: PathBuf::from("(no lab file)"),
            name: "(no lab file)".into(),
            omni: Omni {
                endpoint: String::new(),
                omnictl: PathBuf::from("omnictl"),
                provider_id: String::new(),
                lan_ip: IpAddr::from([0, 0, 0, 0]),
                service_account_key: SecretSource::Env("OMNI_SERVICE_ACCOUNT_KEY".into()),
                omniconfig: None,
                provider_version: None,
            },
            proxmox: Proxmox {
                url: String::new(),
                token_id: String::new(),
                token_secret: SecretSource::Env("PROXMOX_TOKEN_SECRET".into()),
                tls: Tls::Verify,
            },
            dns: Dns {
                omni_hostname: String::new(),
                lan_resolvers: Vec::new(),
                lan_view: std::net::SocketAddr::from(([0, 0, 0, 0], 53)),
                public_view: None,
            },
            resources: Resources {
                ram_headroom_percent: 10,
                storage_headroom_percent: 10,
            },
            cluster: Cluster {
                template: template.to_path_buf(),
                machine_classes: machine_classes.to_vec(),
                provision_timeout: Duration::from_secs(600),
            },
            cilium: Cilium {
                cli: PathBuf::from("cilium"),
                gateway_api_crds: DEFAULT_GATEWAY_API_CRDS.into(),
                values: default_cilium_values(),
            },
            chaos: Chaos::default(),
            kubernetes: Kubernetes::Omni,
            verify: Verify::default(),
            state_dir: default_state_dir("(no lab file)"),
        }
    }

    pub fn load(path: &Path) -> Result<Self, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, LabError> {
        let cx = Cx { path, text };
        let raw: RawLab = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            let msg = if msg.contains("unknown field") {
                format!("{msg}; see docs/lab-file.md for every key")
            } else {
                msg
            };
            cx.invalid(e.span().map(|s| s.start), msg)
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| {
            if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                base.join(p)
            }
        };
        // A program: a bare name is looked up on PATH, anything with `/` is a path.
        let program = |p: &str| {
            if p.contains('/') {
                resolve(p)
            } else {
                PathBuf::from(p)
            }
        };

        // --- omni
        let o = raw.omni.get_ref();
        if let Some(k) = &o.service_account_key {
            return Err(cx.invalid(Some(k.span().start), "the Omni service-account key must not be written in the lab file; set `service_account_key_env` (default OMNI_SERVICE_ACCOUNT_KEY) or `service_account_key_file` instead"));
        }
        let endpoint = o.endpoint.get_ref().trim_end_matches('/').to_string();
        if !["https://", "http://", "grpc://"]
            .iter()
            .any(|s| endpoint.starts_with(s))
        {
            return Err(cx.invalid(
                Some(o.endpoint.span().start),
                format!(
                    "omni.endpoint \"{endpoint}\" must start with https://, http:// or grpc://"
                ),
            ));
        }
        let lan_ip = parse_ip(&cx, &o.lan_ip, "omni.lan_ip")?;
        let service_account_key = match (&o.service_account_key_env, &o.service_account_key_file) {
            (Some(_), Some(_)) => return Err(cx.invalid(
                Some(raw.omni.span().start),
                "set only one of omni.service_account_key_env and omni.service_account_key_file",
            )),
            (_, Some(f)) => SecretSource::File(resolve(f)),
            (Some(e), None) => SecretSource::Env(e.clone()),
            (None, None) => SecretSource::Env("OMNI_SERVICE_ACCOUNT_KEY".into()),
        };
        if o.provider_id.get_ref().trim().is_empty() {
            return Err(cx.invalid(
                Some(o.provider_id.span().start),
                "omni.provider_id is empty; set it to the provider's --id (e.g. \"proxmox\")",
            ));
        }
        let omni = Omni {
            endpoint: endpoint.clone(),
            omnictl: o
                .omnictl
                .as_deref()
                .map(program)
                .unwrap_or_else(|| PathBuf::from("omnictl")),
            provider_id: o.provider_id.get_ref().clone(),
            lan_ip,
            service_account_key,
            omniconfig: o.omniconfig.as_deref().map(resolve),
            provider_version: match &o.provider_version {
                None => None,
                Some(v) => Some(
                    crate::model::placement::ProviderVersion::parse(v.get_ref()).ok_or_else(|| {
                        cx.invalid(
                            Some(v.span().start),
                            format!(
                                "omni.provider_version \"{}\" is not a version like \"v0.1.4\" or \"0.2.0\"",
                                v.get_ref()
                            ),
                        )
                    })?,
                ),
            },
        };

        // --- proxmox
        let p = raw.proxmox.get_ref();
        if let Some(s) = &p.token_secret {
            return Err(cx.invalid(Some(s.span().start), "the Proxmox token secret must not be written in the lab file; set `token_secret_env` (an environment variable name) or `token_secret_file` instead"));
        }
        let token_secret = match (&p.token_secret_env, &p.token_secret_file) {
            (Some(_), Some(_)) => return Err(cx.invalid(Some(raw.proxmox.span().start), "set only one of proxmox.token_secret_env and proxmox.token_secret_file")),
            (Some(e), None) => SecretSource::Env(e.clone()),
            (None, Some(f)) => SecretSource::File(resolve(f)),
            (None, None) => return Err(cx.invalid(Some(raw.proxmox.span().start), "[proxmox] needs `token_secret_env` or `token_secret_file` to say where the API token secret is")),
        };
        let token_id = p.token_id.get_ref();
        if !token_id.contains('@') || !token_id.contains('!') {
            return Err(cx.invalid(Some(p.token_id.span().start), format!("proxmox.token_id \"{token_id}\" is not of the form USER@REALM!TOKENNAME (e.g. \"clusterproof@pve!preflight\")")));
        }
        let mut url = p.url.get_ref().trim_end_matches('/').to_string();
        if !url.starts_with("https://") {
            return Err(cx.invalid(Some(p.url.span().start), format!("proxmox.url \"{url}\" must start with https:// (the Proxmox API is served over TLS on port 8006)")));
        }
        if !url.ends_with("/api2/json") {
            url.push_str("/api2/json");
        }
        let tls = match &p.tls {
            None => Tls::Verify,
            Some(t) => {
                let r = t.get_ref();
                let set = usize::from(r.ca_file.is_some())
                    + usize::from(r.fingerprint.is_some())
                    + usize::from(r.insecure);
                if set > 1 {
                    return Err(cx.invalid(
                        Some(t.span().start),
                        "[proxmox.tls] takes only one of ca_file, fingerprint, insecure",
                    ));
                }
                if let Some(ca) = &r.ca_file {
                    Tls::CaFile(resolve(ca))
                } else if let Some(fp) = &r.fingerprint {
                    Tls::Fingerprint(parse_fingerprint(fp.get_ref()).ok_or_else(|| {
                        cx.invalid(Some(fp.span().start), "proxmox.tls.fingerprint must be a SHA-256 fingerprint: 32 hex bytes, optionally separated by `:` (as shown under Datacenter → Node → Certificates)")
                    })?)
                } else if r.insecure {
                    Tls::Insecure
                } else {
                    Tls::Verify
                }
            }
        };
        let proxmox = Proxmox {
            url,
            token_id: token_id.clone(),
            token_secret,
            tls,
        };

        // --- dns
        let default_host = endpoint
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split([':', '/'])
            .next()
            .unwrap_or("")
            .to_string();
        let dns = match &raw.dns {
            None => return Err(cx.invalid(None, "the lab file has no [dns] table; add `lan_resolvers = [\"<your LAN gateway IP>\"]` under [dns]")),
            Some(d) => {
                let d_ref = d.get_ref();
                let mut lan_resolvers = Vec::new();
                for r in d_ref.lan_resolvers.get_ref() {
                    lan_resolvers.push(r.parse::<IpAddr>().map_err(|_| cx.invalid(Some(d_ref.lan_resolvers.span().start), format!("dns.lan_resolvers: \"{r}\" is not an IP address")))?);
                }
                if lan_resolvers.is_empty() {
                    return Err(cx.invalid(Some(d_ref.lan_resolvers.span().start), "dns.lan_resolvers is empty; list the LAN resolver(s) the Proxmox hosts must use"));
                }
                let lan_view = match &d_ref.lan_view {
                    Some(v) => parse_sock(&cx, v, "dns.lan_view")?,
                    None => std::net::SocketAddr::new(lan_resolvers[0], 53),
                };
                let public_view = d_ref.public_view.as_ref().map(|v| parse_sock(&cx, v, "dns.public_view")).transpose()?;
                Dns { omni_hostname: d_ref.omni_hostname.clone().unwrap_or(default_host), lan_resolvers, lan_view, public_view }
            }
        };

        // --- resources
        for (v, key) in [
            (&raw.resources.ram_headroom_percent, "ram_headroom_percent"),
            (
                &raw.resources.storage_headroom_percent,
                "storage_headroom_percent",
            ),
        ] {
            if *v.get_ref() > 90 {
                return Err(cx.invalid(
                    Some(v.span().start),
                    format!(
                        "resources.{key} is {}%; use a value between 0 and 90",
                        v.get_ref()
                    ),
                ));
            }
        }
        let resources = Resources {
            ram_headroom_percent: *raw.resources.ram_headroom_percent.get_ref(),
            storage_headroom_percent: *raw.resources.storage_headroom_percent.get_ref(),
        };

        // --- cluster
        let c = raw.cluster.get_ref();
        let template = resolve(c.template.get_ref());
        if !template.is_file() {
            return Err(cx.invalid(
                Some(c.template.span().start),
                format!(
                    "cluster.template: no such file {} (paths are relative to the lab file)",
                    template.display()
                ),
            ));
        }
        let mut machine_classes = Vec::new();
        for mc in c.machine_classes.get_ref() {
            let p = resolve(mc.get_ref());
            if !p.is_file() {
                return Err(cx.invalid(Some(mc.span().start), format!("cluster.machine_classes: no such file {} (paths are relative to the lab file)", p.display())));
            }
            machine_classes.push(p);
        }
        if machine_classes.is_empty() {
            return Err(cx.invalid(
                Some(c.machine_classes.span().start),
                "cluster.machine_classes is empty; list the machine class files the template uses",
            ));
        }
        let provision_timeout = duration(
            &cx,
            c.provision_timeout.as_ref(),
            "cluster.provision_timeout",
            Duration::from_secs(600),
        )?;
        let cluster = Cluster {
            template,
            machine_classes,
            provision_timeout,
        };

        // --- cilium
        let mut values = default_cilium_values();
        for (k, v) in &raw.cilium.values {
            let text = match v.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => return Err(cx.invalid(Some(v.span().start), format!("cilium.values.\"{k}\" must be a string, number or boolean (it becomes `--set {k}=VALUE`)"))),
            };
            values.insert(k.clone(), text);
        }
        let cilium = Cilium {
            cli: raw
                .cilium
                .cli
                .as_deref()
                .map(program)
                .unwrap_or_else(|| PathBuf::from("cilium")),
            gateway_api_crds: raw
                .cilium
                .gateway_api_crds
                .clone()
                .map(|g| {
                    if g.contains("://") || Path::new(&g).is_absolute() {
                        g
                    } else {
                        resolve(&g).display().to_string()
                    }
                })
                .unwrap_or_else(|| DEFAULT_GATEWAY_API_CRDS.into()),
            values,
        };

        // --- chaos
        let ch = &raw.chaos;
        let target = match &ch.target {
            None => ChaosTarget::Worker,
            Some(t) => t
                .get_ref()
                .parse()
                .map_err(|e| cx.invalid(Some(t.span().start), format!("chaos.target: {e}")))?,
        };
        let mode = match &ch.mode {
            None => StopMode::Stop,
            Some(t) => t
                .get_ref()
                .parse()
                .map_err(|e| cx.invalid(Some(t.span().start), format!("chaos.mode: {e}")))?,
        };
        let ha_managed = match ch.ha_managed.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("refuse") => HaPolicy::Refuse,
            Some("disable") => HaPolicy::Disable,
            Some(other) => {
                return Err(cx.invalid(
                    ch.ha_managed.as_ref().map(|t| t.span().start),
                    format!("chaos.ha_managed \"{other}\" is not one of refuse, disable"),
                ));
            }
        };
        let d = Chaos::default();
        let dur = |v: &Option<Spanned<String>>, key: &str, default: Duration| {
            duration(&cx, v.as_ref(), key, default)
        };
        let percent = |v: &Option<Spanned<toml::Value>>, key: &str, default: f64| {
            let Some(v) = v else { return Ok(default) };
            let x = match v.get_ref() {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(i) => *i as f64,
                _ => f64::NAN,
            };
            if (0.0..=100.0).contains(&x) {
                Ok(x)
            } else {
                Err(cx.invalid(
                    Some(v.span().start),
                    format!("{key} must be a percentage between 0 and 100, e.g. 99.5"),
                ))
            }
        };
        let seed = match &ch.seed {
            None => None,
            Some(v) => match v.get_ref() {
                toml::Value::Integer(i) if *i >= 0 => Some(*i as u64),
                _ => {
                    return Err(cx.invalid(
                        Some(v.span().start),
                        "chaos.seed must be a non-negative integer (the victim choice it replays)",
                    ));
                }
            },
        };
        let chaos = Chaos {
            target,
            mode,
            ha_managed,
            detect_timeout: dur(&ch.detect_timeout, "chaos.detect_timeout", d.detect_timeout)?,
            reschedule_timeout: dur(
                &ch.reschedule_timeout,
                "chaos.reschedule_timeout",
                d.reschedule_timeout,
            )?,
            recovery_timeout: dur(
                &ch.recovery_timeout,
                "chaos.recovery_timeout",
                d.recovery_timeout,
            )?,
            restore_timeout: dur(
                &ch.restore_timeout,
                "chaos.restore_timeout",
                d.restore_timeout,
            )?,
            probe_interval: dur(&ch.probe_interval, "chaos.probe_interval", d.probe_interval)?,
            lock_lease: dur(&ch.lock_lease, "chaos.lock_lease", d.lock_lease)?,
            seed,
            slo: Slo {
                api_worker: percent(&ch.slo_api_worker, "chaos.slo_api_worker", d.slo.api_worker)?,
                api_control_plane: percent(
                    &ch.slo_api_control_plane,
                    "chaos.slo_api_control_plane",
                    d.slo.api_control_plane,
                )?,
                canary: percent(&ch.slo_canary, "chaos.slo_canary", d.slo.canary)?,
            },
        };
        if chaos.lock_lease < Duration::from_secs(1) {
            return Err(cx.invalid(
                ch.lock_lease.as_ref().map(|v| v.span().start),
                "chaos.lock_lease must be at least 1s (Lease durations are whole seconds)",
            ));
        }

        // --- kubernetes
        let k = &raw.kubernetes;
        let kubernetes = match (&k.kubeconfig, &k.context) {
            (Some(p), context) => {
                let path = resolve(p.get_ref());
                if !path.is_file() {
                    return Err(cx.invalid(Some(p.span().start), format!("kubernetes.kubeconfig: no such file {} (paths are relative to the lab file); remove the key to have clusterproof ask Omni for a service-account kubeconfig", path.display())));
                }
                Kubernetes::Kubeconfig {
                    path,
                    context: context.as_ref().map(|c| c.get_ref().clone()),
                }
            }
            (None, Some(c)) => return Err(cx.invalid(Some(c.span().start), "kubernetes.context needs kubernetes.kubeconfig: the kubeconfig Omni issues has one context")),
            (None, None) => Kubernetes::Omni,
        };

        // --- verify
        let v = &raw.verify;
        let non_empty =
            |o: &Option<Spanned<String>>, key: &str, default: &str| -> Result<String, LabError> {
                match o {
                    None => Ok(default.to_string()),
                    Some(s) if s.get_ref().trim().is_empty() => Err(cx.invalid(
                        Some(s.span().start),
                        format!("{key} is empty; remove it for the default \"{default}\""),
                    )),
                    Some(s) => Ok(s.get_ref().trim().to_string()),
                }
            };
        let d = Verify::default();
        let verify = Verify {
            timeout: duration(&cx, v.timeout.as_ref(), "verify.timeout", d.timeout)?,
            restart_window: duration(
                &cx,
                v.restart_window.as_ref(),
                "verify.restart_window",
                d.restart_window,
            )?,
            pending_bound: duration(
                &cx,
                v.pending_bound.as_ref(),
                "verify.pending_bound",
                d.pending_bound,
            )?,
            probe_image: non_empty(&v.probe_image, "verify.probe_image", &d.probe_image)?,
            probe_namespace: non_empty(
                &v.probe_namespace,
                "verify.probe_namespace",
                &d.probe_namespace,
            )?,
            cilium_connectivity_test: v.cilium_connectivity_test,
        };

        let name = raw.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let state_dir = match &raw.state_dir {
            Some(d) => resolve(d),
            None => default_state_dir(&name),
        };

        Ok(LabFile {
            path: path.to_path_buf(),
            name,
            kubernetes,
            verify,
            state_dir,
            omni,
            proxmox,
            dns,
            resources,
            cluster,
            cilium,
            chaos,
        })
    }
}

struct Cx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Cx<'_> {
    fn invalid(&self, offset: Option<usize>, message: impl Into<String>) -> LabError {
        let file = std::sync::Arc::new(self.path.to_path_buf());
        let location = match offset {
            Some(o) => {
                let (line, col) = line_col(self.text, o);
                Location::new(&file, line, col)
            }
            None => Location::new(&file, 0, 0),
        };
        LabError::Invalid {
            location,
            message: message.into(),
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    (line, col)
}

fn parse_ip(cx: &Cx, v: &Spanned<String>, key: &str) -> Result<IpAddr, LabError> {
    v.get_ref().parse().map_err(|_| {
        cx.invalid(
            Some(v.span().start),
            format!("{key}: \"{}\" is not an IP address", v.get_ref()),
        )
    })
}

fn parse_sock(cx: &Cx, v: &Spanned<String>, key: &str) -> Result<std::net::SocketAddr, LabError> {
    let s = v.get_ref();
    s.parse()
        .or_else(|_| {
            s.parse::<IpAddr>()
                .map(|ip| std::net::SocketAddr::new(ip, 53))
        })
        .map_err(|_| {
            cx.invalid(
                Some(v.span().start),
                format!("{key}: \"{s}\" is not IP or IP:PORT"),
            )
        })
}

fn duration(
    cx: &Cx,
    v: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, LabError> {
    match v {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v.get_ref()).map_err(|e| {
            cx.invalid(
                Some(v.span().start),
                format!(
                    "{key}: \"{}\" is not a duration ({e}); write e.g. \"10m\" or \"1m 30s\"",
                    v.get_ref()
                ),
            )
        }),
    }
}

fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `$XDG_STATE_HOME/clusterproof/<lab>` (default `~/.local/state/clusterproof/<lab>`), or
/// under the system's temporary directory when there is no home.
pub fn default_state_dir(lab: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = lab
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join("clusterproof")
        .join(if safe.is_empty() { "lab".into() } else { safe })
}

/// Parse a duration like "10m" or "1m 30s" (the lab file's syntax), for the CLI too.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("\"{s}\" is not a duration ({e}); write e.g. \"10m\" or \"1m 30s\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid lab; `extra` replaces the `[proxmox]` token-secret line.
    fn lab(dir: &Path, secret_line: &str, tls: &str) -> String {
        std::fs::write(dir.join("t.yaml"), "kind: Cluster\n").unwrap();
        std::fs::write(dir.join("c.yaml"), "metadata: {}\n").unwrap();
        format!(
            "[omni]\nendpoint = \"https://omni.example.lan\"\nprovider_id = \"p\"\nlan_ip = \"10.0.0.2\"\n\n\
             [proxmox]\nurl = \"https://pve:8006\"\ntoken_id = \"a@pve!t\"\n{secret_line}\n{tls}\n\
             [dns]\nlan_resolvers = [\"10.0.0.1\"]\n\n\
             [cluster]\ntemplate = \"t.yaml\"\nmachine_classes = [\"c.yaml\"]\n"
        )
    }

    fn parse(text: &str, dir: &Path) -> Result<LabFile, LabError> {
        LabFile::parse(&dir.join("lab.toml"), text)
    }

    #[test]
    fn minimal_lab_gets_documented_defaults() {
        let d = tempfile::tempdir().unwrap();
        let l = parse(&lab(d.path(), "token_secret_env = \"PVE\"", ""), d.path()).unwrap();
        assert_eq!(l.proxmox.url, "https://pve:8006/api2/json");
        assert_eq!(l.proxmox.tls, Tls::Verify);
        assert_eq!(l.proxmox.token_secret, SecretSource::Env("PVE".into()));
        assert_eq!(
            l.omni.service_account_key,
            SecretSource::Env("OMNI_SERVICE_ACCOUNT_KEY".into())
        );
        assert_eq!(l.dns.omni_hostname, "omni.example.lan");
        assert_eq!(l.dns.lan_view, "10.0.0.1:53".parse().unwrap());
        assert_eq!(l.cluster.provision_timeout, Duration::from_secs(600));
        assert_eq!(l.cluster.template, d.path().join("t.yaml"));
        assert_eq!(l.cilium.values.get("MTU").map(String::as_str), Some("1450"));
        assert_eq!(
            l.cilium.values.get("k8sServicePort").map(String::as_str),
            Some("7445")
        );
        assert_eq!(l.chaos.target, ChaosTarget::Worker);
        assert_eq!(l.resources.ram_headroom_percent, 10);
    }

    #[test]
    fn a_secret_in_the_lab_file_is_refused_without_echoing_it() {
        let d = tempfile::tempdir().unwrap();
        let e = parse(
            &lab(d.path(), "token_secret = \"hunter2-secret\"", ""),
            d.path(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("lab.toml:9:16") && msg.contains("token_secret_env"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let d = tempfile::tempdir().unwrap();
        let text = lab(
            d.path(),
            "token_secret_env = \"PVE\"\nverify_ssl = false",
            "",
        );
        let msg = parse(&text, d.path()).unwrap_err().to_string();
        assert!(
            msg.contains("lab.toml:10:1")
                && msg.contains("verify_ssl")
                && msg.contains("docs/lab-file.md"),
            "{msg}"
        );
    }

    #[test]
    fn tls_fingerprint_pin_is_parsed_and_one_mode_only() {
        let d = tempfile::tempdir().unwrap();
        let fp = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let l = parse(
            &lab(
                d.path(),
                "token_secret_env = \"PVE\"",
                &format!("[proxmox.tls]\nfingerprint = \"{fp}\"\n"),
            ),
            d.path(),
        )
        .unwrap();
        let Tls::Fingerprint(bytes) = l.proxmox.tls else {
            panic!("not a pin")
        };
        assert_eq!(bytes[31], 31);
        let both = lab(
            d.path(),
            "token_secret_env = \"PVE\"",
            &format!("[proxmox.tls]\nfingerprint = \"{fp}\"\ninsecure = true\n"),
        );
        assert!(
            parse(&both, d.path())
                .unwrap_err()
                .to_string()
                .contains("only one of")
        );
        let short = lab(
            d.path(),
            "token_secret_env = \"PVE\"",
            "[proxmox.tls]\nfingerprint = \"AB:CD\"\n",
        );
        assert!(
            parse(&short, d.path())
                .unwrap_err()
                .to_string()
                .contains("32 hex bytes")
        );
    }

    #[test]
    fn missing_template_file_is_reported_at_its_key() {
        let d = tempfile::tempdir().unwrap();
        let text =
            lab(d.path(), "token_secret_env = \"PVE\"", "").replace("\"t.yaml\"", "\"nope.yaml\"");
        let msg = parse(&text, d.path()).unwrap_err().to_string();
        assert!(
            msg.contains("cluster.template: no such file") && msg.contains("lab.toml:15:12"),
            "{msg}"
        );
    }
}

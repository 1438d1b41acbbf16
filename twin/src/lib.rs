//! The twin: a built-in, faithful emulation of the seed lab (DESIGN §5), served on loopback.
//! With no `--lab`, clusterproof's run commands start it in-process and run against it.
//!
//! Built so far: the Proxmox VE API ([`proxmox`]) and split-horizon DNS ([`dns`]), with the
//! named [`faults`] that the preflight checks must catch. Omni, its `omnictl` shim,
//! Kubernetes and Cilium come with the provisioning work; the twin's lab file names an Omni
//! endpoint on loopback that nothing contacts yet.

pub mod accounting;
pub mod bundle;
pub mod cilium;
pub mod dns;
pub mod faults;
pub mod kube;
pub mod omni;
pub mod power;
pub mod provider;
pub mod proxmox;
pub mod timing;
pub mod world;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use faults::Fault;
pub use timing::Timing;

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("twin: cannot {0}: {1}")]
    Io(String, std::io::Error),
    #[error("twin: TLS setup failed: {0}")]
    Tls(String),
    #[error("twin: bad inventory: {0}")]
    Inventory(String),
}

/// How to start the twin.
#[derive(Debug, Clone)]
pub struct TwinOptions {
    pub faults: Vec<Fault>,
    /// Multiplies every emulated duration; 0.01 turns Proxmox's 3 s 401 delay into 30 ms.
    pub time_scale: f64,
    /// The clusterproof binary: the twin's lab runs `<exe> twin cilium …` (and `… omnictl …`)
    /// through wrapper scripts as its `cilium` (and `omnictl`) CLI. `None`: no CLIs.
    pub exe: Option<PathBuf>,
    /// How many control planes and workers the twin's template asks for. The seed's 3 + 2
    /// keep the bundled inventory (three 64 GiB hosts); any other size gets a generated
    /// template and as many 512 GiB hosts as its VMs need ([`TwinSize::hosts`]).
    pub size: TwinSize,
    /// Every emulated duration in real seconds (each scaled by `time_scale`).
    pub timing: Timing,
    /// Whether the VMs the provider creates are HA-managed (an HA resource each, state
    /// `started`); the `victim-ha-managed` fault sets it too.
    pub ha_managed: bool,
    /// Which provider version's placement the twin's provider follows (default v0.2.0's:
    /// a machine set spreads); its lab file names that version.
    pub placement: proxmox::Placement,
}

impl Default for TwinOptions {
    fn default() -> Self {
        TwinOptions {
            faults: Vec::new(),
            time_scale: 0.01,
            exe: None,
            size: TwinSize::SEED,
            timing: Timing::default(),
            ha_managed: false,
            placement: proxmox::Placement::default(),
        }
    }
}

/// The twin cluster's size: ControlPlane and Workers sizes of its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinSize {
    pub control_planes: u32,
    pub workers: u32,
}

/// Memory of the seed's machine classes (`fixtures/seed/machine-classes/*.yaml`,
/// `providerdata.memory` in MiB), and their boot disks (GiB).
const CONTROL_PLANE_MIB: u64 = 8192;
const WORKER_MIB: u64 = 16384;
const WORKER_DISK_GIB: u64 = 100;
/// A generated host: a 512 GiB Proxmox node.
const SIZED_HOST_MEMORY: u64 = 512 << 30;

impl TwinSize {
    /// The seed lab's 3 control planes and 2 workers.
    pub const SEED: TwinSize = TwinSize {
        control_planes: 3,
        workers: 2,
    };

    /// `3+2`, `5+195`, or a total `200` (3 control planes, the rest workers; 1 control plane
    /// below 3 nodes).
    pub fn parse(s: &str) -> Result<TwinSize, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{t:?} is not a number of nodes"))
        };
        let size = match s.split_once('+') {
            Some((cp, w)) => TwinSize {
                control_planes: num(cp)?,
                workers: num(w)?,
            },
            None => {
                let total = num(s)?;
                let cp = if total >= 3 { 3 } else { 1 };
                TwinSize {
                    control_planes: cp,
                    workers: total.saturating_sub(cp),
                }
            }
        };
        if size.control_planes == 0 {
            return Err(format!("{s:?}: a cluster needs at least one control plane"));
        }
        Ok(size)
    }

    pub fn nodes(self) -> u32 {
        self.control_planes + self.workers
    }

    /// Hosts a sized twin gets: enough 512 GiB hosts for every VM with a quarter to spare
    /// (the provider spreads by free memory, so the last host is never filled), at least 3.
    pub fn hosts(self) -> usize {
        let need = u64::from(self.control_planes) * CONTROL_PLANE_MIB
            + u64::from(self.workers) * WORKER_MIB;
        let per_host = (SIZED_HOST_MEMORY >> 20) * 7 / 10;
        (need.saturating_mul(5) / 4).div_ceil(per_host).max(3) as usize
    }

    /// The bundled inventory grown for this size; `None` for the seed size.
    fn inventory(self) -> Option<proxmox::HostSizing> {
        (self != TwinSize::SEED).then(|| proxmox::HostSizing {
            hosts: self.hosts(),
            host_memory: SIZED_HOST_MEMORY,
            shared_storage: ((u64::from(self.workers) * WORKER_DISK_GIB) << 30) * 3 / 2,
        })
    }
}

impl std::fmt::Display for TwinSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}", self.control_planes, self.workers)
    }
}

/// The seed template with its ControlPlane and Workers sizes replaced.
fn sized_template(seed: &str, size: TwinSize) -> String {
    let mut out = String::with_capacity(seed.len());
    let mut kind = "";
    for line in seed.split_inclusive('\n') {
        let t = line.trim();
        if let Some(k) = t.strip_prefix("kind:") {
            kind = match k.trim() {
                "ControlPlane" => "cp",
                "Workers" => "w",
                _ => "",
            };
        }
        match (kind, t.strip_prefix("size:")) {
            ("cp", Some(_)) => {
                out.push_str(&line.replace(t, &format!("size: {}", size.control_planes)))
            }
            ("w", Some(_)) => out.push_str(&line.replace(t, &format!("size: {}", size.workers))),
            _ => out.push_str(line),
        }
    }
    out
}

/// Addresses of the twin's world. Omni's LAN and public (Tailscale) addresses are data in
/// DNS answers only; nothing connects to them.
pub const OMNI_HOSTNAME: &str = "omni.spaceships.work";
pub const OMNI_LAN_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 20);
pub const OMNI_PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 20);
pub const LAN_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 53, 1);
pub const PUBLIC_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 53, 2);
const TOKEN_ID: &str = "clusterproof@pve!twin";
/// The seed lab's infra provider id, and the service account clusterproof uses in Omni.
pub const PROVIDER_ID: &str = "matrix-cluster";
const ACCOUNT: &str = "clusterproof";

/// A running twin and the lab file that points at it.
pub struct Twin {
    pub proxmox: Arc<proxmox::ProxmoxTwin>,
    pub dns: dns::DnsViews,
    pub kube: Arc<kube::KubeTwin>,
    pub omni: Arc<omni::OmniTwin>,
    pub faults: Vec<Fault>,
    /// The CNI physics and the infra provider.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
    lab: PathBuf,
}

impl Twin {
    pub async fn start(opts: TwinOptions) -> Result<Twin, TwinError> {
        let secret = token_secret();
        let proxmox = Arc::new(
            proxmox::ProxmoxTwin::start(proxmox::ProxmoxSpec {
                inventory: match opts.size.inventory() {
                    Some(sizing) => proxmox::InventorySource::Sized(sizing),
                    None => proxmox::default_inventory(),
                },
                token_id: TOKEN_ID.into(),
                token_secret: secret.clone(),
                faults: opts.faults.clone(),
                time_scale: opts.time_scale,
                timing: opts.timing.clone(),
                ha_managed: opts.ha_managed,
                placement: opts.placement,
            })
            .await?,
        );
        let lan_answer = if opts.faults.contains(&Fault::DnsLanWrongAnswer) {
            OMNI_PUBLIC_IP
        } else {
            OMNI_LAN_IP
        };
        let dns = dns::DnsViews::start(dns::DnsViewsSpec {
            hostname: OMNI_HOSTNAME.into(),
            lan_bind: IpAddr::V4(LAN_DNS),
            public_bind: IpAddr::V4(PUBLIC_DNS),
            port: 0,
            lan_answer: IpAddr::V4(lan_answer),
            public_answer: IpAddr::V4(OMNI_PUBLIC_IP),
        })
        .await
        .map_err(|e| TwinError::Io("start the DNS views".into(), e))?;
        let kube = Arc::new(
            kube::KubeTwin::start(kube::KubeSpec {
                token: token_secret(),
                time_scale: opts.time_scale,
                timing: opts.timing.clone(),
            })
            .await?,
        );
        for k in opts.faults.iter().filter_map(|f| f.kube()) {
            kube.set_fault(k, true);
        }
        let cni = tokio::spawn(provider::cni_physics(Arc::clone(&kube)));
        let omni_faults: Vec<omni::OmniFault> = opts
            .faults
            .iter()
            .filter_map(|f| match f {
                Fault::ProviderDisconnected => Some(omni::OmniFault::ProviderDisconnected),
                Fault::OmniAuthExpired => Some(omni::OmniFault::AuthExpired),
                _ => None,
            })
            .collect();
        let omni = Arc::new(
            omni::OmniTwin::start(omni::OmniSpec {
                provider_id: PROVIDER_ID.into(),
                account: ACCOUNT.into(),
                faults: opts.faults.clone(),
                omni_faults,
            })
            .await?,
        );
        {
            let kube = Arc::clone(&kube);
            omni.set_kubeconfig_provider(Box::new(move |cluster, user| {
                Some(kube.kubeconfig_yaml(&format!("{ACCOUNT}-{cluster}"), user))
            }));
        }
        let world = Arc::new(world::World {
            omni: Arc::clone(&omni),
            proxmox: Arc::clone(&proxmox),
            kube: Arc::clone(&kube),
            resolvers: provider::Resolvers {
                lan: dns.lan_addr(),
                public: dns.public_addr(),
            },
            provider_id: PROVIDER_ID.into(),
            connected: !opts.faults.contains(&Fault::ProviderDisconnected),
            time_scale: opts.time_scale,
            timing: opts.timing.clone(),
            faults: opts.faults.clone(),
        });
        let power = tokio::spawn(Arc::clone(&world).run_power());
        let provider = tokio::spawn(world.run());
        let dir = tempfile::Builder::new()
            .prefix("clusterproof-twin-")
            .tempdir()
            .map_err(|e| TwinError::Io("create the twin's directory".into(), e))?;
        // The seed lab's template and classes, and the CRDs, as files its clients read.
        let fixtures = bundle::write(dir.path())
            .map_err(|e| TwinError::Io("write the bundled fixtures".into(), e))?;
        let secret_file = dir.path().join("proxmox-token-secret");
        write_private(&secret_file, &secret)
            .map_err(|e| TwinError::Io("write the token secret".into(), e))?;
        let key_file = dir.path().join("omni-service-account-key");
        write_private(&key_file, &omni.service_account_key())
            .map_err(|e| TwinError::Io("write the Omni key".into(), e))?;
        let (omnictl, cilium) = match &opts.exe {
            Some(exe) => (
                wrapper(dir.path(), "omnictl", exe, &["twin", "omnictl"])
                    .map_err(|e| TwinError::Io("write the omnictl wrapper".into(), e))?,
                wrapper(dir.path(), "cilium", exe, &cilium_prefix(&opts))
                    .map_err(|e| TwinError::Io("write the cilium wrapper".into(), e))?,
            ),
            None => (PathBuf::from("omnictl"), PathBuf::from("cilium")),
        };
        // A sized twin's template: the seed's with the sizes asked for.
        let mut template = fixtures.seed("clusters/talos-prod-01.yaml");
        if opts.size != TwinSize::SEED {
            let seed = std::fs::read_to_string(&template)
                .map_err(|e| TwinError::Io("read the bundled template".into(), e))?;
            let sized = dir.path().join("talos-prod-01.yaml");
            std::fs::write(&sized, sized_template(&seed, opts.size))
                .map_err(|e| TwinError::Io("write the sized template".into(), e))?;
            template = sized;
        }
        let lab = dir.path().join("lab.toml");
        let files = LabFiles {
            template: &template,
            fixtures: &fixtures,
            secret: &secret_file,
            key: &key_file,
            omnictl: &omnictl,
            cilium: &cilium,
        };
        let text = lab_file(&proxmox, &dns, &omni, &files, &opts);
        std::fs::write(&lab, text)
            .map_err(|e| TwinError::Io("write the twin's lab file".into(), e))?;
        Ok(Twin {
            proxmox,
            dns,
            kube,
            omni,
            faults: opts.faults,
            tasks: vec![cni, provider, power],
            dir,
            lab,
        })
    }

    /// The lab file describing this twin.
    pub fn lab_path(&self) -> &Path {
        &self.lab
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.dns.shutdown().await;
        if let Ok(p) = Arc::try_unwrap(self.proxmox) {
            p.shutdown().await;
        }
        if let Ok(k) = Arc::try_unwrap(self.kube) {
            k.shutdown().await;
        }
        if let Ok(o) = Arc::try_unwrap(self.omni) {
            o.shutdown().await;
        }
    }
}

/// `twin cilium` with the shim's options (see [`cilium`]): the twin's time scale, and the
/// `cilium-mtu-autodetect` fault.
fn cilium_prefix(opts: &TwinOptions) -> Vec<String> {
    let mut prefix = vec![
        "twin".to_string(),
        "cilium".to_string(),
        format!("--twin-time-scale={}", opts.time_scale),
    ];
    if opts.faults.contains(&Fault::CiliumMtuAutodetect) {
        prefix.push(format!("--twin-fault={}", Fault::CiliumMtuAutodetect));
    }
    prefix
}

/// A shell script `<dir>/<name>` that runs `exe prefix… "$@"`.
fn wrapper(
    dir: &Path,
    name: &str,
    exe: &Path,
    prefix: &[impl AsRef<str>],
) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let args: Vec<String> = prefix.iter().map(|a| quote(a.as_ref())).collect();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nexec {} {} \"$@\"\n",
            quote(&exe.display().to_string()),
            args.join(" ")
        ),
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(path)
}

/// Files the twin's lab file names.
struct LabFiles<'a> {
    template: &'a Path,
    fixtures: &'a bundle::Fixtures,
    secret: &'a Path,
    key: &'a Path,
    omnictl: &'a Path,
    cilium: &'a Path,
}

fn lab_file(
    p: &proxmox::ProxmoxTwin,
    d: &dns::DnsViews,
    o: &omni::OmniTwin,
    f: &LabFiles,
    opts: &TwinOptions,
) -> String {
    let (time_scale, size, timing, placement) =
        (opts.time_scale, opts.size, &opts.timing, opts.placement);
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let crds = f.fixtures.twin("gateway-api/standard-install.yaml");
    // The plan's 10 minutes, at the twin's pace — and no less than this machine needs to run
    // the provider for every VM of a large twin (each VM's steps are real work here).
    let budget = format!(
        "{}ms",
        ((600.0 * time_scale * 1000.0) as u64).max(2000 + 300 * u64::from(size.nodes()))
    );
    // The harness's own defaults, at the twin's pace (the harness never knows the scale).
    let scaled = |secs: f64, floor_ms: u64| {
        format!("{}ms", ((secs * time_scale * 1000.0) as u64).max(floor_ms))
    };
    let verify_timeout = scaled(300.0, 3000);
    let restart_window = scaled(30.0, 500);
    let pending_bound = scaled(300.0, 3000);
    // Chaos bounds from the twin's own timing: a doubled grace period gives a longer
    // detection bound. (Omni's link-down detection, `timing.omni_link_down_after`, is
    // longer than detect_timeout with the real defaults; reschedule_timeout covers it.)
    let grace = timing.node_monitor_grace;
    let detect_timeout = scaled(2.0 * grace + 20.0, 1000);
    // Twice the grace and the toleration: a loaded 2-core machine slips, and a bound that is
    // not needed costs nothing.
    let reschedule_timeout = scaled(2.0 * (grace + timing.default_toleration) + 120.0, 3000);
    let recovery_timeout = scaled(600.0, 5000);
    let restore_timeout = scaled(300.0, 3000);
    format!(
        r#"# Lab file of the built-in twin (written at start; every key: docs/lab-file.md).
name = "twin"
# The chaos journal and the private kubeconfig live here, beside this file.
state_dir = "state"

[omni]
endpoint = "{endpoint}"
omnictl = {omnictl}
provider_id = "{provider}"
lan_ip = "{omni_lan}"
# The version whose placement the twin's provider follows (v0.2.0: a machine set spreads;
# v0.1.4: it stacks on one host); the real provider leaves its status's version empty.
provider_version = "{provider_version}"
service_account_key_file = {key}

[proxmox]
url = "{url}"
token_id = "{token_id}"
token_secret_file = {secret}

[proxmox.tls]
fingerprint = "{fp}"

[dns]
omni_hostname = "{host}"
lan_resolvers = ["{lan_ip}"]
lan_view = "{lan}"
public_view = "{public}"

[resources]
ram_headroom_percent = 10
storage_headroom_percent = 10

[cluster]
template = {template}
machine_classes = [{cp}, {w}]
# The plan's 10 minutes, scaled to the twin's time.
provision_timeout = "{budget}"

[cilium]
cli = {cilium}
gateway_api_crds = {crds}

# How long each Definition-of-Done check waits, at the twin's pace.
[verify]
timeout = "{verify_timeout}"
restart_window = "{restart_window}"
pending_bound = "{pending_bound}"

# The chaos experiment's bounds, from the twin's timing at its pace.
[chaos]
detect_timeout = "{detect_timeout}"
reschedule_timeout = "{reschedule_timeout}"
recovery_timeout = "{recovery_timeout}"
restore_timeout = "{restore_timeout}"
probe_interval = "50ms"
# Lease durations are whole seconds: the shortest lock a killed run can leave behind.
lock_lease = "1000ms"
"#,
        endpoint = o.endpoint(),
        provider_version = placement.version(),
        omnictl = q(f.omnictl),
        provider = PROVIDER_ID,
        omni_lan = OMNI_LAN_IP,
        key = q(f.key),
        url = p.url(),
        token_id = TOKEN_ID,
        secret = q(f.secret),
        fp = p.fingerprint(),
        host = OMNI_HOSTNAME,
        lan_ip = d.lan_addr().ip(),
        lan = d.lan_addr(),
        public = d.public_addr(),
        template = q(f.template),
        cp = q(&f.fixtures.seed("machine-classes/matrix-control-plane.yaml")),
        w = q(&f.fixtures.seed("machine-classes/matrix-worker.yaml")),
        budget = budget,
        cilium = q(f.cilium),
        crds = q(&crds.canonicalize().unwrap_or(crds.clone())),
        verify_timeout = verify_timeout,
        restart_window = restart_window,
        pending_bound = pending_bound,
        detect_timeout = detect_timeout,
        reschedule_timeout = reschedule_timeout,
        recovery_timeout = recovery_timeout,
        restore_timeout = restore_timeout,
    )
}

/// A fresh random-enough token secret (UUID-shaped, like Proxmox's).
fn token_secret() -> String {
    use sha2::{Digest, Sha256};
    let seed = format!(
        "{:?}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    );
    let h = Sha256::digest(seed.as_bytes());
    let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?.write_all(content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_cp_plus_workers_or_a_total() {
        assert_eq!(TwinSize::parse("3+2"), Ok(TwinSize::SEED));
        assert_eq!(
            TwinSize::parse("200"),
            Ok(TwinSize {
                control_planes: 3,
                workers: 197
            })
        );
        assert_eq!(
            TwinSize::parse("1"),
            Ok(TwinSize {
                control_planes: 1,
                workers: 0
            })
        );
        assert!(
            TwinSize::parse("0+5")
                .unwrap_err()
                .contains("control plane")
        );
        assert!(
            TwinSize::parse("many")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn a_sized_template_changes_only_the_two_sizes() {
        let seed = "kind: Cluster\nname: c\n---\nkind: ControlPlane\nmachineClass:\n  name: cp\n  size: 3\n---\nkind: Workers\nmachineClass:\n  name: w\n  size: 2\n";
        let sized = sized_template(
            seed,
            TwinSize {
                control_planes: 5,
                workers: 195,
            },
        );
        assert_eq!(
            sized,
            seed.replace("size: 3", "size: 5")
                .replace("size: 2", "size: 195")
        );
    }

    #[test]
    fn hosts_grow_with_the_cluster() {
        assert_eq!(TwinSize::parse("5").unwrap().hosts(), 3);
        let h200 = TwinSize::parse("200").unwrap().hosts();
        let h500 = TwinSize::parse("500").unwrap().hosts();
        assert!(h200 > 3 && h500 > h200, "{h200} {h500}");
        // Every VM fits in 70 % of the hosts' memory.
        let need = (3 * CONTROL_PLANE_MIB + 497 * WORKER_MIB) << 20;
        assert!(h500 as u64 * SIZED_HOST_MEMORY * 7 / 10 >= need);
    }
}

//! The twin's Omni (DESIGN §5, "Twin, Omni part"): a resource store with Omni's types,
//! versions, finalizers and change feed, the few Omni controllers the lab needs (template
//! resources → MachineRequestSets → MachineRequests), and a private HTTP/JSON endpoint on
//! loopback that the `omnictl-twin` shim talks to, so that clusterproof's Omni driver runs
//! the shim exactly like the real `omnictl` (`shared/reference/omni.md`).
//!
//! - [`OmniTwin`]: start, endpoint, service-account key, store access for the rest of the
//!   twin (the infra-provider emulation reacts to MachineRequests and writes
//!   MachineRequestStatus, Link, Machine, MachineStatus, ClusterMachine*, ClusterStatus, …).
//! - [`shim`]: the `omnictl` stand-in (binary `omnictl-twin`).
//! - Output formats: [`format`] (§3), errors (§4), types and aliases [`types`] (§5),
//!   `apply` validation (§6), templates (§7), kubeconfig (§8).

pub mod cli;
mod format;
pub mod resource;
mod schema;
mod server;
pub mod shim;
mod store;
mod template;
pub mod types;
pub mod value;
pub mod wire;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio::sync::{broadcast, watch};

pub use resource::{Change, EventKind, Metadata, Phase, Resource, Selector};
pub use store::{
    LABEL_CLUSTER, LABEL_MACHINE_SET, LABEL_PROVIDER, LABEL_REQUEST_SET, LABEL_ROLE_CONTROLPLANE,
    LABEL_ROLE_WORKER,
};

use crate::TwinError;
use crate::faults::Fault;

/// The providerdata JSON schema the twin's provider publishes (see the fixture's README).
pub const PROVIDER_SCHEMA: &str =
    include_str!("../../../fixtures/twin/omni/proxmox-providerdata-schema.json");

/// The Omni version `SysVersion` reports.
pub const BACKEND_VERSION: &str = "1.10.4";

/// Faults of the Omni part (merged into [`crate::faults::Fault`] later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OmniFault {
    /// The infra provider stopped heartbeating: InfraProviderCombinedStatus says
    /// `health.connected: false` (omni.md §5.4).
    ProviderDisconnected,
    /// The service-account key expired: every command fails with
    /// `rpc error: code = Unauthenticated desc = invalid signature` (omni.md §2, §4).
    AuthExpired,
}

impl OmniFault {
    pub const ALL: [OmniFault; 2] = [OmniFault::ProviderDisconnected, OmniFault::AuthExpired];

    pub fn name(self) -> &'static str {
        match self {
            OmniFault::ProviderDisconnected => "provider-disconnected",
            OmniFault::AuthExpired => "omni-auth-expired",
        }
    }
}

impl fmt::Display for OmniFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OmniFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OmniFault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown Omni fault \"{s}\""))
    }
}

/// How to start the twin's Omni.
#[derive(Debug, Clone)]
pub struct OmniSpec {
    /// The infra provider id (`matrix-cluster` in the seed lab).
    pub provider_id: String,
    /// The service account's identity (the key's `name`).
    pub account: String,
    pub faults: Vec<Fault>,
    pub omni_faults: Vec<OmniFault>,
}

/// Produces a kubeconfig for `(cluster, user)`; `None` when the cluster has no Kubernetes.
pub type KubeconfigProvider = Box<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

type SharedProvider = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub account: String,
    pub provider_id: String,
    pub faults: Mutex<BTreeSet<OmniFault>>,
    pub kubeconfig: Mutex<Option<SharedProvider>>,
    pub stopped: watch::Receiver<bool>,
}

impl Shared {
    pub fn store(&self) -> std::sync::MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn has_fault(&self, f: OmniFault) -> bool {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&f)
    }

    pub fn kubeconfig_provider(&self) -> Option<SharedProvider> {
        self.kubeconfig
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running Omni emulator.
pub struct OmniTwin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl OmniTwin {
    /// Start the endpoint on `127.0.0.1:0` and seed SysVersion and the infra provider's
    /// resources (InfraProvider, InfraProviderStatus with the providerdata schema,
    /// InfraProviderHealthStatus, InfraProviderCombinedStatus).
    pub async fn start(spec: OmniSpec) -> Result<OmniTwin, TwinError> {
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new()),
            account: spec.account.clone(),
            provider_id: spec.provider_id.clone(),
            faults: Mutex::new(spec.omni_faults.iter().copied().collect()),
            kubeconfig: Mutex::new(None),
            stopped: stopped.clone(),
        });
        seed(&shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TwinError::Io("bind the Omni twin".into(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TwinError::Io("read the Omni twin address".into(), e))?;
        let serve = tokio::spawn(server::serve(
            listener,
            Arc::clone(&shared),
            stopped.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&shared), stopped));
        tracing::info!(%addr, provider = %spec.provider_id, "omni twin listening");
        Ok(OmniTwin {
            addr,
            shared,
            stop,
            tasks: vec![serve, heartbeat],
        })
    }

    /// What to put in `OMNI_ENDPOINT` (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn provider_id(&self) -> &str {
        &self.shared.provider_id
    }

    /// A service-account key for the shim: base64 of `{"name", "pgp_key"}` (omni.md §2).
    /// The twin checks the identity only; the PGP block is a placeholder.
    pub fn service_account_key(&self) -> String {
        service_account_key(&self.shared.account)
    }

    /// Every change to the store, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.store().subscribe()
    }

    /// One resource; `kind` is a full type or an alias (`machinerequest`).
    pub fn get(&self, kind: &str, namespace: &str, id: &str) -> Option<Resource> {
        self.shared
            .store()
            .get(&types::full_type(kind), namespace, id)
            .cloned()
    }

    /// Every resource of a type, in all namespaces, by namespace and id.
    pub fn list(&self, kind: &str) -> Vec<Resource> {
        self.shared.store().list(&types::full_type(kind))
    }

    /// Create or update (version, created and updated are the store's; a resource being
    /// torn down stays torn down, and is destroyed once its finalizers are gone). Returns
    /// what is stored.
    pub fn put(&self, resource: Resource) -> Resource {
        self.shared.store().put(resource)
    }

    /// Remove a resource now, whatever its finalizers.
    pub fn delete(&self, kind: &str, namespace: &str, id: &str) -> Option<Resource> {
        self.shared
            .store()
            .destroy(&types::full_type(kind), namespace, id)
    }

    /// Start tearing a resource down (COSI semantics: phase `tearingDown`, destroyed once
    /// its finalizers are removed).
    pub fn teardown(&self, kind: &str, namespace: &str, id: &str) -> Option<Resource> {
        self.shared
            .store()
            .teardown(&types::full_type(kind), namespace, id)
    }

    /// Where `omnictl kubeconfig` content comes from.
    pub fn set_kubeconfig_provider(&self, provider: KubeconfigProvider) {
        *self
            .shared
            .kubeconfig
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::from(provider));
    }

    /// Switch a fault on or off while running.
    pub fn set_fault(&self, fault: OmniFault, on: bool) {
        {
            let mut f = self.shared.faults.lock().unwrap_or_else(|p| p.into_inner());
            if on {
                f.insert(fault);
            } else {
                f.remove(&fault);
            }
        }
        if fault == OmniFault::ProviderDisconnected {
            write_provider_health(&self.shared);
        }
    }

    pub fn faults(&self) -> Vec<OmniFault> {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The key the shim accepts for `account`.
pub fn service_account_key(account: &str) -> String {
    let armored = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxVgEZ2R3dBYJKwYBBAHaRw8BAQdAY2x1c3RlcnByb29mLXR3aW4tcGxhY2Vob2xkZXI=\n=twin\n-----END PGP PRIVATE KEY BLOCK-----\n";
    let json = json!({"name": account, "pgp_key": armored}).to_string();
    base64::engine::general_purpose::STANDARD.encode(json)
}

const ICON_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#e57000\"/></svg>";

fn seed(sh: &Shared) {
    let icon = base64::engine::general_purpose::STANDARD.encode(ICON_SVG);
    let id = sh.provider_id.clone();
    let mut st = sh.store();
    st.put(Resource::new(
        types::t::SYS_VERSION,
        types::NS_EPHEMERAL,
        "current",
        json!({
            "backendversion": BACKEND_VERSION,
            "instancename": "twin",
            "backendapiversion": 1,
        }),
    ));
    st.put(
        Resource::new(
            types::t::INFRA_PROVIDER,
            types::NS_INFRA_PROVIDER,
            &id,
            json!({}),
        )
        .with_label(LABEL_PROVIDER, &id),
    );
    st.put(
        Resource::new(
            types::t::INFRA_PROVIDER_STATUS,
            types::NS_INFRA_PROVIDER,
            &id,
            json!({
                "schema": PROVIDER_SCHEMA,
                "name": "Proxmox",
                "description": "Proxmox infrastructure provider",
                "icon": icon,
                "version": "",
            }),
        )
        .with_label(LABEL_PROVIDER, &id),
    );
    drop(st);
    write_provider_health(sh);
}

/// InfraProviderHealthStatus (heartbeat) and InfraProviderCombinedStatus (connected), as the
/// ProviderDisconnected fault says.
fn write_provider_health(sh: &Shared) {
    let disconnected = sh.has_fault(OmniFault::ProviderDisconnected);
    let id = sh.provider_id.clone();
    let icon = base64::engine::general_purpose::STANDARD.encode(ICON_SVG);
    let mut st = sh.store();
    if !disconnected
        || st
            .get(
                types::t::INFRA_PROVIDER_HEALTH,
                types::NS_INFRA_PROVIDER_EPHEMERAL,
                &id,
            )
            .is_none()
    {
        let now = chrono::Utc::now();
        // A disconnected provider's last heartbeat is long gone.
        let beat = if disconnected {
            now - chrono::Duration::minutes(10)
        } else {
            now
        };
        st.put(
            Resource::new(
                types::t::INFRA_PROVIDER_HEALTH,
                types::NS_INFRA_PROVIDER_EPHEMERAL,
                &id,
                json!({
                    "lastheartbeattimestamp": {
                        "seconds": beat.timestamp(),
                        "nanos": beat.timestamp_subsec_nanos(),
                    },
                    "error": "",
                }),
            )
            .with_owner(format!("{id}.ProviderHealthStatusController"))
            .with_label(LABEL_PROVIDER, &id),
        );
    }
    st.put(
        Resource::new(
            types::t::INFRA_PROVIDER_COMBINED,
            types::NS_EPHEMERAL,
            &id,
            json!({
                "name": "Proxmox",
                "description": "Proxmox infrastructure provider",
                "icon": icon,
                "health": {
                    "connected": !disconnected,
                    "error": "",
                    "initialized": true,
                },
                "version": "",
            }),
        )
        .with_owner("InfraProviderStatusController"),
    );
}

/// The provider's heartbeat every 30 s (omni.md §5.4), unless it is disconnected.
async fn heartbeat(sh: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = stopped.changed() => return,
        }
        if !sh.has_fault(OmniFault::ProviderDisconnected) {
            write_provider_health(&sh);
        }
    }
}

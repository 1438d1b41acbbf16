//! The twin's Kubernetes API server: HTTPS on loopback with a certificate generated at
//! start, speaking the wire format kube-rs 5 expects (`shared/reference/kubernetes-fake-server.md`:
//! lists with `<Kind>List` and a resourceVersion, newline-delimited JSON watches with
//! bookmarks and in-stream 410s, full `Status` errors, server-side apply, bearer-token
//! auth), so the harness's real client runs against it unchanged — and answering the real
//! `kubectl` the way a v1.34 kube-apiserver of a Talos cluster does.
//!
//! Emulated: a generic object store for any group/version/kind ([`store`]), discovery
//! ([`types`]), the verbs and the service proxy ([`api`]), watches ([`watch`]), and the
//! controllers that make failures propagate the way they do in a cluster ([`controllers`]):
//! kubelets renewing node Leases, the node lifecycle controller (Ready → `Unknown` and the
//! unreachable taints after the grace period, 50 s in v1.34), taint-based eviction after
//! `tolerationSeconds` (300 s by default; a pod on a dead node stays Terminating until its
//! kubelet returns or the node is deleted), the kubelet's graceful node shutdown
//! ([`KubeTwin::begin_node_shutdown`]), Deployments, ReplicaSets, DaemonSets, a
//! scheduler, the garbage collector, and the Endpoints and EndpointSlice controllers with
//! kube-apiserver's endpoints for `default/kubernetes` (one address per control plane, port
//! 6443), re-syncing only the Services that changes touch. Every emulated duration comes
//! from [`KubeSpec::timing`] multiplied by [`KubeSpec::time_scale`]; node and pod Ready
//! transitions are logged ([`KubeTwin::transitions`]).
//!
//! Also emulated, for clients other than kube-rs:
//! - server-side printing ([`table`]): `meta.k8s.io/v1` (and `v1beta1`) `Table` answers to
//!   lists, gets and watches with kube-apiserver's columns and cells for nodes, pods,
//!   namespaces, services, endpoints, EndpointSlices, deployments, replica sets, daemon sets,
//!   stateful sets, leases, config maps, secrets, service accounts and events, custom
//!   resources' `additionalPrinterColumns`, `Name`/`Created At` for the rest,
//!   `includeObject=None|Metadata|Object`; `PartialObjectMetadata(List)` for metadata clients;
//! - `/healthz`, `/livez`, `/readyz` with `?verbose`, `?exclude=` and per-check paths, and
//!   checks the twin can be told to fail ([`KubeTwin::fail_health_check`]; [`health`]);
//! - request accounting ([`metrics`]): every client request counted with the labels of
//!   `apiserver_request_total`, served as Prometheus text on `GET /metrics` and returned by
//!   [`KubeTwin::request_counts`]. The twin's own kubelets and controllers act on the store
//!   in-process and its HTTP components use [`KubeTwin::component_kubeconfig_yaml`]: neither
//!   is counted.
//!
//! The world inside is a Talos cluster with CNI `none` and kube-proxy disabled, as `kubectl
//! get pods -n kube-system -o wide` shows it: once the first control plane joins, Talos's
//! bootstrap manifests (CoreDNS: Deployment `coredns` ×2 `k8s-app=kube-dns`, Service
//! `kube-dns` 10.96.0.10, Pending until some node's CNI runs); on every control plane the
//! kubelet's mirror pods `kube-apiserver-<node>`, `kube-controller-manager-<node>`,
//! `kube-scheduler-<node>` (etcd is a Talos service, not a pod; no kube-proxy); Cilium's
//! pods come from the `cilium` shim's install ([`crate::cilium`]). Each kubelet runs its
//! pods' containers (`controllers/runtime.rs`): container statuses with image, imageID,
//! containerID, restart counts, `lastState`, the kubelet's CrashLoopBackOff back-off
//! (10 s doubling to 5 min), restarts after a node reboot; pod IPs from the node's pod CIDR.
//! The pod and service proxies ([`proxy`]) reach what the pods serve — agnhost `netexec`
//! ([`netexec`]) — through a model of the Cilium pod network ([`net`]): a dead node or a
//! dropped path times out, a closed port is refused, as kube-apiserver reports them.
//!
//! Faults ([`KubeFault`], set with [`KubeTwin::set_fault`]): a crash-looping CoreDNS
//! replica, a worker that never turns Ready, pod traffic dropped between two workers.
//!
//! Not emulated: RBAC and admission webhooks, field-manager conflict detection in apply,
//! strategic merge of lists by key, rolling updates (old ReplicaSets drop to zero at once),
//! graceful pod termination on a live node (its deletes are immediate), the node monitor
//! period (Unknown exactly at the grace period's end), the EndpointSlice mirroring controller
//! (Services without a selector get no slices), topology hints, protobuf, aggregated
//! discovery, YAML request bodies, container logs and exec, readiness and liveness probes (a
//! running container is ready), what images other than agnhost netexec serve (their declared
//! ports accept and close connections), YAML/protobuf answers (such Accept clauses are skipped),
//! Table printers of kinds the twin does not serve, metrics other than
//! `apiserver_request_total`, and any effect of a failing health check on other requests.

mod api;
mod controllers;
mod defaults;
mod health;
mod metrics;
mod net;
mod netexec;
mod patch;
mod proxy;
mod select;
mod status;
mod store;
mod table;
mod types;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use api::GIT_VERSION;
pub use metrics::{KubeRequestCounts, RequestKey};
pub use status::ApiError;

use crate::TwinError;

/// What the Kubernetes twin needs to start.
#[derive(Debug, Clone)]
pub struct KubeSpec {
    /// The bearer token the API server accepts.
    pub token: String,
    /// Multiplies every emulated duration (Lease renewal, grace period, tolerations).
    pub time_scale: f64,
    /// The emulated durations (grace period, Lease, default toleration), in real seconds.
    pub timing: crate::timing::Timing,
}

/// What changed in a [`Transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// A node's Ready condition.
    Node,
    /// A pod's Ready condition.
    Pod,
}

/// One Ready transition of a node or a pod, as the twin made it, for benches and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Wall-clock time of the change (millisecond precision).
    pub at: chrono::DateTime<chrono::Utc>,
    pub kind: TransitionKind,
    /// The node's name, or `namespace/name` of the pod.
    pub name: String,
    /// The node (the pod's node for a pod).
    pub node: String,
    /// The new status of the Ready condition: `True`, `False` or `Unknown`.
    pub to: String,
}

impl Transition {
    pub(crate) fn now(kind: TransitionKind, name: &str, node: &str, to: &str) -> Transition {
        let now = chrono::Utc::now();
        let ms = now.timestamp_millis();
        Transition {
            at: chrono::DateTime::from_timestamp_millis(ms).unwrap_or(now),
            kind,
            name: name.into(),
            node: node.into(),
            to: to.into(),
        }
    }
}

/// Faults of the Kubernetes twin (`twin::faults::Fault` names them and says who catches them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeFault {
    /// One CoreDNS replica (the first whose containers start) crash-loops: CoreDNS's `loop`
    /// plugin exits 1 about 2 s after every start, and the kubelet backs off.
    CrashLoopPod,
    /// The first worker to join never turns Ready: its Cilium agent runs but the kubelet
    /// never finds the CNI configuration (`NetworkPluginNotReady … cni config
    /// uninitialized`), so it keeps the `not-ready` taints and takes no pods.
    NodeNeverReady,
    /// Pod traffic between the first two workers to join is dropped (e.g. VXLAN blocked
    /// between their hosts): connections between their pods time out.
    CrossNodeDrop,
}

/// What the Kubernetes twin's faults act on (see [`KubeTwin::fault_targets`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultTargets {
    pub crash_pod: Option<String>,
    pub never_ready_node: Option<String>,
    pub dropped_between: Option<(String, String)>,
}

/// Everything behind the lock: the objects and the emulated machines.
pub(crate) struct World {
    pub store: store::Store,
    pub sim: controllers::Sim,
}

pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub token: String,
    /// The token of the twin's own components that talk HTTP (the CNI physics): their
    /// requests are not counted.
    pub component_token: String,
    /// Client requests, as `apiserver_request_total` counts them.
    pub requests: crate::accounting::Tally<RequestKey>,
    /// Health checks the twin was told to fail.
    pub health: Mutex<health::Failures>,
    pub time_scale: f64,
    pub timing: controllers::KubeTiming,
    /// `127.0.0.1:PORT`, for discovery documents.
    pub server: String,
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Wakes the controllers after a change outside the store (a kubelet dies, …).
    pub poke: tokio::sync::Notify,
}

pub(crate) fn lock(m: &Mutex<World>) -> MutexGuard<'_, World> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn lock_health(sh: &Shared) -> MutexGuard<'_, health::Failures> {
    sh.health.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running Kubernetes API server emulator.
pub struct KubeTwin {
    addr: SocketAddr,
    cert_pem: String,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    controllers: tokio::task::JoinHandle<()>,
}

fn seed() -> String {
    format!(
        "{:?}/{}/{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    )
}

impl KubeTwin {
    /// Generate a certificate, bind `127.0.0.1:0`, start serving and start the controllers.
    pub async fn start(spec: KubeSpec) -> Result<KubeTwin, TwinError> {
        if !(spec.time_scale.is_finite() && spec.time_scale > 0.0) {
            return Err(TwinError::Inventory(format!(
                "the Kubernetes twin's time_scale must be a positive number, not {}",
                spec.time_scale
            )));
        }
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| TwinError::Tls(e.to_string()))?;
        let der = cert.cert.der().to_vec();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(harness::proxmox::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TwinError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![der.into()], key)
            .map_err(|e| TwinError::Tls(e.to_string()))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TwinError::Io("bind the Kubernetes twin".into(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TwinError::Io("read the Kubernetes twin address".into(), e))?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                store: {
                    let mut st = store::Store::new(seed());
                    st.default_toleration_secs = spec.timing.default_toleration.round() as i64;
                    st
                },
                sim: controllers::Sim::default(),
            }),
            token: spec.token,
            component_token: {
                use sha2::{Digest, Sha256};
                let h = Sha256::digest(format!("component/{}", seed()).as_bytes());
                h.iter().take(16).map(|b| format!("{b:02x}")).collect()
            },
            requests: crate::accounting::Tally::new(),
            health: Mutex::new(health::Failures::default()),
            time_scale: spec.time_scale,
            timing: controllers::KubeTiming::from(&spec.timing),
            server: addr.to_string(),
            stop: stopped.clone(),
            poke: tokio::sync::Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(api::handle)
            .with_state(Arc::clone(&shared));
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let server = tokio::spawn(serve(listener, acceptor, app, stopped));
        let controllers = tokio::spawn(controllers::run(Arc::clone(&shared)));
        tracing::info!("kube twin: serving on https://{addr}");
        Ok(KubeTwin {
            addr,
            cert_pem: cert.cert.pem(),
            shared,
            stop,
            server,
            controllers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The self-signed certificate (SANs 127.0.0.1 and localhost), to trust as the CA.
    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A static-bearer-token kubeconfig, shaped like the one
    /// `omnictl kubeconfig --service-account` writes: one name (`<cluster>-<user>`) for the
    /// cluster, context and user entries, context namespace `default`, and the twin's
    /// certificate as `certificate-authority-data`.
    pub fn kubeconfig_yaml(&self, cluster: &str, user: &str) -> String {
        self.kubeconfig_with(cluster, user, &self.shared.token)
    }

    /// A kubeconfig for the twin's own components that use the API over HTTP (as a node's
    /// agents would): same shape, a token of their own, and their requests are not counted
    /// in [`Self::request_counts`].
    pub fn component_kubeconfig_yaml(&self) -> String {
        self.kubeconfig_with("twin", "system", &self.shared.component_token)
    }

    fn kubeconfig_with(&self, cluster: &str, user: &str, token: &str) -> String {
        // A JSON string is a valid YAML double-quoted scalar.
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let name = q(&format!("{cluster}-{user}"));
        let ca = base64::engine::general_purpose::STANDARD.encode(self.cert_pem.as_bytes());
        format!(
            "apiVersion: v1\n\
             clusters:\n\
             - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {name}\n\
             contexts:\n\
             - context:\n    cluster: {name}\n    namespace: default\n    user: {name}\n  name: {name}\n\
             current-context: {name}\n\
             kind: Config\n\
             users:\n\
             - name: {name}\n  user:\n    token: {token}\n",
            server = self.url(),
            token = q(token),
        )
    }

    /// Every client request counted so far, with the labels of kube-apiserver's
    /// `apiserver_request_total` (also served as Prometheus text on `GET /metrics`). Only
    /// HTTP requests from clients count: the twin's kubelets and controllers act on the
    /// store in-process, and its HTTP components use [`Self::component_kubeconfig_yaml`].
    pub fn request_counts(&self) -> KubeRequestCounts {
        self.shared.requests.snapshot()
    }

    /// Make a health check of `/livez`, `/readyz` and `/healthz` fail (`etcd`, `log`,
    /// `informer-sync`, `poststarthook/...`, `shutdown`): the endpoints then answer 500 with
    /// `[-]NAME failed: reason withheld`, and `/readyz/NAME` with `reason`. A failing `etcd`
    /// also fails `etcd-readiness`.
    pub fn fail_health_check(&self, check: &str, reason: &str) -> Result<(), TwinError> {
        if !health::known(check) {
            return Err(TwinError::Inventory(format!(
                "kube-apiserver has no health check named {check:?} (e.g. etcd, log, informer-sync, shutdown)"
            )));
        }
        lock_health(&self.shared).fail(check, reason);
        Ok(())
    }

    /// Let a check failed with [`Self::fail_health_check`] pass again.
    pub fn heal_health_check(&self, check: &str) {
        lock_health(&self.shared).heal(check);
    }

    /// Register a machine as a node: a Node object (NotReady until [`Self::set_cni_ready`])
    /// whose kubelet is alive and renews its Lease. Joining again re-registers it.
    pub fn join_node(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        system_uuid: &str,
        control_plane: bool,
    ) -> Result<(), TwinError> {
        let mut w = lock(&self.shared.world);
        let World { store, sim } = &mut *w;
        controllers::join_node(store, sim, name, &labels, system_uuid, control_plane)
            .map_err(|e| TwinError::Inventory(format!("cannot register node {name}: {e}")))?;
        drop(w);
        self.shared.poke.notify_one();
        Ok(())
    }

    fn with_node(
        &self,
        name: &str,
        f: impl FnOnce(&mut controllers::NodeSim),
    ) -> Result<(), TwinError> {
        let mut w = lock(&self.shared.world);
        let n = w.sim.nodes.get_mut(name).ok_or_else(|| {
            TwinError::Inventory(format!(
                "no node named {name} has joined the Kubernetes twin"
            ))
        })?;
        f(n);
        drop(w);
        self.shared.poke.notify_one();
        Ok(())
    }

    /// Start or stop the node's kubelet (a stopped VM stops heartbeating). A kubelet that
    /// comes back runs in a new boot: its pods' containers restart.
    /// After a boot, pod networking (and so the node's Ready) waits for the node's Cilium
    /// agent pod to be ready again.
    pub fn set_kubelet_alive(&self, name: &str, alive: bool) -> Result<(), TwinError> {
        self.with_node(name, |n| {
            if alive && !n.alive {
                // A restarted kubelet renews its Lease at once.
                n.last_renew = None;
                n.boot += 1;
                n.agent_wait = true;
                n.shutting_down = false;
            }
            if !alive && n.alive {
                n.died_at = Some(store::now_time());
            }
            n.alive = alive;
        })
    }

    /// A suspended machine resumes: the same kubelet (same boot, containers untouched)
    /// renews its Lease at once; pod networking waits for the agent pod as after a boot.
    pub fn resume_kubelet(&self, name: &str) -> Result<(), TwinError> {
        self.with_node(name, |n| {
            if !n.alive {
                n.last_renew = None;
                n.agent_wait = true;
                n.alive = true;
            }
        })
    }

    /// The kubelet's graceful node shutdown (Talos on an ACPI power button, forced: no
    /// cordon, no drain): the node reports NotReady `node is shutting down` and every pod not
    /// owned by a DaemonSet or the node ends `Failed`, reason `Terminated`, message `Pod was
    /// terminated in response to imminent node shutdown.` (`pkg/kubelet/nodeshutdown`), with
    /// a `DisruptionTarget` condition. The kubelet keeps running: stop it with
    /// [`Self::set_kubelet_alive`] once the pods are stopped.
    pub fn begin_node_shutdown(&self, name: &str) -> Result<(), TwinError> {
        let mut w = lock(&self.shared.world);
        let World { store, sim } = &mut *w;
        let n = sim.nodes.get_mut(name).ok_or_else(|| {
            TwinError::Inventory(format!(
                "no node named {name} has joined the Kubernetes twin"
            ))
        })?;
        n.shutting_down = true;
        controllers::shutdown_pods(store, sim, name);
        drop(w);
        self.shared.poke.notify_one();
        Ok(())
    }

    /// Node Ready and pod Ready transitions so far, in order.
    pub fn transitions(&self) -> Vec<Transition> {
        lock(&self.shared.world).sim.transitions.clone()
    }

    /// Switch one of the Kubernetes twin's faults on or off.
    pub fn set_fault(&self, fault: KubeFault, on: bool) {
        let mut w = lock(&self.shared.world);
        let f = &mut w.sim.faults;
        match fault {
            KubeFault::CrashLoopPod => f.crashloop = on,
            KubeFault::NodeNeverReady => f.node_never_ready = on,
            KubeFault::CrossNodeDrop => f.cross_node_drop = on,
        }
        // Effective at once, not only from the controllers' next pass.
        w.sim.designate();
        drop(w);
        self.shared.poke.notify_one();
    }

    /// What the faults act on so far: the crash-looping pod, the never-Ready node, the two
    /// nodes between which pod traffic is dropped.
    pub fn fault_targets(&self) -> FaultTargets {
        let w = lock(&self.shared.world);
        let pods = types::Gvr::new("", "v1", "pods");
        let crash_pod = w.sim.crash_victim.as_ref().and_then(|uid| {
            w.store
                .list(&pods, Some("kube-system"), &select::Filter::default())
                .into_iter()
                .find(|p| p["metadata"]["uid"] == uid.as_str())
                .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
        });
        FaultTargets {
            crash_pod,
            never_ready_node: w.sim.never_ready.clone(),
            dropped_between: w.sim.dropped.clone(),
        }
    }

    /// A node whose kubelet never finds the CNI configuration again (`node-never-recovers`):
    /// it stays NotReady while its kubelet runs.
    pub fn set_cni_broken(&self, name: &str, broken: bool) -> Result<(), TwinError> {
        self.with_node(name, |n| n.cni_broken = broken)
    }

    /// Whether the node's CNI is configured (the Cilium agent runs there).
    pub fn set_cni_ready(&self, name: &str, ready: bool) -> Result<(), TwinError> {
        self.with_node(name, |n| n.cni_ready = ready)
    }

    /// Forget a machine: delete its Node (its Lease and pods follow).
    pub fn remove_node(&self, name: &str) -> Result<(), TwinError> {
        let mut w = lock(&self.shared.world);
        w.sim.nodes.remove(name);
        let g = types::Gvr::new("", "v1", "nodes");
        match w
            .store
            .delete(&g, "", name, &store::Preconditions::default(), false)
        {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => {
                return Err(TwinError::Inventory(format!(
                    "cannot delete node {name}: {e}"
                )));
            }
        }
        drop(w);
        self.shared.poke.notify_one();
        Ok(())
    }

    /// One object by apiVersion, kind, namespace (empty for cluster-scoped) and name.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let w = lock(&self.shared.world);
        let rt = w.store.type_of_kind(api_version, kind)?;
        w.store.get(&rt.gvr, namespace, name).map(|o| (*o).clone())
    }

    /// Create an object, or replace it (and its status, if it has one) when it exists —
    /// for the twin's other parts, which act as cluster components.
    pub fn put_object(&self, obj: Value) -> Result<Value, ApiError> {
        let av = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut w = lock(&self.shared.world);
        let rt = w
            .store
            .type_of_kind(&av, &kind)
            .ok_or_else(ApiError::no_route)?;
        let ns = if rt.namespaced { ns } else { String::new() };
        let out = match w.store.get(&rt.gvr, &ns, &name) {
            None => w.store.create(&rt.gvr, &ns, obj.clone(), false)?,
            Some(_) => {
                let mut body = obj.clone();
                if let Value::Object(m) = &mut body["metadata"] {
                    m.remove("resourceVersion");
                }
                w.store
                    .update(&rt.gvr, &ns, &name, body, store::Sub::Main, false)?
            }
        };
        let out = match obj.get("status") {
            Some(status) if rt.status && out.get("status") != Some(status) => {
                let mut body = (*out).clone();
                body["status"] = status.clone();
                w.store
                    .update(&rt.gvr, &ns, &name, body, store::Sub::Status, false)?
            }
            _ => out,
        };
        Ok((*out).clone())
    }

    /// Drop the watch history (an etcd compaction): watches from an older
    /// resourceVersion get 410 Expired.
    pub fn compact(&self) {
        lock(&self.shared.world).store.compact();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.world).store.resource_version()
    }

    /// Stop serving (open watches end) and stop the controllers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.controllers.await;
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => { tracing::warn!("kube twin accept: {e}"); continue }
            },
            _ = stopped.changed() => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = TowerToHyperService::new(app);
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

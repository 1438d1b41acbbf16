//! The twin's Proxmox VE API: HTTPS on loopback with a certificate generated at start,
//! serving `/api2/json` the way a real cluster does (`shared/reference/proxmox.md`):
//! token auth with the real 401 shapes (empty body, reason phrase, delayed), the
//! `{"data": …}` envelope with `message` on errors, 595 for calls proxied to a node that is
//! down, 501 for unknown paths, UPID tasks that finish after a (scaled) while, and VMs that
//! consume host memory while running.
//!
//! The inventory is the real response bodies in `fixtures/twin/proxmox/` (see its README),
//! embedded in the binary; physics and faults are applied on top when a response is rendered.
//! Every client request is counted ([`ProxmoxTwin::request_counts`], [`requests`]).

mod requests;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use requests::{ProxmoxRequestCounts, RequestKey};
pub use state::Placement;
pub use state::{
    CreatedVm, HostSizing, Inventory, InventorySource, PowerEvent, PowerEventKind, VmPower,
    VmRequest,
};

use crate::TwinError;
use crate::faults::Fault;

/// What the twin's Proxmox needs to start.
pub struct ProxmoxSpec {
    /// Where the response bodies come from (`default_inventory()`: the embedded ones).
    pub inventory: InventorySource,
    pub token_id: String,
    pub token_secret: String,
    pub faults: Vec<Fault>,
    /// Multiplies every emulated duration (the 3 s 401 delay, task run times).
    pub time_scale: f64,
    /// Task run times and the HA CRM delay, in real seconds.
    pub timing: crate::timing::Timing,
    /// Whether the VMs the provider creates are HA-managed (the `victim-ha-managed` fault
    /// makes them so too).
    pub ha_managed: bool,
    /// How the provider's node picks for one machine set see each other.
    pub placement: Placement,
}

/// A running Proxmox emulator.
pub struct ProxmoxTwin {
    addr: SocketAddr,
    fingerprint: String,
    cert_pem: String,
    state: Arc<Mutex<state::State>>,
    requests: Arc<crate::accounting::Tally<RequestKey>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    clock: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Arc<Mutex<state::State>>,
    requests: Arc<crate::accounting::Tally<RequestKey>>,
    token_id: String,
    token_secret: String,
    time_scale: f64,
    /// Wakes the task clock after a request (a new task may be due sooner).
    poke: Arc<tokio::sync::Notify>,
}

impl ProxmoxTwin {
    pub async fn start(spec: ProxmoxSpec) -> Result<ProxmoxTwin, TwinError> {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| TwinError::Tls(e.to_string()))?;
        let der = cert.cert.der().to_vec();
        let fingerprint = harness::proxmox::tls::fingerprint(&der);
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(harness::proxmox::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TwinError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![der.into()], key)
            .map_err(|e| TwinError::Tls(e.to_string()))?;
        let inventory = Inventory::load(&spec.inventory)?;
        let state = Arc::new(Mutex::new(state::State::new(
            inventory,
            &spec.faults,
            &fingerprint,
            spec.time_scale,
            spec.timing.clone(),
            spec.ha_managed,
        )));
        state.lock().unwrap_or_else(|p| p.into_inner()).placement = spec.placement;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TwinError::Io("bind the Proxmox twin".into(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TwinError::Io("read the Proxmox twin address".into(), e))?;
        let requests = Arc::new(crate::accounting::Tally::new());
        let poke = Arc::new(tokio::sync::Notify::new());
        let shared = Arc::new(Shared {
            poke: Arc::clone(&poke),
            state: Arc::clone(&state),
            requests: Arc::clone(&requests),
            token_id: spec.token_id,
            token_secret: spec.token_secret,
            time_scale: spec.time_scale,
        });
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let clock = tokio::spawn(run_clock(
            Arc::clone(&state),
            Arc::clone(&poke),
            stopped.clone(),
        ));
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(e) => { tracing::warn!("proxmox twin accept: {e}"); continue } },
                    _ = stopped.changed() => break,
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = TowerToHyperService::new(app);
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(ProxmoxTwin {
            addr,
            fingerprint,
            cert_pem: cert.cert.pem(),
            state,
            requests,
            stop,
            task,
            clock,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT/api2/json`.
    pub fn url(&self) -> String {
        format!("https://{}/api2/json", self.addr)
    }

    /// SHA-256 fingerprint of the twin's certificate, as Proxmox shows it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The twin's certificate (PEM), to trust as a CA file.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Point every host's resolvers (`dns1`..`dns3`) at `servers`, as an administrator would
    /// under Datacenter → node → System → DNS.
    pub fn set_hosts_dns(&self, servers: &[&str]) {
        lock(&self.state).set_hosts_dns(servers);
    }

    /// Mark a host offline (its proxied calls then answer 595) or back online.
    pub fn set_node_online(&self, node: &str, online: bool) {
        lock(&self.state).set_node_online(node, online);
    }

    /// Power state of a VM, after applying finished tasks.
    /// How many Proxmox hosts the inventory has.
    pub fn host_count(&self) -> usize {
        lock(&self.state).host_count()
    }

    pub fn vm_power(&self, vmid: u32) -> Option<VmPower> {
        let mut s = lock(&self.state);
        s.tick();
        s.vm_power(vmid)
    }

    /// The infra provider's VM creation (node and storage choice as the Omni provider does).
    pub fn create_vm(&self, req: &VmRequest) -> Result<CreatedVm, String> {
        lock(&self.state).create_vm(req)
    }

    /// Delete a VM (deprovision). False when there was none.
    pub fn delete_vm(&self, vmid: u32) -> bool {
        lock(&self.state).delete_vm(vmid)
    }

    /// VM id and host of the VM named `name`.
    pub fn vm_by_name(&self, name: &str) -> Option<(u32, String)> {
        lock(&self.state).vm_by_name(name)
    }

    /// The DNS servers a host's VMs inherit.
    pub fn host_dns(&self, node: &str) -> Vec<String> {
        lock(&self.state).host_dns(node)
    }

    /// Every client request so far, by method, path template and status; POST, PUT and
    /// DELETE count as mutating.
    pub fn request_counts(&self) -> ProxmoxRequestCounts {
        self.requests.snapshot()
    }

    /// Power changes of every VM, as they happen on the twin's clock.
    pub fn subscribe_power(&self) -> tokio::sync::broadcast::Receiver<PowerEvent> {
        lock(&self.state).subscribe()
    }

    /// The HA requested state of a VM (`None`: not HA-managed).
    pub fn ha_state(&self, vmid: u32) -> Option<String> {
        lock(&self.state).ha_state(vmid)
    }

    /// A VM's config, as `GET …/config` shows it.
    pub fn vm_config(&self, vmid: u32) -> Option<serde_json::Value> {
        lock(&self.state).vm_config(vmid)
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let _ = self.clock.await;
    }
}

/// The twin's clock for tasks: each task ends (and its effect lands) when it is due, not on
/// the next request.
async fn run_clock(
    state: Arc<Mutex<state::State>>,
    poke: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let next = {
            let mut s = lock(&state);
            s.tick();
            s.next_due()
        };
        let until = next.unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
            _ = poke.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

fn lock(m: &Mutex<state::State>) -> std::sync::MutexGuard<'_, state::State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A Proxmox answer before it becomes HTTP.
pub(crate) enum Answer {
    Data(serde_json::Value),
    /// Status, message (reason phrase and `message`), optional per-parameter errors.
    Error(u16, String, Option<serde_json::Value>),
    /// Status and reason phrase with an empty body (401 before the handler, 595).
    Bare(u16, String),
}

/// The axum handler: answer, then count the request.
async fn handle(
    AxState(sh): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = match uri.path().strip_prefix("/api2/json") {
        Some(p) => requests::template(p),
        None => uri.path().to_string(),
    };
    let key = RequestKey {
        method: method.as_str().to_string(),
        path,
        code: 0,
    };
    let resp = respond(&sh, method, uri, headers, body).await;
    sh.requests.add(RequestKey {
        code: resp.status().as_u16(),
        ..key
    });
    resp
}

async fn respond(
    sh: &Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix("/api2/json") else {
        return render(Answer::Error(501, "no such uri".into(), None));
    };
    match authenticate(sh, &headers) {
        Ok(()) => {}
        Err(reason) => {
            // Proxmox delays every unauthorized answer by 3 seconds.
            tokio::time::sleep(Duration::from_secs_f64(3.0 * sh.time_scale)).await;
            return render(Answer::Bare(401, reason));
        }
    }
    let query = uri.query().unwrap_or("");
    let form = String::from_utf8_lossy(&body).into_owned();
    let answer = lock(&sh.state).answer(&method, path, query, &form, &sh.token_id);
    sh.poke.notify_one();
    render(answer)
}

/// `PVEAPIToken=USER@REALM!NAME=SECRET`, split on the last `=` (pve-access-control).
fn authenticate(sh: &Shared, headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err("No ticket".into());
    };
    let Some(rest) = value.split_once("PVEAPIToken").map(|(_, r)| r) else {
        return Err("No ticket".into());
    };
    let token = rest
        .trim_start_matches(['=', ' '])
        .split(';')
        .next()
        .unwrap_or("");
    let Some((id, secret)) = token.rsplit_once('=') else {
        return Err("Authentication failed!".into());
    };
    if id == sh.token_id && secret == sh.token_secret {
        Ok(())
    } else {
        Err("Authentication failed!".into())
    }
}

fn render(answer: Answer) -> Response {
    let (status, reason, body) = match answer {
        Answer::Data(d) => (200, None, Some(serde_json::json!({ "data": d }))),
        Answer::Error(code, msg, errors) => {
            let mut b = serde_json::json!({ "data": null, "message": format!("{msg}\n") });
            if let Some(e) = errors {
                b["errors"] = e;
            }
            (code, Some(msg), Some(b))
        }
        Answer::Bare(code, reason) => (code, Some(reason), None),
    };
    let mut resp = Response::new(match &body {
        Some(b) => Body::from(b.to_string()),
        None => Body::empty(),
    });
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::SERVER,
        HeaderValue::from_static("pve-api-daemon/3.0"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if body.is_some() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
    }
    if status >= 400 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(r) = reason {
        // The status line carries the message's first line, as pve-http-server writes it.
        let first = r.lines().next().unwrap_or("").to_string();
        if let Ok(p) = hyper::ext::ReasonPhrase::try_from(first) {
            resp.extensions_mut().insert(p);
        }
    }
    resp
}

/// The default inventory: `fixtures/twin/proxmox`, as embedded in the binary.
pub fn default_inventory() -> InventorySource {
    InventorySource::Bundled
}

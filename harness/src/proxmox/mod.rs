//! The Proxmox VE API driver: a thin typed client for `/api2/json` over reqwest + rustls.
//!
//! - API-token auth (`Authorization: PVEAPIToken=USER@REALM!NAME=SECRET`); the secret is read
//!   from the env var or file the lab names, held as a `SecretString`, never logged.
//! - TLS verified by default; CA file, SHA-256 pin, or explicit insecure (reported as a notice).
//! - The `{"data": …}` envelope; errors from `message`, else the HTTP reason phrase (Proxmox
//!   puts the only explanation of 401 and 595 answers there, with an empty body).
//! - 401/403/595 turned into errors a person can act on; bounded retries with backoff for
//!   idempotent reads only; a timeout on every request.
//!
//! Facts: `shared/reference/proxmox.md`.

pub mod perl;
pub mod tls;
pub mod types;

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::model::lab::{Proxmox as ProxmoxLab, Tls};
use types::*;

/// Characters escaped in path segments (UPIDs contain `:`, `@`, `!`; HA ids `vm:100`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum ProxmoxError {
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    #[error("invalid Proxmox TLS settings: {0}")]
    TlsSetup(String),
    #[error(
        "Proxmox rejected the API token {token_id} (401 {reason}): check proxmox.token_id and the secret in {secret}; the token may be deleted, expired, or its user disabled"
    )]
    Unauthorized {
        token_id: String,
        reason: String,
        secret: String,
    },
    #[error(
        "Proxmox denied {path} (403 {reason}): grant the token's user (and, with privilege separation, the token) the privilege named, e.g. `pveum acl modify / --tokens {token_id} --roles PVEAuditor`"
    )]
    Forbidden {
        path: String,
        reason: String,
        token_id: String,
    },
    #[error(
        "Proxmox node unreachable: {path} answered {status} {reason} — the node is down or cut off from the node clusterproof talks to"
    )]
    NodeUnreachable {
        path: String,
        status: u16,
        reason: String,
    },
    #[error("Proxmox API error on {method} {path}: {status} {message}")]
    Api {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("cannot reach the Proxmox API at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("unexpected answer from Proxmox for {path}: {reason}")]
    Decode { path: String, reason: String },
}

impl ProxmoxError {
    /// Worth retrying for an idempotent read: transport failures and gateway errors. Proxmox
    /// answers its own handler errors with 500 ("does not exist", "no quorum"), which a retry
    /// does not change; 595–599 mean the node is gone.
    fn transient(&self) -> bool {
        match self {
            ProxmoxError::Transport { .. } => true,
            ProxmoxError::Api { status, .. } => (502..=504).contains(status),
            _ => false,
        }
    }
}

/// How many times an idempotent read is tried, and the first backoff.
const READ_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

pub struct ProxmoxClient {
    http: reqwest::Client,
    base: String,
    token_id: String,
    secret: SecretString,
    secret_desc: String,
    /// Human notes about how this client connects (e.g. TLS verification disabled).
    pub notices: Vec<String>,
}

impl std::fmt::Debug for ProxmoxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxmoxClient")
            .field("base", &self.base)
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

impl ProxmoxClient {
    /// Build a client from the lab's `[proxmox]` table. No request is made yet.
    pub fn new(lab: &ProxmoxLab, timeout: Duration) -> Result<Self, ProxmoxError> {
        let secret = crate::secret::read("the Proxmox API token secret", &lab.token_secret)?;
        let mut notices = Vec::new();
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .no_proxy();
        let builder = match &lab.tls {
            Tls::Verify => builder,
            Tls::CaFile(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ProxmoxError::TlsSetup(format!("cannot read CA file {}: {e}", path.display()))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    ProxmoxError::TlsSetup(format!("CA file {} is not PEM: {e}", path.display()))
                })?;
                builder.tls_certs_only(certs)
            }
            Tls::Fingerprint(pin) => {
                let cfg =
                    tls::pinned_config(*pin).map_err(|e| ProxmoxError::TlsSetup(e.to_string()))?;
                builder.tls_backend_preconfigured(cfg)
            }
            Tls::Insecure => {
                notices.push(format!("TLS verification of the Proxmox API at {} is DISABLED (proxmox.tls.insecure = true): anyone on the path can read the API token", lab.url));
                builder.tls_danger_accept_invalid_certs(true)
            }
        };
        let http = builder
            .build()
            .map_err(|e| ProxmoxError::TlsSetup(e.to_string()))?;
        Ok(ProxmoxClient {
            http,
            base: lab.url.clone(),
            token_id: lab.token_id.clone(),
            secret,
            secret_desc: lab.token_secret.to_string(),
            notices,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Percent-encode one path segment.
    pub fn seg(s: &str) -> String {
        utf8_percent_encode(s, SEGMENT).to_string()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<serde_json::Value, ProxmoxError> {
        let url = format!("{}{path}", self.base);
        let auth = format!(
            "PVEAPIToken={}={}",
            self.token_id,
            self.secret.expose_secret()
        );
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(reqwest::header::AUTHORIZATION, auth);
        if !form.is_empty() {
            let body: String = form
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, SEGMENT),
                        utf8_percent_encode(v, SEGMENT)
                    )
                })
                .collect::<Vec<_>>()
                .join("&");
            req = req
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body);
        }
        let resp = req.send().await.map_err(|e| ProxmoxError::Transport {
            url: self.base.clone(),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_default();
        let bytes = resp.bytes().await.map_err(|e| ProxmoxError::Transport {
            url: self.base.clone(),
            reason: error_chain(&e),
        })?;
        let body: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let message = body
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(|m| m.as_str())
            .map(|m| m.trim_end().to_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| reason.clone());
        let code = status.as_u16();
        match code {
            200..=299 => {}
            401 => {
                return Err(ProxmoxError::Unauthorized {
                    token_id: self.token_id.clone(),
                    reason,
                    secret: self.secret_desc.clone(),
                });
            }
            403 => {
                return Err(ProxmoxError::Forbidden {
                    path: path.into(),
                    reason: message,
                    token_id: self.token_id.clone(),
                });
            }
            595..=599 => {
                return Err(ProxmoxError::NodeUnreachable {
                    path: path.into(),
                    status: code,
                    reason,
                });
            }
            _ => {
                let errors = body
                    .as_ref()
                    .and_then(|b| b.get("errors"))
                    .filter(|e| !e.is_null())
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default();
                return Err(ProxmoxError::Api {
                    method: method.to_string(),
                    path: path.into(),
                    status: code,
                    message: format!("{message}{errors}"),
                });
            }
        }
        let body = body.ok_or_else(|| ProxmoxError::Decode {
            path: path.into(),
            reason: "the body is not JSON".into(),
        })?;
        match body {
            serde_json::Value::Object(mut m) if m.contains_key("data") => {
                Ok(m.remove("data").unwrap_or_default())
            }
            _ => Err(ProxmoxError::Decode {
                path: path.into(),
                reason: "no {\"data\": …} envelope".into(),
            }),
        }
    }

    /// GET with bounded retries (idempotent), decoded into `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProxmoxError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let data = loop {
            match self.send(reqwest::Method::GET, path, &[]).await {
                Ok(d) => break d,
                Err(e) if e.transient() && attempt < READ_ATTEMPTS => {
                    tracing::warn!(%path, attempt, "Proxmox read failed, retrying in {backoff:?}: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        serde_json::from_value(data).map_err(|e| ProxmoxError::Decode {
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// POST once (never retried: it may have taken effect).
    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<serde_json::Value, ProxmoxError> {
        self.send(reqwest::Method::POST, path, form).await
    }

    /// PUT once (never retried).
    pub async fn put(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<serde_json::Value, ProxmoxError> {
        self.send(reqwest::Method::PUT, path, form).await
    }

    pub async fn version(&self) -> Result<Version, ProxmoxError> {
        self.get("/version").await
    }
    pub async fn nodes(&self) -> Result<Vec<NodeItem>, ProxmoxError> {
        self.get("/nodes").await
    }
    pub async fn node_status(&self, node: &str) -> Result<NodeStatus, ProxmoxError> {
        self.get(&format!("/nodes/{}/status", Self::seg(node)))
            .await
    }
    pub async fn node_dns(&self, node: &str) -> Result<NodeDns, ProxmoxError> {
        self.get(&format!("/nodes/{}/dns", Self::seg(node))).await
    }
    pub async fn storage_config(&self) -> Result<Vec<StorageConfig>, ProxmoxError> {
        self.get("/storage").await
    }
    pub async fn node_storage(&self, node: &str) -> Result<Vec<StorageStatus>, ProxmoxError> {
        self.get(&format!("/nodes/{}/storage", Self::seg(node)))
            .await
    }
    pub async fn ceph_status(&self) -> Result<CephStatus, ProxmoxError> {
        self.get("/cluster/ceph/status").await
    }
    pub async fn cluster_status(&self) -> Result<Vec<serde_json::Value>, ProxmoxError> {
        self.get("/cluster/status").await
    }
    pub async fn cluster_vms(&self) -> Result<Vec<ClusterVm>, ProxmoxError> {
        self.get("/cluster/resources?type=vm").await
    }
    pub async fn vms(&self, node: &str) -> Result<Vec<VmItem>, ProxmoxError> {
        self.get(&format!("/nodes/{}/qemu", Self::seg(node))).await
    }
    pub async fn vm_status(&self, node: &str, vmid: u32) -> Result<VmStatus, ProxmoxError> {
        self.get(&format!(
            "/nodes/{}/qemu/{vmid}/status/current",
            Self::seg(node)
        ))
        .await
    }
    pub async fn vm_config(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ProxmoxError> {
        self.get(&format!("/nodes/{}/qemu/{vmid}/config", Self::seg(node)))
            .await
    }
    pub async fn ha_resources(&self) -> Result<Vec<HaResource>, ProxmoxError> {
        self.get("/cluster/ha/resources").await
    }
    /// `PUT /cluster/ha/resources/{sid}` with a new requested `state` (`started`, `stopped`,
    /// `disabled`, `ignored`).
    pub async fn ha_set_state(&self, sid: &str, state: &str) -> Result<(), ProxmoxError> {
        self.put(
            &format!("/cluster/ha/resources/{}", Self::seg(sid)),
            &[("state", state.to_string())],
        )
        .await
        .map(|_| ())
    }

    /// Wait for a task to end (its status read every `every`, up to `within`): its final
    /// status, or `None` if it was still running at the deadline.
    pub async fn wait_task(
        &self,
        node: &str,
        upid: &str,
        every: Duration,
        within: Duration,
    ) -> Result<Option<TaskStatus>, ProxmoxError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let t = self.task_status(node, upid).await?;
            if t.finished() {
                return Ok(Some(t));
            }
            if tokio::time::Instant::now() + every > deadline {
                return Ok(None);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The VM's current host, from `/cluster/resources` (HA may have moved it).
    pub async fn vm_host(&self, vmid: u32) -> Result<Option<String>, ProxmoxError> {
        Ok(self
            .cluster_vms()
            .await?
            .into_iter()
            .find(|v| v.vmid == Some(vmid))
            .and_then(|v| v.node))
    }

    pub async fn task_status(&self, node: &str, upid: &str) -> Result<TaskStatus, ProxmoxError> {
        self.get(&format!(
            "/nodes/{}/tasks/{}/status",
            Self::seg(node),
            Self::seg(upid)
        ))
        .await
    }

    /// `POST …/status/{action}` (start, stop, shutdown, reset, suspend, resume): the task's UPID.
    pub async fn vm_action(
        &self,
        node: &str,
        vmid: u32,
        action: VmAction,
    ) -> Result<String, ProxmoxError> {
        let path = format!(
            "/nodes/{}/qemu/{vmid}/status/{}",
            Self::seg(node),
            action.as_str()
        );
        let data = self.post(&path, &[]).await?;
        data.as_str()
            .map(str::to_string)
            .ok_or_else(|| ProxmoxError::Decode {
                path,
                reason: format!("expected a UPID string, got {data}"),
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    Start,
    Stop,
    Shutdown,
    Reset,
    Suspend,
    Resume,
}

impl VmAction {
    pub fn as_str(self) -> &'static str {
        match self {
            VmAction::Start => "start",
            VmAction::Stop => "stop",
            VmAction::Shutdown => "shutdown",
            VmAction::Reset => "reset",
            VmAction::Suspend => "suspend",
            VmAction::Resume => "resume",
        }
    }
}

/// The error and its causes, one line: rustls handshake errors hide in the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

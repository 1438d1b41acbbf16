//! The Kubernetes driver: a kube-rs client from the kubeconfig Omni issues, and waits done with
//! watchers (a reflector store fed by a watch), never with polling loops.
//!
//! Omni's default kubeconfig authenticates through `kubectl oidc-login` with a browser, which
//! hangs unattended; such a kubeconfig is refused with the command that produces a usable one
//! (`shared/reference/kubernetes-fake-server.md` §8.3–8.4, `omni.md` §8).

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, reflector, watcher};

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read the kubeconfig {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "the kubeconfig {path} logs in through `kubectl oidc-login` (a browser), which cannot run unattended; get a service-account kubeconfig: `omnictl kubeconfig {path} -c <cluster> --service-account --user clusterproof --merge=false --force`"
    )]
    InteractiveLogin { path: String },
    #[error("the kubeconfig {path} is not usable: {reason}")]
    Config { path: String, reason: String },
    #[error("cannot get a kubeconfig: {0}")]
    Obtain(String),
    #[error("Kubernetes API error: {0}")]
    Api(String),
    #[error("waited {secs}s for {what}; last seen: {last}")]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
}

impl From<kube::Error> for KubeError {
    fn from(e: kube::Error) -> Self {
        KubeError::Api(e.to_string())
    }
}

/// What a non-resource path answered.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Clone)]
pub struct KubeClient {
    client: kube::Client,
    server: String,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl KubeClient {
    /// Build a client from a kubeconfig file (its current context). Must run inside tokio.
    pub async fn from_kubeconfig(path: &Path) -> Result<Self, KubeError> {
        Self::from_kubeconfig_context(path, None).await
    }

    /// Build a client from a kubeconfig file and one of its contexts (`None`: the current).
    pub async fn from_kubeconfig_context(
        path: &Path,
        context: Option<&str>,
    ) -> Result<Self, KubeError> {
        let p = path.display().to_string();
        let kc = Kubeconfig::read_from(path).map_err(|e| KubeError::Read {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        let interactive = kc
            .auth_infos
            .iter()
            .filter_map(|a| a.auth_info.as_ref())
            .filter_map(|a| a.exec.as_ref())
            .any(|e| {
                let cmd = e.command.as_deref().unwrap_or("");
                cmd.ends_with("kubectl")
                    && e.args
                        .as_ref()
                        .is_some_and(|a| a.iter().any(|x| x == "oidc-login"))
            });
        if interactive {
            return Err(KubeError::InteractiveLogin { path: p });
        }
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| KubeError::Config {
                path: p.clone(),
                reason: e.to_string(),
            })?;
        // Retries of 429/503/504 (up to 15, with long backoff) would hide API outages from
        // the chaos measurements; failures are reported instead.
        cfg.default_retry = false;
        let server = cfg.cluster_url.to_string();
        let client = kube::Client::try_from(cfg).map_err(|e| KubeError::Config {
            path: p,
            reason: e.to_string(),
        })?;
        Ok(KubeClient { client, server })
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// A plain GET of a non-resource path (`/readyz?verbose`, `/livez`), whatever its status.
    pub async fn raw_get(&self, path: &str) -> Result<RawResponse, KubeError> {
        let req = hyper::Request::get(path)
            .body(kube::client::Body::empty())
            .map_err(|e| KubeError::Api(format!("bad request path {path}: {e}")))?;
        let resp = self.client.send(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect_bytes().await?;
        Ok(RawResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, KubeError> {
        Ok(Api::<Node>::all(self.client.clone())
            .list(&Default::default())
            .await?
            .items)
    }

    /// Watch the nodes until `done` holds for the whole set, or `timeout` passes.
    /// `describe` renders the last state for the timeout message.
    pub async fn wait_nodes(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Node]) -> bool,
    ) -> Result<Vec<Node>, KubeError> {
        let api = Api::<Node>::all(self.client.clone());
        let (reader, writer) = reflector::store();
        // Every raw event, InitDone included: the reflector's store takes the initial list
        // only at InitDone, which `applied_objects()` would hide.
        let stream = reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let current = || {
            reader
                .state()
                .iter()
                .map(|n| (**n).clone())
                .collect::<Vec<Node>>()
        };
        let result = tokio::time::timeout(timeout, async {
            loop {
                match stream.next().await {
                    Some(Ok(_)) => {
                        let nodes = current();
                        if done(&nodes) {
                            return Ok(nodes);
                        }
                    }
                    Some(Err(e)) => tracing::debug!("node watch: {e}"),
                    None => return Err(KubeError::Api("the node watch ended".into())),
                }
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(_) => Err(KubeError::Timeout {
                what: what.into(),
                secs: timeout.as_secs(),
                last: describe_nodes(&current()),
            }),
        }
    }
}

/// A node's Ready condition status: `True`, `False` or `Unknown` (`None` without one).
pub fn node_ready(n: &Node) -> Option<&str> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// Whether a node carries the control-plane role label.
pub fn is_control_plane(n: &Node) -> bool {
    n.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key("node-role.kubernetes.io/control-plane"))
}

/// `name=Ready, name=NotReady, …` for messages.
pub fn describe_nodes(nodes: &[Node]) -> String {
    if nodes.is_empty() {
        return "no nodes".into();
    }
    let mut v: Vec<(bool, String)> = nodes
        .iter()
        .map(|n| {
            let state = match node_ready(n) {
                Some("True") => "Ready",
                Some("False") => "NotReady",
                Some(_) => "Unknown",
                None => "no Ready condition",
            };
            (
                state == "Ready",
                format!("{}={state}", n.metadata.name.as_deref().unwrap_or("?")),
            )
        })
        .collect();
    v.sort();
    // A large cluster: the counts, and the first few nodes that are not Ready.
    const SHOWN: usize = 10;
    if v.len() > SHOWN {
        let ready = v.iter().filter(|(r, _)| *r).count();
        let not_ready: Vec<&str> = v
            .iter()
            .filter(|(r, _)| !r)
            .map(|(_, s)| s.as_str())
            .collect();
        let mut s = format!("{ready} of {} Ready", v.len());
        if !not_ready.is_empty() {
            s.push_str(&format!(
                ": {}",
                not_ready[..not_ready.len().min(SHOWN)].join(", ")
            ));
            if not_ready.len() > SHOWN {
                s.push_str(&format!(
                    ", … and {} more not Ready",
                    not_ready.len() - SHOWN
                ));
            }
        }
        return s;
    }
    v.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(", ")
}

impl KubeClient {
    /// Server-side apply of one object (any kind the API server serves), as `kubectl apply
    /// --server-side` does. Returns `Kind/namespace/name`.
    pub async fn apply(&self, obj: &serde_json::Value, manager: &str) -> Result<String, KubeError> {
        use kube::api::{DynamicObject, Patch, PatchParams};
        use kube::core::GroupVersionKind;
        let api_version = obj["apiVersion"]
            .as_str()
            .ok_or_else(|| KubeError::Api("object without apiVersion".into()))?;
        let kind = obj["kind"]
            .as_str()
            .ok_or_else(|| KubeError::Api("object without kind".into()))?;
        let name = obj["metadata"]["name"]
            .as_str()
            .ok_or_else(|| KubeError::Api(format!("{kind} without metadata.name")))?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
        let ns = obj["metadata"]["namespace"].as_str();
        let api: Api<DynamicObject> = match (caps.scope, ns) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            (kube::discovery::Scope::Namespaced, None) => {
                Api::default_namespaced_with(self.client.clone(), &ar)
            }
            (kube::discovery::Scope::Cluster, _) => Api::all_with(self.client.clone(), &ar),
        };
        api.patch(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(obj),
        )
        .await?;
        Ok(format!(
            "{kind}/{}{name}",
            ns.map(|n| format!("{n}/")).unwrap_or_default()
        ))
    }

    /// Apply every document of a YAML manifest stream (e.g. the Gateway API CRDs).
    pub async fn apply_yaml(&self, text: &str, manager: &str) -> Result<Vec<String>, KubeError> {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(text)
            .map_err(|e| KubeError::Api(format!("manifest is not YAML: {e}")))?;
        let mut applied = Vec::new();
        for d in docs.iter().filter(|d| d.is_object()) {
            applied.push(self.apply(d, manager).await?);
        }
        Ok(applied)
    }
}

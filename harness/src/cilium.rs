//! The Cilium driver: install through the `cilium` CLI with the lab's Helm values, and read
//! Cilium's health from Kubernetes objects (the agent DaemonSet, the operator Deployment and
//! `cilium-config`), which is what `cilium status` itself summarises.
//!
//! Key names follow the Cilium Helm chart (`install/kubernetes/cilium/templates/
//! cilium-configmap.yaml`): `kubeProxyReplacement` → `kube-proxy-replacement`, `MTU` → `mtu`,
//! `ipam.mode` → `ipam`, `gatewayAPI.enabled` → `enable-gateway-api`; `k8sServiceHost/Port`
//! reach the agent as `KUBERNETES_SERVICE_HOST/PORT` in its environment (KubePrism:
//! `localhost:7445`, `shared/reference/omni.md` §10).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::kube::{KubeClient, KubeError};

pub const NAMESPACE: &str = "kube-system";
pub const AGENT: &str = "cilium";
pub const OPERATOR: &str = "cilium-operator";
pub const CONFIG: &str = "cilium-config";

#[derive(Debug, thiserror::Error)]
pub enum CiliumError {
    #[error("cannot run the cilium CLI ({path}): {reason}; set cilium.cli in the lab file")]
    Spawn { path: String, reason: String },
    #[error("`cilium install` failed (exit {code}): {stderr}")]
    Install { code: i32, stderr: String },
    #[error("`cilium install` did not finish within {secs}s")]
    Timeout { secs: u64 },
    #[error("cannot read the manifest {location}: {reason}")]
    Manifest { location: String, reason: String },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// `cilium install --set k=v …` with `KUBECONFIG` pointing at the cluster. Returns stdout.
pub async fn install(
    cli: &Path,
    kubeconfig: &Path,
    values: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<String, CiliumError> {
    let mut cmd = tokio::process::Command::new(cli);
    cmd.arg("install");
    for (k, v) in values {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    cmd.env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(r) => r.map_err(|e| CiliumError::Spawn {
            path: cli.display().to_string(),
            reason: e.to_string(),
        })?,
        Err(_) => {
            return Err(CiliumError::Timeout {
                secs: timeout.as_secs(),
            });
        }
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(CiliumError::Install {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The text of a manifest given as a URL (`http(s)://`) or a file path, as `kubectl apply -f`.
pub async fn read_manifest(source: &str) -> Result<String, CiliumError> {
    let fail = |reason: String| CiliumError::Manifest {
        location: source.to_string(),
        reason,
    };
    if source.starts_with("http://") || source.starts_with("https://") {
        let resp = reqwest::get(source)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| fail(e.to_string()))?;
        resp.text().await.map_err(|e| fail(e.to_string()))
    } else {
        std::fs::read_to_string(source).map_err(|e| fail(e.to_string()))
    }
}

/// What the cluster says about Cilium.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CiliumStatus {
    /// `None` when the agent DaemonSet does not exist.
    pub agent: Option<(i32, i32)>,
    /// Available replicas and desired replicas of the operator; `None` when absent.
    pub operator: Option<(i32, i32)>,
    pub config: BTreeMap<String, String>,
    /// Environment of the agent container (`KUBERNETES_SERVICE_HOST/PORT`).
    pub agent_env: BTreeMap<String, String>,
}

impl CiliumStatus {
    /// Installed, every agent ready and the operator available.
    pub fn healthy(&self) -> bool {
        matches!(self.agent, Some((desired, ready)) if desired > 0 && ready == desired)
            && matches!(self.operator, Some((avail, _)) if avail >= 1)
    }

    /// Differences between the running configuration and what the install asked for.
    pub fn config_mismatches(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        let mut out = Vec::new();
        let expect = |helm: &str, key: &str, actual: Option<&String>, out: &mut Vec<String>| {
            if let Some(want) = values.get(helm)
                && actual.map(|a| a.trim_matches('"')) != Some(want.as_str())
            {
                out.push(format!(
                    "{helm}={want} but {key} is {}",
                    actual
                        .map(|a| format!("\"{a}\""))
                        .unwrap_or_else(|| "not set".into())
                ));
            }
        };
        expect(
            "kubeProxyReplacement",
            "cilium-config kube-proxy-replacement",
            self.config.get("kube-proxy-replacement"),
            &mut out,
        );
        expect("MTU", "cilium-config mtu", self.config.get("mtu"), &mut out);
        expect(
            "ipam.mode",
            "cilium-config ipam",
            self.config.get("ipam"),
            &mut out,
        );
        expect(
            "gatewayAPI.enabled",
            "cilium-config enable-gateway-api",
            self.config.get("enable-gateway-api"),
            &mut out,
        );
        expect(
            "k8sServiceHost",
            "the agent's KUBERNETES_SERVICE_HOST",
            self.agent_env.get("KUBERNETES_SERVICE_HOST"),
            &mut out,
        );
        expect(
            "k8sServicePort",
            "the agent's KUBERNETES_SERVICE_PORT",
            self.agent_env.get("KUBERNETES_SERVICE_PORT"),
            &mut out,
        );
        out
    }
}

/// Read the agent DaemonSet, the operator Deployment and `cilium-config`.
pub async fn status(kube: &KubeClient) -> Result<CiliumStatus, KubeError> {
    let c = kube.client();
    let mut s = CiliumStatus::default();
    if let Some(ds) = Api::<DaemonSet>::namespaced(c.clone(), NAMESPACE)
        .get_opt(AGENT)
        .await?
    {
        let st = ds.status.clone().unwrap_or_default();
        s.agent = Some((st.desired_number_scheduled, st.number_ready));
        if let Some(container) = ds
            .spec
            .as_ref()
            .and_then(|sp| sp.template.spec.as_ref())
            .and_then(|p| p.containers.first())
        {
            for e in container.env.iter().flatten() {
                if let Some(v) = &e.value {
                    s.agent_env.insert(e.name.clone(), v.clone());
                }
            }
        }
    }
    if let Some(d) = Api::<Deployment>::namespaced(c.clone(), NAMESPACE)
        .get_opt(OPERATOR)
        .await?
    {
        let avail = d
            .status
            .as_ref()
            .and_then(|st| st.available_replicas)
            .unwrap_or(0);
        let want = d.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
        s.operator = Some((avail, want));
    }
    if let Some(cm) = Api::<ConfigMap>::namespaced(c, NAMESPACE)
        .get_opt(CONFIG)
        .await?
    {
        s.config = cm.data.unwrap_or_default();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatches_name_the_helm_value_and_the_running_key() {
        let values = crate::model::lab::default_cilium_values();
        let mut s = CiliumStatus {
            agent: Some((5, 5)),
            operator: Some((1, 1)),
            ..Default::default()
        };
        s.config
            .insert("kube-proxy-replacement".into(), "true".into());
        s.config.insert("ipam".into(), "kubernetes".into());
        s.config.insert("enable-gateway-api".into(), "true".into());
        s.agent_env
            .insert("KUBERNETES_SERVICE_HOST".into(), "localhost".into());
        s.agent_env
            .insert("KUBERNETES_SERVICE_PORT".into(), "7445".into());
        assert_eq!(
            s.config_mismatches(&values),
            ["MTU=1450 but cilium-config mtu is not set"]
        );
        s.config.insert("mtu".into(), "1450".into());
        assert!(s.config_mismatches(&values).is_empty());
        assert!(s.healthy());
        s.agent = Some((5, 4));
        assert!(!s.healthy());
    }
}

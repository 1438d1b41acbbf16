//! Objects a scenario creates in the cluster (probe pods, the chaos canary) and deletes
//! again: awaited on the normal path ([`Workload::remove`]), and from `Drop` on every other
//! path (an error return, a timeout, a cancelled future). The namespace is created when
//! missing (labelled `app.kubernetes.io/managed-by: clusterproof`) and left in place: a
//! namespace takes a while to terminate, and a check that runs right after another (the chaos
//! gate after `verify`) must not find it terminating; one the user prepared (quotas,
//! pod-security labels) is never touched.

use harness::kube::{KubeClient, KubeError};
use serde_json::{Value, json};

pub(crate) const MANAGER: &str = "clusterproof";

/// The port agnhost `netexec` serves HTTP on in the probe pods.
pub(crate) const NETEXEC_PORT: u16 = 8080;

/// The control-plane taint probe pods tolerate: pod networking on control planes matters too.
pub(crate) const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// The pod spec of a probe: agnhost `netexec` (image from the lab, for mirrors) serving HTTP,
/// ready once `/healthz` answers, tolerating the control-plane taint, stopped at once.
/// `affinity` places it.
pub(crate) fn netexec_pod_spec(image: &str, affinity: Value) -> Value {
    json!({
        "affinity": affinity,
        "tolerations": [{"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{
            "name": "netexec", "image": image,
            "args": ["netexec", format!("--http-port={NETEXEC_PORT}"), "--udp-port=-1"],
            "ports": [{"name": "http", "containerPort": NETEXEC_PORT, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": NETEXEC_PORT}, "periodSeconds": 1},
        }],
        "terminationGracePeriodSeconds": 0,
    })
}

/// A Service named `name` in front of the probe pods labelled `labels`.
pub(crate) fn netexec_service(name: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": NETEXEC_PORT, "targetPort": NETEXEC_PORT, "protocol": "TCP"}]},
    })
}

pub(crate) struct Workload {
    kube: KubeClient,
    ns: String,
    /// (apiVersion, kind, name) in creation order.
    objects: Vec<(String, String, String)>,
}

impl Workload {
    /// Use `ns`, creating it (labelled as ours) if it does not exist.
    pub async fn in_namespace(kube: &KubeClient, ns: &str) -> Result<Workload, KubeError> {
        let napi: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(kube.client());
        let existed = napi.get_opt(ns).await?.is_some();
        if !existed {
            kube.apply(
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"app.kubernetes.io/managed-by": MANAGER}}}),
                MANAGER,
            )
            .await?;
        }
        Ok(Workload {
            kube: kube.clone(),
            ns: ns.to_string(),
            objects: Vec::new(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Server-side apply `obj` into the namespace, remembering it for deletion.
    pub async fn apply(&mut self, mut obj: Value) -> Result<(), KubeError> {
        obj["metadata"]["namespace"] = json!(self.ns);
        let key = (
            obj["apiVersion"].as_str().unwrap_or_default().to_string(),
            obj["kind"].as_str().unwrap_or_default().to_string(),
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        if !self.objects.contains(&key) {
            self.objects.push(key);
        }
        self.kube.apply(&obj, MANAGER).await.map(|_| ())
    }

    /// Delete everything, newest first, and wait for the requests to be answered.
    pub async fn remove(mut self) {
        let (kube, ns, objects) = self.take();
        delete_all(kube, ns, objects).await;
    }

    fn take(&mut self) -> (KubeClient, String, Vec<(String, String, String)>) {
        (
            self.kube.clone(),
            self.ns.clone(),
            std::mem::take(&mut self.objects),
        )
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let (kube, ns, objects) = self.take();
        if !objects.is_empty()
            && let Ok(h) = tokio::runtime::Handle::try_current()
        {
            h.spawn(delete_all(kube, ns, objects));
        }
    }
}

async fn delete_all(kube: KubeClient, ns: String, objects: Vec<(String, String, String)>) {
    use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind};
    let dp = DeleteParams::background();
    for (api_version, kind, name) in objects.iter().rev() {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let ar = ApiResource::from_gvk(&gvk);
        let api: kube::Api<DynamicObject> = kube::Api::namespaced_with(kube.client(), &ns, &ar);
        if let Err(e) = api.delete(name, &dp).await {
            tracing::debug!("deleting {kind} {ns}/{name}: {e}");
        }
    }
}

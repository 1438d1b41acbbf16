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

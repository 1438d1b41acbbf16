//! The twin's Omni infra provider for Proxmox, and the physics after it: a machine request
//! becomes a VM on the twin Proxmox (node and storage chosen as the real provider does), the VM
//! boots, resolves the Omni name through *its host's* resolver, and joins over SideroLink only
//! if it got Omni's LAN address (`shared/reference/omni.md` §1, §9; DESIGN §5 "Physics").

use std::net::IpAddr;
use std::time::Duration;

use harness::dns::DnsClient;
use harness::model::machine_class::parse_provider_data;
use harness::model::selector::StorageSelector;

use crate::proxmox::VmRequest;

/// The machine UUID the provider generates for a request (deterministic in the twin, so runs
/// are reproducible): a v4-shaped UUID from the request id.
pub fn machine_uuid(request_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(request_id.as_bytes());
    let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

/// The VM the provider would create for a request's providerdata (`syncVM`, omni.md §9.5),
/// or the provider's error text.
pub fn vm_request(request_id: &str, set_id: &str, providerdata: &str) -> Result<VmRequest, String> {
    let (pd, findings) = parse_provider_data(request_id, providerdata);
    let pd = pd.ok_or_else(|| {
        findings
            .first()
            .map(|f| f.message.clone())
            .unwrap_or_else(|| "invalid providerdata".into())
    })?;
    let selector_text = pd
        .storage_selector
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_default();
    // cel-go's check errors, as the provider reports them.
    let selector = StorageSelector::compile(&selector_text)
        .map_err(|e| format!("ERROR: <input>:1:{}: {e}", e.column().unwrap_or(1)))?;
    Ok(VmRequest {
        name: request_id.to_string(),
        uuid: machine_uuid(request_id),
        cores: pd
            .cores
            .as_ref()
            .and_then(|c| u64::try_from(c.value).ok())
            .unwrap_or(1),
        memory_mib: pd.memory_mib(),
        disk_gib: pd.disk_gib(),
        selector,
        pin: pd.node.as_ref().map(|n| n.value.clone()),
        tag: format!("machine-request.{set_id}"),
    })
}

/// Where the twin's resolvers are, to emulate what a VM's DNS answers.
#[derive(Debug, Clone, Copy)]
pub struct Resolvers {
    /// The twin's LAN view (the Unifi gateway of the plan).
    pub lan: std::net::SocketAddr,
    /// The twin's public view: what any resolver outside the LAN answers.
    pub public: std::net::SocketAddr,
}

impl Resolvers {
    /// What a VM whose host resolves through `host_dns` gets for `name`. The LAN resolver's
    /// address is asked on the LAN view; any other resolver (1.1.1.1, 8.8.8.8: the public
    /// internet) is answered by the public view — never contacted itself.
    pub async fn resolve_as_vm(&self, host_dns: &[String], name: &str) -> Option<IpAddr> {
        let first = host_dns.first()?;
        let server = if first.parse::<IpAddr>().ok() == Some(self.lan.ip()) {
            self.lan
        } else {
            self.public
        };
        // A booting machine keeps asking until it gets an answer (a lost UDP datagram is
        // retried, as any resolver does; Talos never gives up); a wrong answer is an answer.
        // Bounded here so a twin whose DNS server is gone does not spin forever.
        let client = DnsClient::new(server, Duration::from_secs(1));
        for _ in 0..30 {
            if let Ok(answer) = client.lookup(name).await {
                return answer.into_iter().next();
            }
        }
        None
    }
}

/// The CNI physics: a node's CNI becomes ready when a Cilium agent pod (`k8s-app=cilium`) runs
/// on it, and stops being ready when none does — observed with a watch on the twin's own
/// Kubernetes API, as a node would notice its CNI config appear.
pub async fn cni_physics(kube: std::sync::Arc<crate::kube::KubeTwin>) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    harness::proxmox::tls::install_default_provider();
    let client = match client_for(&kube).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("twin CNI physics cannot reach the twin's API: {e}");
            return;
        }
    };
    let pods: ::kube::Api<Pod> = ::kube::Api::namespaced(client, "kube-system");
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(pods, watcher::Config::default().labels("k8s-app=cilium")),
    )
    .touched_objects()
    .default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut ready: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    while let Some(ev) = stream.next().await {
        if ev.is_err() {
            continue;
        }
        let running: std::collections::BTreeSet<String> = reader
            .state()
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect();
        for node in running.difference(&ready) {
            let _ = kube.set_cni_ready(node, true);
        }
        for node in ready.difference(&running) {
            let _ = kube.set_cni_ready(node, false);
        }
        ready = running;
    }
}

/// A kube-rs client for the twin's own API server (as its components would have; their
/// requests are not counted as client requests).
pub async fn client_for(kube: &crate::kube::KubeTwin) -> Result<::kube::Client, String> {
    let kc = ::kube::config::Kubeconfig::from_yaml(&kube.component_kubeconfig_yaml())
        .map_err(|e| e.to_string())?;
    let mut cfg = ::kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    cfg.default_retry = false;
    ::kube::Client::try_from(cfg).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_uuid_shaped() {
        let a = machine_uuid("talos-prod-01-workers-b5ndt4");
        assert_eq!(a, machine_uuid("talos-prod-01-workers-b5ndt4"));
        assert_ne!(a, machine_uuid("talos-prod-01-workers-zq9vxm"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4') && parts[3].starts_with('8'));
    }

    #[test]
    fn providerdata_becomes_the_vm_and_bad_selectors_fail_like_cel_go() {
        let pd = "cores: 8\nsockets: 1\nmemory: 16384\ndisk_size: 100\nstorage_selector: name == \"vm_ssd\"\n";
        let r = vm_request("c-workers-abc123", "c-workers", pd).unwrap();
        assert_eq!(
            (r.cores, r.memory_mib, r.disk_gib, r.tag.as_str()),
            (8, 16384, 100, "machine-request.c-workers")
        );
        let e = vm_request(
            "x",
            "s",
            "cores: 1\nmemory: 2048\ndisk_size: 5\nstorage_selector: type == \"rbd\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("ERROR: <input>:1:1:"), "{e}");
    }
}

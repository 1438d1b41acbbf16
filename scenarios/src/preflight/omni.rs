//! `preflight::omni` — Omni is reachable with clusterproof's key, and the Proxmox infra
//! provider is registered, connected and healthy.
//!
//! Proves (deployment plan): Current State "Proxmox Provider running on Foxtrot LXC"; red flag
//! "Provider disconnected → service account key expired".
//!
//! `omnictl get infraprovidercombinedstatus <provider id> -o json` answers all three: the call
//! itself proves reachability and authentication; `spec.health.connected`, `initialized` and
//! `error` are the provider's health (`shared/reference/omni.md` §5.4).

use futures::future::BoxFuture;
use harness::omni::OmniError;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct Omni;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "preflight::omni",
    module: module_path!(),
    phase: Phase::Preflight,
    proves: "Red flag: Provider disconnected → service account key expired (Omni reachable, provider connected and healthy)",
    needs: &[Need::Spec, Need::Omni],
    after: &[],
};

impl Scenario for Omni {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    let omni = cx.lab.omni()?;
    let id = &cx.lab.spec.lab.omni.provider_id;
    let status = match omni.get_one("infraprovidercombinedstatus", id).await {
        Ok(s) => s,
        Err(e @ OmniError::Unauthenticated { .. }) => {
            return Ok(Outcome::new(Verdict::Fail, format!("Omni does not accept clusterproof's key: {e}"))
                .remediation("the session/key expired: create a new service account key (`omnictl serviceaccount create clusterproof --role Operator`) and put it where omni.service_account_key_env/_file says"));
        }
        Err(e @ OmniError::Spawn { .. }) => return Ok(Outcome::error(e.to_string())),
        Err(e) => {
            return Ok(Outcome::new(
                Verdict::Fail,
                format!("cannot read the provider's status from Omni: {e}"),
            ));
        }
    };
    let Some(status) = status else {
        return Ok(Outcome::new(Verdict::Fail, format!("Omni knows no infra provider \"{id}\""))
            .remediation(format!("register it (`omnictl infraprovider create {id}`) and start the provider with the key that prints, or fix omni.provider_id in the lab file")));
    };
    let health = &status.spec["health"];
    let connected = health["connected"].as_bool().unwrap_or(false);
    let initialized = health["initialized"].as_bool().unwrap_or(false);
    let error = health["error"].as_str().unwrap_or("").to_string();
    let name = status.spec["name"].as_str().unwrap_or("?").to_string();
    let version = status.spec["version"].as_str().unwrap_or("?").to_string();
    let evidence = format!(
        "provider {id} ({name} {version}): connected={connected}, initialized={initialized}, error={error:?}"
    );
    cx.events.observe(evidence.clone());
    if connected && initialized && error.is_empty() {
        return Ok(Outcome::pass(format!(
            "Omni reachable and authenticated; provider {id} connected and healthy"
        ))
        .evidence(evidence));
    }
    let mut o = Outcome::new(
        Verdict::Fail,
        if !connected {
            format!("infra provider {id} is disconnected from Omni (no heartbeat)")
        } else if !initialized {
            format!("infra provider {id} has not initialized (no InfraProviderStatus)")
        } else {
            format!("infra provider {id} reports an error: {error}")
        },
    )
    .evidence(evidence);
    o.remediation = Some(format!(
        "red flag \"Provider disconnected → service account key expired\": on the provider host (the Foxtrot LXC) read `docker logs omni-provider-proxmox-provider-1`; if it says Unauthenticated, create a new provider key with `omnictl infraprovider create {id}` and restart the provider with the printed OMNI_SERVICE_ACCOUNT_KEY"
    ));
    Ok(o)
}

//! The cluster-wide chaos lock: a `coordination.k8s.io/v1` Lease taken by *create* (so two
//! runs racing for it cannot both win), renewed while the run lives, and expiring when its
//! holder dies (`renewTime + leaseDurationSeconds` in the past: a later run may take it over,
//! by an update conditioned on the expired Lease's `resourceVersion`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use super::journal::LockRef;

pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "clusterproof-chaos";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another chaos run holds the cluster lock (Lease {NAMESPACE}/{NAME}): {holder}, since {since}, last renewed {renewed}; wait for it to finish (or, if it died, for the lock to expire after {lease}s)"
    )]
    Held {
        holder: String,
        since: String,
        renewed: String,
        lease: i32,
    },
    #[error("cannot take the cluster lock (Lease {NAMESPACE}/{NAME}): {0}")]
    Api(String),
}

/// A held lock: renewed in the background until [`LockGuard::release`] (or drop, which
/// stops renewing so the Lease expires).
pub struct LockGuard {
    client: kube::Client,
    pub holder: String,
    renew: tokio::task::JoinHandle<()>,
    lost: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// Who takes the lock: `clusterproof pid <pid> on <host> at <time>` — enough for a person to
/// find the run, and for [`holder_is_dead_here`] to tell a killed run's lock.
pub fn holder_identity() -> String {
    format!(
        "clusterproof pid {} on {} at {}",
        std::process::id(),
        hostname(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether `holder` names a clusterproof process on this host that no longer runs (killed).
pub fn holder_is_dead_here(holder: &str) -> bool {
    let Some(rest) = holder.strip_prefix("clusterproof pid ") else {
        return false;
    };
    let mut words = rest.split(' ');
    let (Some(pid), Some("on"), Some(host)) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == hostname() && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// The holder of the lock, if it is held.
pub async fn holder(client: kube::Client) -> Result<Option<String>, LockError> {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    Ok(api
        .get_opt(NAME)
        .await
        .map_err(api_err)?
        .filter(|l| !expired(l))
        .and_then(|l| l.spec.and_then(|s| s.holder_identity)))
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(l: &Lease) -> bool {
    let Some(spec) = &l.spec else { return true };
    let secs = spec.lease_duration_seconds.unwrap_or(0).max(0) as i64;
    let Some(last) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    last.0.as_second() + secs < Timestamp::now().as_second()
}

fn spec(holder: &str, lease: Duration) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(lease.as_secs().max(1) as i32),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        lease_transitions: Some(0),
        ..Default::default()
    }
}

fn held(l: &Lease) -> LockError {
    let s = l.spec.clone().unwrap_or_default();
    LockError::Held {
        holder: s
            .holder_identity
            .unwrap_or_else(|| "(no holder identity)".into()),
        since: s
            .acquire_time
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| "?".into()),
        renewed: s
            .renew_time
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| "?".into()),
        lease: s.lease_duration_seconds.unwrap_or(0),
    }
}

fn api_err(e: kube::Error) -> LockError {
    LockError::Api(e.to_string())
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Take the lock for `holder`, or say who has it.
pub async fn acquire(
    client: kube::Client,
    holder: &str,
    lease: Duration,
) -> Result<LockGuard, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let fresh = Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "clusterproof".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(spec(holder, lease)),
    };
    let taken = match api.create(&PostParams::default(), &fresh).await {
        Ok(l) => l,
        Err(e) if is_status(&e, 409) => {
            let current = api.get(NAME).await.map_err(api_err)?;
            if !expired(&current) {
                return Err(held(&current));
            }
            // Take over an expired lock; a concurrent taker makes this a 409 Conflict.
            let mut next = current.clone();
            let transitions = current
                .spec
                .as_ref()
                .and_then(|s| s.lease_transitions)
                .unwrap_or(0);
            let mut s = spec(holder, lease);
            s.lease_transitions = Some(transitions + 1);
            next.spec = Some(s);
            match api.replace(NAME, &PostParams::default(), &next).await {
                Ok(l) => l,
                Err(e) if is_status(&e, 409) => {
                    let now_held = api.get(NAME).await.map_err(api_err)?;
                    return Err(held(&now_held));
                }
                Err(e) => return Err(api_err(e)),
            }
        }
        Err(e) => return Err(api_err(e)),
    };
    let (lost_tx, _) = tokio::sync::watch::channel(None);
    let lost = Arc::new(lost_tx);
    let renew = tokio::spawn(renew_loop(
        api.clone(),
        taken,
        holder.to_string(),
        lease,
        Arc::clone(&lost),
    ));
    Ok(LockGuard {
        client,
        holder: holder.to_string(),
        renew,
        lost,
    })
}

async fn renew_loop(
    api: Api<Lease>,
    mut lease_obj: Lease,
    holder: String,
    lease: Duration,
    lost: Arc<tokio::sync::watch::Sender<Option<String>>>,
) {
    let every = (lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        if let Some(s) = lease_obj.spec.as_mut() {
            s.renew_time = Some(now());
        }
        match api.replace(NAME, &PostParams::default(), &lease_obj).await {
            Ok(l) => lease_obj = l,
            Err(e) => {
                // Someone else holds it now (our lease expired), or it was deleted.
                let why = match api.get(NAME).await {
                    Ok(l)
                        if l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                            == Some(holder.as_str()) =>
                    {
                        lease_obj = l;
                        tracing::warn!("renewing the chaos lock failed, retrying: {e}");
                        continue;
                    }
                    Ok(l) => held(&l).to_string(),
                    Err(_) => format!("the lock Lease is gone ({e})"),
                };
                lost.send_replace(Some(why));
                return;
            }
        }
    }
}

impl LockGuard {
    pub fn reference(&self) -> LockRef {
        LockRef {
            namespace: NAMESPACE.into(),
            name: NAME.into(),
            holder: self.holder.clone(),
        }
    }

    /// Why the lock was lost, if it was (the experiment must not go on).
    pub fn lost(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Stop renewing and delete the Lease.
    pub async fn release(self) -> Result<(), LockError> {
        self.renew.abort();
        release_if_held(self.client.clone(), &self.holder).await
    }
}

/// Delete the lock if `holder` holds it (a recovery releases a killed run's lock this way).
pub async fn release_if_held(client: kube::Client, holder: &str) -> Result<(), LockError> {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let current = match api.get_opt(NAME).await.map_err(api_err)? {
        Some(l) => l,
        None => return Ok(()),
    };
    if current
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        != Some(holder)
    {
        return Ok(());
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: current.metadata.resource_version.clone(),
            uid: current.metadata.uid.clone(),
        }),
        ..Default::default()
    };
    match api.delete(NAME, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(api_err(e)),
    }
}

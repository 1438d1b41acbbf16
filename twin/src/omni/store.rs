//! The resource store: COSI-like state with versions, teardown and finalizers, a change feed,
//! and the few Omni controllers the twin runs itself (omni.md §1):
//!
//! - a MachineSet with a machine-class allocation gets a MachineRequestSet (same id, owner
//!   `MachineProvisionController`) copied from the class's `autoprovision`, Talos version
//!   from the Cluster;
//! - a MachineRequestSet that wants N machines has N MachineRequests
//!   `<set id>-<6 chars>` in `infra-provider`, labelled with the provider and the set;
//! - tearing down a Cluster tears down everything labelled with it; tearing down a
//!   MachineSet tears down its MachineRequestSet, which tears down its MachineRequests.
//!
//! Teardown follows COSI: the phase becomes `tearingDown`, and the resource is destroyed
//! once its finalizers are gone (the infra provider holds MachineRequests with
//! `<provider id>.ProvisionController` until the VM is deprovisioned).
//!
//! Controllers run synchronously after every change, so a `template sync` has its
//! MachineRequests by the time it returns.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resource::{Change, EventKind, Phase, Resource};
use super::types::{NS_DEFAULT, NS_INFRA_PROVIDER, t};

pub const LABEL_CLUSTER: &str = "omni.sidero.dev/cluster";
pub const LABEL_MACHINE_SET: &str = "omni.sidero.dev/machine-set";
pub const LABEL_REQUEST_SET: &str = "omni.sidero.dev/machine-request-set";
pub const LABEL_PROVIDER: &str = "omni.sidero.dev/infra-provider-id";
pub const LABEL_ROLE_CONTROLPLANE: &str = "omni.sidero.dev/role-controlplane";
pub const LABEL_ROLE_WORKER: &str = "omni.sidero.dev/role-worker";

const CLUSTER_FINALIZER: &str = "ClusterDestroyStatusController";
const MACHINE_SET_FINALIZER: &str = "MachineSetStatusController";
const REQUEST_SET_FINALIZER: &str = "MachineRequestSetStatusController";
const REQUEST_SET_OWNER: &str = "MachineProvisionController";
const REQUEST_SET_STATUS_OWNER: &str = "MachineRequestSetStatusController";

/// Alphabet of MachineRequest id suffixes (k8s `rand.String`, omni.md §5.3).
const ID_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Resources that carry the cluster name as their id rather than a label.
const CLUSTER_ID_TYPES: &[&str] = &[
    t::CLUSTER_STATUS,
    t::LOAD_BALANCER_STATUS,
    t::KUBERNETES_UPGRADE_STATUS,
    t::TALOS_UPGRADE_STATUS,
    "ClusterKubernetesNodes.omni.sidero.dev",
    "ClusterSecrets.omni.sidero.dev",
];

type Key = (String, String, String);

fn key(kind: &str, ns: &str, id: &str) -> Key {
    (kind.to_string(), ns.to_string(), id.to_string())
}

pub struct Store {
    resources: BTreeMap<Key, Resource>,
    tx: broadcast::Sender<Change>,
    rng: u64,
    mutations: u64,
}

impl Store {
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(16_384);
        let seed = Utc::now().timestamp_nanos_opt().unwrap_or(7) as u64
            ^ u64::from(std::process::id()) << 32;
        Store {
            resources: BTreeMap::new(),
            tx,
            rng: seed | 1,
            mutations: 0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    pub fn get(&self, kind: &str, ns: &str, id: &str) -> Option<&Resource> {
        self.resources.get(&key(kind, ns, id))
    }

    /// Every resource of a type, by namespace then id (the order COSI lists them in).
    pub fn list(&self, kind: &str) -> Vec<Resource> {
        self.iter_kind(kind).cloned().collect()
    }

    fn iter_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        let start = (kind.to_string(), String::new(), String::new());
        self.resources
            .range(start..)
            .take_while(move |(k, _)| k.0 == kind)
            .map(|(_, v)| v)
    }

    /// Resources of a type in one namespace.
    pub fn list_ns(&self, kind: &str, ns: &str) -> Vec<Resource> {
        self.iter_kind(kind)
            .filter(|r| r.metadata.namespace == ns)
            .cloned()
            .collect()
    }

    fn emit(&mut self, event: EventKind, resource: &Resource) {
        self.mutations += 1;
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(Change {
            event,
            resource: resource.clone(),
        });
    }

    // ---- public mutations: change, then let the controllers react ----------------------

    /// Create or update a resource (version, created and updated are the store's). Returns
    /// what is stored now, or the last state if the change destroyed it.
    pub fn put(&mut self, r: Resource) -> Resource {
        let k = key(&r.metadata.kind, &r.metadata.namespace, &r.metadata.id);
        let out = self.put_raw(r);
        self.reconcile();
        self.resources.get(&k).cloned().unwrap_or(out)
    }

    /// Start tearing a resource down (destroyed at once when it has no finalizers).
    pub fn teardown(&mut self, kind: &str, ns: &str, id: &str) -> Option<Resource> {
        let out = self.teardown_raw(kind, ns, id);
        self.reconcile();
        out
    }

    /// Remove a resource now, finalizers or not.
    pub fn destroy(&mut self, kind: &str, ns: &str, id: &str) -> Option<Resource> {
        let out = self.destroy_raw(kind, ns, id);
        self.reconcile();
        out
    }

    // ---- raw mutations ------------------------------------------------------------------

    fn put_raw(&mut self, mut r: Resource) -> Resource {
        let k = key(&r.metadata.kind, &r.metadata.namespace, &r.metadata.id);
        let now = Utc::now();
        match self.resources.get(&k) {
            Some(old) => {
                // A resource being torn down never goes back to running.
                if old.metadata.phase == Phase::TearingDown {
                    r.metadata.phase = Phase::TearingDown;
                }
                if old.same_content(&r) {
                    return old.clone();
                }
                r.metadata.version = old.metadata.version + 1;
                r.metadata.created = old.metadata.created;
                r.metadata.updated = now;
                if r.metadata.phase == Phase::TearingDown && r.metadata.finalizers.is_empty() {
                    self.resources.remove(&k);
                    self.emit(EventKind::Destroyed, &r);
                    return r;
                }
                self.resources.insert(k, r.clone());
                self.emit(EventKind::Updated, &r);
                r
            }
            None => {
                r.metadata.version = 1;
                r.metadata.created = now;
                r.metadata.updated = now;
                if r.metadata.phase == Phase::TearingDown && r.metadata.finalizers.is_empty() {
                    return r;
                }
                self.resources.insert(k, r.clone());
                self.emit(EventKind::Created, &r);
                r
            }
        }
    }

    fn teardown_raw(&mut self, kind: &str, ns: &str, id: &str) -> Option<Resource> {
        let k = key(kind, ns, id);
        let mut r = self.resources.get(&k)?.clone();
        if r.metadata.phase == Phase::TearingDown {
            return Some(r);
        }
        r.metadata.phase = Phase::TearingDown;
        r.metadata.version += 1;
        r.metadata.updated = Utc::now();
        if r.metadata.finalizers.is_empty() {
            self.resources.remove(&k);
            self.emit(EventKind::Destroyed, &r);
        } else {
            self.resources.insert(k, r.clone());
            self.emit(EventKind::Updated, &r);
        }
        Some(r)
    }

    fn destroy_raw(&mut self, kind: &str, ns: &str, id: &str) -> Option<Resource> {
        let r = self.resources.remove(&key(kind, ns, id))?;
        self.emit(EventKind::Destroyed, &r);
        Some(r)
    }

    fn set_finalizer(&mut self, r: &Resource, finalizer: &str, present: bool) {
        let has = r.metadata.finalizers.iter().any(|f| f == finalizer);
        if has == present {
            return;
        }
        let mut n = r.clone();
        if present {
            n.metadata.finalizers.push(finalizer.to_string());
        } else {
            n.metadata.finalizers.retain(|f| f != finalizer);
        }
        self.put_raw(n);
    }

    // ---- controllers ---------------------------------------------------------------------

    /// Run the controllers until nothing changes (bounded).
    pub fn reconcile(&mut self) {
        for _ in 0..32 {
            let before = self.mutations;
            self.reconcile_clusters();
            self.reconcile_machine_sets();
            self.reconcile_request_sets();
            if self.mutations == before {
                return;
            }
        }
        tracing::warn!("omni twin: controllers did not settle after 32 rounds");
    }

    fn reconcile_clusters(&mut self) {
        for cluster in self.list(t::CLUSTER) {
            let name = cluster.id().to_string();
            match cluster.metadata.phase {
                Phase::Running => self.set_finalizer(&cluster, CLUSTER_FINALIZER, true),
                Phase::TearingDown => {
                    let deps: Vec<Resource> = self
                        .resources
                        .values()
                        .filter(|r| r.metadata.kind != t::CLUSTER)
                        .filter(|r| {
                            (r.metadata.namespace == NS_DEFAULT
                                && r.label(LABEL_CLUSTER) == Some(name.as_str()))
                                || (CLUSTER_ID_TYPES.contains(&r.metadata.kind.as_str())
                                    && r.metadata.id == name)
                        })
                        .cloned()
                        .collect();
                    if deps.is_empty() {
                        self.set_finalizer(&cluster, CLUSTER_FINALIZER, false);
                    }
                    for d in deps {
                        if d.metadata.phase == Phase::Running {
                            self.teardown_raw(d.kind(), d.namespace(), d.id());
                        }
                    }
                }
            }
        }
    }

    fn reconcile_machine_sets(&mut self) {
        for ms in self.list(t::MACHINE_SET) {
            let id = ms.id().to_string();
            match ms.metadata.phase {
                Phase::Running => {
                    self.set_finalizer(&ms, MACHINE_SET_FINALIZER, true);
                    match self.desired_request_set(&ms) {
                        Some(want) => {
                            self.put_raw(want);
                        }
                        None => {
                            if self
                                .get(t::MACHINE_REQUEST_SET, NS_DEFAULT, &id)
                                .is_some_and(|r| r.metadata.owner == REQUEST_SET_OWNER)
                            {
                                self.teardown_raw(t::MACHINE_REQUEST_SET, NS_DEFAULT, &id);
                            }
                        }
                    }
                }
                Phase::TearingDown => {
                    let mut deps: Vec<Resource> = self
                        .resources
                        .values()
                        .filter(|r| r.metadata.kind != t::MACHINE_SET)
                        .filter(|r| {
                            (r.metadata.namespace == NS_DEFAULT
                                && r.label(LABEL_MACHINE_SET) == Some(id.as_str()))
                                || ((r.metadata.kind == t::MACHINE_REQUEST_SET
                                    || r.metadata.kind == t::MACHINE_SET_STATUS)
                                    && r.metadata.id == id)
                        })
                        .cloned()
                        .collect();
                    deps.retain(|d| {
                        d.metadata.kind != t::MACHINE_REQUEST_SET
                            || d.metadata.owner == REQUEST_SET_OWNER
                    });
                    if deps.is_empty() {
                        self.set_finalizer(&ms, MACHINE_SET_FINALIZER, false);
                    }
                    for d in deps {
                        if d.metadata.phase == Phase::Running {
                            self.teardown_raw(d.kind(), d.namespace(), d.id());
                        }
                    }
                }
            }
        }
        // Request sets whose machine set is gone.
        for mrs in self.list(t::MACHINE_REQUEST_SET) {
            if mrs.metadata.owner == REQUEST_SET_OWNER
                && mrs.metadata.phase == Phase::Running
                && self.get(t::MACHINE_SET, NS_DEFAULT, mrs.id()).is_none()
            {
                self.teardown_raw(t::MACHINE_REQUEST_SET, NS_DEFAULT, mrs.id());
            }
        }
    }

    /// The MachineRequestSet a machine-class MachineSet asks for, when its class exists and
    /// auto-provisions.
    fn desired_request_set(&self, ms: &Resource) -> Option<Resource> {
        let alloc = ms
            .spec
            .get("machineallocation")
            .filter(|a| a.is_object())
            .or_else(|| ms.spec.get("machineclass").filter(|a| a.is_object()))?;
        let class_name = alloc.get("name")?.as_str()?;
        let class = self.get(t::MACHINE_CLASS, NS_DEFAULT, class_name)?;
        let auto = class.spec.get("autoprovision").filter(|a| a.is_object())?;
        let count = alloc
            .get("machinecount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let talos = ms
            .label(LABEL_CLUSTER)
            .and_then(|c| self.get(t::CLUSTER, NS_DEFAULT, c))
            .and_then(|c| c.spec.get("talosversion"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let field = |k: &str, default: Value| auto.get(k).cloned().unwrap_or(default);
        let mut want = Resource::new(
            t::MACHINE_REQUEST_SET,
            NS_DEFAULT,
            ms.id(),
            json!({
                "providerid": field("providerid", json!("")),
                "machinecount": count,
                "talosversion": talos,
                "extensions": [],
                "kernelargs": field("kernelargs", json!([])),
                "metavalues": field("metavalues", json!([])),
                "providerdata": field("providerdata", json!("")),
                "grpctunnel": field("grpctunnel", json!(0)),
            }),
        )
        .with_owner(REQUEST_SET_OWNER);
        if let Some(old) = self.get(t::MACHINE_REQUEST_SET, NS_DEFAULT, ms.id()) {
            want.metadata.finalizers = old.metadata.finalizers.clone();
            want.metadata.labels = old.metadata.labels.clone();
            want.metadata.annotations = old.metadata.annotations.clone();
        }
        Some(want)
    }

    fn reconcile_request_sets(&mut self) {
        for mrs in self.list(t::MACHINE_REQUEST_SET) {
            let id = mrs.id().to_string();
            let requests: Vec<Resource> = self
                .iter_kind(t::MACHINE_REQUEST)
                .filter(|r| r.label(LABEL_REQUEST_SET) == Some(id.as_str()))
                .cloned()
                .collect();
            match mrs.metadata.phase {
                Phase::Running => {
                    self.set_finalizer(&mrs, REQUEST_SET_FINALIZER, true);
                    if self
                        .get(t::MACHINE_REQUEST_SET_STATUS, NS_DEFAULT, &id)
                        .is_none()
                    {
                        let st = Resource::new(
                            t::MACHINE_REQUEST_SET_STATUS,
                            NS_DEFAULT,
                            &id,
                            json!({}),
                        )
                        .with_owner(REQUEST_SET_STATUS_OWNER);
                        self.put_raw(st);
                    }
                    let want = mrs
                        .spec
                        .get("machinecount")
                        .and_then(Value::as_u64)
                        .unwrap_or(0) as usize;
                    let mut running: Vec<&Resource> = requests
                        .iter()
                        .filter(|r| r.metadata.phase == Phase::Running)
                        .collect();
                    if running.len() < want {
                        for _ in running.len()..want {
                            let req = self.new_request(&mrs);
                            self.put_raw(req);
                        }
                    } else if running.len() > want {
                        // Scale down the newest first.
                        running.sort_by(|a, b| {
                            b.metadata
                                .created
                                .cmp(&a.metadata.created)
                                .then_with(|| b.metadata.id.cmp(&a.metadata.id))
                        });
                        let extra: Vec<(String, String)> = running[..running.len() - want]
                            .iter()
                            .map(|r| (r.metadata.namespace.clone(), r.metadata.id.clone()))
                            .collect();
                        for (ns, rid) in extra {
                            self.teardown_raw(t::MACHINE_REQUEST, &ns, &rid);
                        }
                    }
                }
                Phase::TearingDown => {
                    if requests.is_empty() {
                        self.destroy_raw(t::MACHINE_REQUEST_SET_STATUS, NS_DEFAULT, &id);
                        self.set_finalizer(&mrs, REQUEST_SET_FINALIZER, false);
                    }
                    for r in requests {
                        if r.metadata.phase == Phase::Running {
                            self.teardown_raw(t::MACHINE_REQUEST, r.namespace(), r.id());
                        }
                    }
                }
            }
        }
    }

    fn new_request(&mut self, mrs: &Resource) -> Resource {
        let id = loop {
            let candidate = format!("{}-{}", mrs.id(), self.suffix());
            if self
                .get(t::MACHINE_REQUEST, NS_INFRA_PROVIDER, &candidate)
                .is_none()
            {
                break candidate;
            }
        };
        let s = &mrs.spec;
        let get = |k: &str, d: Value| s.get(k).cloned().unwrap_or(d);
        let provider = s
            .get("providerid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Resource::new(
            t::MACHINE_REQUEST,
            NS_INFRA_PROVIDER,
            id,
            json!({
                "talosversion": get("talosversion", json!("")),
                "overlay": null,
                "extensions": get("extensions", json!([])),
                "kernelargs": get("kernelargs", json!([])),
                "metavalues": get("metavalues", json!([])),
                "providerdata": get("providerdata", json!("")),
                "grpctunnel": get("grpctunnel", json!(0)),
            }),
        )
        .with_label(LABEL_PROVIDER, provider)
        .with_label(LABEL_REQUEST_SET, mrs.id())
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn suffix(&mut self) -> String {
        (0..6)
            .map(|_| {
                let i = (self.next_random() % ID_ALPHABET.len() as u64) as usize;
                ID_ALPHABET[i] as char
            })
            .collect()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &mut Store) {
        s.put(Resource::new(
            t::MACHINE_CLASS,
            NS_DEFAULT,
            "cp",
            json!({"autoprovision": {"providerid": "p", "providerdata": "cores: 2\n"}}),
        ));
    }

    fn set(count: u64) -> Resource {
        Resource::new(
            t::MACHINE_SET,
            NS_DEFAULT,
            "c-control-planes",
            json!({"updatestrategy": 1, "machineallocation": {"name": "cp", "machinecount": count}}),
        )
        .with_label(LABEL_CLUSTER, "c")
    }

    #[test]
    fn machine_sets_scale_requests_up_and_down() {
        let mut s = Store::new();
        class(&mut s);
        s.put(Resource::new(
            t::CLUSTER,
            NS_DEFAULT,
            "c",
            json!({"talosversion": "1.11.5"}),
        ));
        s.put(set(3));
        let reqs = s.list(t::MACHINE_REQUEST);
        assert_eq!(reqs.len(), 3);
        for r in &reqs {
            let suffix = r.id().strip_prefix("c-control-planes-").unwrap();
            assert_eq!(suffix.len(), 6);
            assert!(suffix.bytes().all(|b| ID_ALPHABET.contains(&b)));
            assert_eq!(r.label(LABEL_PROVIDER), Some("p"));
            assert_eq!(r.spec["talosversion"], "1.11.5");
        }
        s.put(set(1));
        assert_eq!(s.list(t::MACHINE_REQUEST).len(), 1);
    }

    #[test]
    fn finalizers_hold_teardown_until_released() {
        let mut s = Store::new();
        class(&mut s);
        s.put(Resource::new(t::CLUSTER, NS_DEFAULT, "c", json!({})));
        s.put(set(1));
        let req = s.list(t::MACHINE_REQUEST).remove(0);
        s.put(req.clone().with_finalizer("p.ProvisionController"));
        s.teardown(t::CLUSTER, NS_DEFAULT, "c");
        let held = s
            .get(t::MACHINE_REQUEST, NS_INFRA_PROVIDER, req.id())
            .cloned()
            .unwrap();
        assert_eq!(held.metadata.phase, Phase::TearingDown);
        assert!(
            s.get(t::CLUSTER, NS_DEFAULT, "c").is_some(),
            "cluster waits for its machines"
        );
        let mut released = held.clone();
        released.metadata.finalizers.clear();
        s.put(released);
        assert!(s.list(t::MACHINE_REQUEST).is_empty());
        assert!(s.list(t::MACHINE_SET).is_empty());
        assert!(s.list(t::MACHINE_REQUEST_SET).is_empty());
        assert!(s.get(t::CLUSTER, NS_DEFAULT, "c").is_none());
    }

    #[test]
    fn versions_grow_only_on_change() {
        let mut s = Store::new();
        let r = Resource::new(t::CLUSTER_STATUS, NS_DEFAULT, "c", json!({"phase": 1}));
        assert_eq!(s.put(r.clone()).metadata.version, 1);
        assert_eq!(s.put(r.clone()).metadata.version, 1);
        let mut r2 = r;
        r2.spec = json!({"phase": 3});
        assert_eq!(s.put(r2).metadata.version, 2);
    }
}

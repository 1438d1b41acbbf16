//! The generic object store: any group/version/kind, namespaced or cluster-scoped, keyed by
//! (group, version, plural, namespace, name), with one global resourceVersion counter (as
//! etcd's revision backs every resource of a real API server) and, per resource type, a
//! bounded history of changes that watches replay. A watch from a resourceVersion older
//! than its type's history is answered with 410 Expired. The history is kept per type as
//! the API server's watch cache is (one `Cacher` per resource, each with its own window of
//! events, `k8s.io/apiserver/pkg/storage/cacher`): 500 kubelets renewing their Leases do not
//! push a pod watcher's resourceVersion out of the pods' window.
//!
//! Write semantics follow the API server's generic registry: server-set `uid`,
//! `creationTimestamp`, `generation` (bumped when anything outside metadata and status
//! changes), optimistic concurrency on `metadata.resourceVersion`, no-op updates that keep
//! the resourceVersion, the status subresource split, finalizers holding deletion, and
//! namespace deletion removing the namespace's objects. Versions of one group/kind are
//! stored separately (no conversion).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::defaults;
use super::patch::{json_patch, merge_patch};
use super::select::Filter;
use super::status::{ApiError, deleted_status};
use super::types::{Gvr, ResourceType, builtin_types};

/// Where one object lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub gvr: Gvr,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as the history keeps it.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    /// The object before the change (modifications and deletions).
    pub old: Option<Arc<Value>>,
    /// The object after the change; for deletions its final state at the deletion's
    /// resourceVersion.
    pub object: Arc<Value>,
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
}

/// The patch formats, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        match ct {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Options of a patch request.
#[derive(Clone, Debug, Default)]
pub struct PatchOpts {
    pub dry_run: bool,
    pub field_manager: Option<String>,
}

/// DeleteOptions preconditions.
#[derive(Clone, Debug, Default)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// Removed: the success `Status` and the final object.
    Gone(Value, Arc<Value>),
    /// Held by finalizers: the object, now carrying `deletionTimestamp`.
    Pending(Arc<Value>),
}

/// The default bound of each resource type's change history.
pub const HISTORY: usize = 10_000;

/// One resource type's window of changes.
#[derive(Default)]
struct TypeHistory {
    events: VecDeque<Event>,
    /// Every change of this type with a resourceVersion above this is still in `events`.
    compacted: u64,
}

pub struct Store {
    types: BTreeMap<Gvr, ResourceType>,
    objects: BTreeMap<ObjKey, Arc<Value>>,
    /// Secondary indexes the controllers read instead of scanning every object (the API
    /// server's informers index pods by node and objects by owner the same way).
    index: Index,
    /// Bumped by every creation, deletion and change of `ownerReferences`: what the garbage
    /// collector's verdicts depend on.
    ownership: u64,
    rv: u64,
    history: BTreeMap<Gvr, TypeHistory>,
    cap: usize,
    /// The last [`Store::compact`]: a type first changed after it starts its window here.
    compacted: u64,
    seq: u64,
    seed: String,
    next_service_ip: u32,
    notify: watch::Sender<u64>,
    /// What the `DefaultTolerationSeconds` admission writes (the twin's timing).
    pub default_toleration_secs: i64,
}

impl TypeHistory {
    /// Where the changes after `rv` start in `events`, or `Err(oldest)` when the window
    /// begins after `rv`.
    fn after(&self, rv: u64) -> Result<usize, u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        Ok(self.events.partition_point(|e| e.rv <= rv))
    }
}

/// The store's secondary indexes, kept by [`Store::commit`] (the one place objects change).
#[derive(Default)]
struct Index {
    pods_by_node: BTreeMap<String, std::collections::BTreeSet<ObjKey>>,
    by_controller: BTreeMap<String, std::collections::BTreeSet<ObjKey>>,
}

impl Index {
    fn entries(key: &ObjKey, obj: &Value) -> (Option<String>, Option<String>) {
        let node = (key.gvr.group.is_empty() && key.gvr.plural == "pods")
            .then(|| obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()))
            .flatten()
            .map(str::to_string);
        let owner = obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["controller"].as_bool() == Some(true))
            .and_then(|r| r["uid"].as_str())
            .map(str::to_string);
        (node, owner)
    }

    fn insert(&mut self, key: &ObjKey, obj: &Value) {
        let (node, owner) = Index::entries(key, obj);
        if let Some(n) = node {
            self.pods_by_node.entry(n).or_default().insert(key.clone());
        }
        if let Some(o) = owner {
            self.by_controller.entry(o).or_default().insert(key.clone());
        }
    }

    fn remove(&mut self, key: &ObjKey, obj: &Value) {
        let (node, owner) = Index::entries(key, obj);
        for (map, k) in [
            (&mut self.pods_by_node, node),
            (&mut self.by_controller, owner),
        ] {
            if let Some(k) = k
                && let Some(set) = map.get_mut(&k)
            {
                set.remove(key);
                if set.is_empty() {
                    map.remove(&k);
                }
            }
        }
    }
}

/// Current time as a Kubernetes `Time` (seconds precision).
pub fn now_time() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Current time as a Kubernetes `MicroTime`.
pub fn now_micro() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The namespaces a fresh cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v["metadata"][field].as_str().filter(|s| !s.is_empty())
}

impl Store {
    pub fn new(seed: String) -> Store {
        let (notify, _) = watch::channel(0);
        let mut s = Store {
            types: builtin_types()
                .into_iter()
                .map(|t| (t.gvr.clone(), t))
                .collect(),
            objects: BTreeMap::new(),
            index: Index::default(),
            ownership: 0,
            rv: 0,
            history: BTreeMap::new(),
            cap: HISTORY,
            compacted: 0,
            seq: 0,
            seed,
            next_service_ip: 0,
            notify,
            default_toleration_secs: super::defaults::DEFAULT_TOLERATION_SECONDS,
        };
        let ns = Gvr::new("", "v1", "namespaces");
        for name in INITIAL_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            if let Err(e) = s.create(&ns, "", obj, false) {
                tracing::error!("kube twin: cannot create namespace {name}: {e}");
            }
        }
        let svc = Gvr::new("", "v1", "services");
        let kubernetes = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}});
        if let Err(e) = s.create(&svc, "default", kubernetes, false) {
            tracing::error!("kube twin: cannot create the kubernetes service: {e}");
        }
        s
    }

    /// A receiver that sees the current resourceVersion after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn types(&self) -> &BTreeMap<Gvr, ResourceType> {
        &self.types
    }

    pub fn resource_type(&self, gvr: &Gvr) -> Result<ResourceType, ApiError> {
        self.types.get(gvr).cloned().ok_or_else(ApiError::no_route)
    }

    /// The served type for an apiVersion and kind.
    pub fn type_of_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        self.types
            .values()
            .find(|t| t.kind == kind && t.api_version() == api_version)
            .cloned()
    }

    /// Forget the change history (like an etcd compaction): watches from any
    /// resourceVersion before now get 410 Expired.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// The changes after `rv` to the types `which` accepts, in resourceVersion order; or,
    /// when `rv` is older than one of those types' windows, the oldest resourceVersion a
    /// watch of them may still start from.
    pub fn events_since(&self, rv: u64, which: impl Fn(&Gvr) -> bool) -> Result<Vec<Event>, u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        let mut out = Vec::new();
        let mut several = false;
        for (_, h) in self.history.iter().filter(|(g, _)| which(g)) {
            let start = h.after(rv)?;
            several |= !out.is_empty();
            out.extend(h.events.range(start..).cloned());
        }
        if several {
            out.sort_by_key(|e| e.rv);
        }
        Ok(out)
    }

    /// Whether a watch of the types `which` accepts may still start from `rv`: `Err(oldest)`
    /// when `rv` is older than one of their windows (what [`Store::events_since`] would
    /// answer, without copying the events).
    pub fn window_reaches(&self, rv: u64, which: impl Fn(&Gvr) -> bool) -> Result<(), u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        self.history
            .iter()
            .filter(|(g, _)| which(g))
            .try_for_each(|(_, h)| h.after(rv).map(|_| ()))
    }

    /// A fresh suffix for `generateName` and controller-made names.
    pub fn name_suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let h = self.next_hash();
        h.iter()
            .take(len)
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect()
    }

    fn next_hash(&mut self) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        self.seq += 1;
        Sha256::digest(format!("{}/{}", self.seed, self.seq).as_bytes()).to_vec()
    }

    fn new_uid(&mut self) -> String {
        let x: String = self
            .next_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!(
            "{}-{}-4{}-a{}-{}",
            &x[0..8],
            &x[8..12],
            &x[13..16],
            &x[17..20],
            &x[20..32]
        )
    }

    /// The next free ClusterIP of the service range 10.96.0.0/12: the first goes to the
    /// `kubernetes` Service (10.96.0.1, as the API server reserves it); addresses Services
    /// asked for explicitly (Talos's `kube-dns` 10.96.0.10) are skipped.
    pub fn allocate_service_ip(&mut self) -> String {
        let svc = Gvr::new("", "v1", "services");
        loop {
            let n = self.next_service_ip;
            self.next_service_ip += 1;
            let ip = format!("10.96.{}.{}", n / 254, n % 254 + 1);
            let used = self
                .list(&svc, None, &Filter::default())
                .iter()
                .any(|s| s["spec"]["clusterIP"] == ip.as_str());
            if !used {
                return ip;
            }
        }
    }

    pub fn get(&self, gvr: &Gvr, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&ObjKey {
                gvr: gvr.clone(),
                namespace: ns.into(),
                name: name.into(),
            })
            .cloned()
    }

    /// Objects of one type, in key order; `ns` None means every namespace.
    pub fn list(&self, gvr: &Gvr, ns: Option<&str>, filter: &Filter) -> Vec<Arc<Value>> {
        let start = ObjKey {
            gvr: gvr.clone(),
            namespace: ns.unwrap_or("").into(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(|(k, _)| k.gvr == *gvr && ns.is_none_or(|n| k.namespace == n))
            .filter(|(_, v)| filter.matches(v))
            .map(|(_, v)| Arc::clone(v))
            .collect()
    }

    /// The pods bound to `node` (`spec.nodeName`), in key order.
    pub fn pods_on_node(&self, node: &str) -> Vec<Arc<Value>> {
        self.index
            .pods_by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|k| self.objects.get(k).cloned())
            .collect()
    }

    /// The objects of type `gvr` whose controller (`ownerReferences[].controller`) has
    /// `uid`, in key order.
    pub fn controlled_by(&self, gvr: &Gvr, uid: &str) -> Vec<Arc<Value>> {
        self.index
            .by_controller
            .get(uid)
            .into_iter()
            .flatten()
            .filter(|k| k.gvr == *gvr)
            .filter_map(|k| self.objects.get(k).cloned())
            .collect()
    }

    /// Whether a change after resourceVersion `rv` touched a type `which` accepts; true
    /// when a window of those types no longer reaches back to `rv` (it cannot tell).
    pub fn changed_since(&self, rv: u64, which: impl Fn(&Gvr) -> bool) -> bool {
        rv < self.compacted
            || self
                .history
                .iter()
                .filter(|(g, _)| which(g))
                .any(|(_, h)| h.after(rv).map_or(true, |start| start < h.events.len()))
    }

    /// Changes with every creation, deletion and `ownerReferences` change.
    pub fn ownership_epoch(&self) -> u64 {
        self.ownership
    }

    /// Every object, in key order.
    pub fn all(&self) -> impl Iterator<Item = (&ObjKey, &Arc<Value>)> {
        self.objects.iter()
    }

    fn commit(&mut self, key: ObjKey, mut obj: Value, kind: EventType) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let new = Arc::new(obj);
        let old = match kind {
            EventType::Deleted => self.objects.remove(&key),
            _ => self.objects.insert(key.clone(), Arc::clone(&new)),
        };
        if kind != EventType::Modified
            || old.as_ref().map(|o| &o["metadata"]["ownerReferences"])
                != Some(&new["metadata"]["ownerReferences"])
        {
            self.ownership += 1;
        }
        if let Some(o) = &old {
            self.index.remove(&key, o);
        }
        if kind != EventType::Deleted {
            self.index.insert(&key, &new);
        }
        let h = self.history.entry(key.gvr.clone()).or_default();
        h.events.push_back(Event {
            rv: self.rv,
            kind,
            key,
            old,
            object: Arc::clone(&new),
        });
        while h.events.len() > self.cap {
            if let Some(e) = h.events.pop_front() {
                h.compacted = e.rv;
            }
        }
        self.notify.send_replace(self.rv);
        new
    }

    /// Check (or fill in) `apiVersion` and `kind` of a request body.
    fn type_meta(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        let Value::Object(m) = obj else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        let want_av = rt.api_version();
        match m.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av != want_av => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
            _ => {
                m.insert("apiVersion".into(), json!(want_av));
            }
        }
        match m.get("kind").and_then(Value::as_str) {
            Some(k) if k != rt.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
            _ => {
                m.insert("kind".into(), json!(rt.kind));
            }
        }
        if !m.get("metadata").is_some_and(Value::is_object) {
            m.insert("metadata".into(), json!({}));
        }
        Ok(())
    }

    fn check_namespace(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        if !rt.namespaced {
            if let Value::Object(m) = &mut obj["metadata"] {
                m.remove("namespace");
            }
            return Ok(());
        }
        match meta_str(obj, "namespace") {
            Some(n) if n != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object does not match the namespace sent on the request ({n} != {ns})"
                )));
            }
            _ => obj["metadata"]["namespace"] = json!(ns),
        }
        let nsg = Gvr::new("", "v1", "namespaces");
        if self.get(&nsg, "", ns).is_none() {
            return Err(ApiError::not_found(&nsg, ns));
        }
        Ok(())
    }

    /// Create an object (POST to a collection).
    pub fn create(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let rt = self.resource_type(gvr)?;
        Self::type_meta(&rt, &mut obj)?;
        let name = match (meta_str(&obj, "name"), meta_str(&obj, "generateName")) {
            (Some(n), _) => n.to_string(),
            (None, Some(g)) => format!("{g}{}", self.name_suffix(5)),
            (None, None) => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        };
        if !is_dns_subdomain(&name) {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        obj["metadata"]["name"] = json!(name);
        self.check_namespace(&rt, ns, &mut obj)?;
        let key = ObjKey {
            gvr: gvr.clone(),
            namespace: if rt.namespaced {
                ns.into()
            } else {
                String::new()
            },
            name: name.clone(),
        };
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(gvr, &name));
        }
        defaults::on_create(self, &rt, &mut obj)?;
        let uid = self.new_uid();
        if let Value::Object(m) = &mut obj["metadata"] {
            m.insert("uid".into(), json!(uid));
            m.insert("creationTimestamp".into(), json!(now_time()));
            m.insert("generation".into(), json!(1));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("resourceVersion");
        }
        if dry_run {
            return Ok(Arc::new(obj));
        }
        let out = self.commit(key, obj, EventType::Added);
        self.after_change(gvr);
        Ok(out)
    }

    /// Replace an object or its status (PUT).
    pub fn update(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        mut body: Value,
        sub: Sub,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let rt = self.resource_type(gvr)?;
        let ns = if rt.namespaced { ns } else { "" };
        let existing = self
            .get(gvr, ns, name)
            .ok_or_else(|| ApiError::not_found(gvr, name))?;
        Self::type_meta(&rt, &mut body)?;
        if let Some(n) = meta_str(&body, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if rt.namespaced
            && let Some(n) = meta_str(&body, "namespace")
            && n != ns
        {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object does not match the namespace sent on the request ({n} != {ns})"
            )));
        }
        let current_rv = meta_str(&existing, "resourceVersion")
            .unwrap_or("")
            .to_string();
        if let Some(rv) = meta_str(&body, "resourceVersion")
            && rv != current_rv
        {
            return Err(ApiError::conflict(gvr, name));
        }
        let mut new = match sub {
            Sub::Main => {
                let mut n = body;
                if rt.status {
                    match existing.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Value::Object(m) = &mut n {
                                m.remove("status");
                            }
                        }
                    }
                }
                n
            }
            Sub::Status => {
                let mut n = (*existing).clone();
                match body.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Value::Object(m) = &mut n {
                            m.remove("status");
                        }
                    }
                }
                n
            }
        };
        let mut generation = existing["metadata"]["generation"].as_i64().unwrap_or(1);
        if sub == Sub::Main && spec_part(&new) != spec_part(&existing) {
            generation += 1;
        }
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match existing["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Value::Object(m) = &mut new["metadata"] {
                        m.remove(field);
                    }
                }
            }
        }
        new["metadata"]["name"] = json!(name);
        if rt.namespaced {
            new["metadata"]["namespace"] = json!(ns);
        }
        new["metadata"]["generation"] = json!(generation);
        new["metadata"]["resourceVersion"] = json!(current_rv);
        defaults::on_update(&rt, &existing, &mut new)?;
        if new == *existing {
            return Ok(existing);
        }
        if dry_run {
            return Ok(Arc::new(new));
        }
        let key = ObjKey {
            gvr: gvr.clone(),
            namespace: ns.into(),
            name: name.into(),
        };
        // The last finalizer removed ends a held deletion. A pod waiting for its kubelet
        // (graceful deletion, no finalizers) stays until the kubelet or the pod GC removes it.
        let finalized = new["metadata"].get("deletionTimestamp").is_some()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
            && existing["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        let out = if finalized {
            self.commit(key, new, EventType::Deleted)
        } else {
            self.commit(key, new, EventType::Modified)
        };
        self.after_change(gvr);
        Ok(out)
    }

    /// Patch an object or its status. Returns the object and whether an apply created it.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        sub: Sub,
        opts: &PatchOpts,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let rt = self.resource_type(gvr)?;
        let ns = if rt.namespaced { ns } else { "" };
        if kind == PatchKind::Apply {
            let Some(manager) = opts.field_manager.as_deref().filter(|m| !m.is_empty()) else {
                return Err(ApiError::invalid(
                    "PatchOptions.meta.k8s.io",
                    "",
                    "fieldManager",
                    "Required value: is required for apply patch",
                ));
            };
            if !patch.is_object() {
                return Err(ApiError::bad_request("an apply patch must be an object"));
            }
            let mut intent = patch.clone();
            if let Value::Object(m) = &mut intent["metadata"] {
                m.remove("managedFields");
            }
            let entry = json!({"manager": manager, "operation": "Apply",
                "apiVersion": rt.api_version(), "time": now_time(),
                "fieldsType": "FieldsV1", "fieldsV1": {}});
            let Some(existing) = self.get(gvr, ns, name) else {
                if sub == Sub::Status {
                    return Err(ApiError::not_found(gvr, name));
                }
                if let Some(n) = meta_str(&intent, "name")
                    && n != name
                {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                intent["metadata"]["name"] = json!(name);
                intent["metadata"]["managedFields"] = json!([entry]);
                return self
                    .create(gvr, ns, intent, opts.dry_run)
                    .map(|o| (o, true));
            };
            let mut new = (*existing).clone();
            merge_patch(&mut new, &intent);
            let mut fields: Vec<Value> = existing["metadata"]["managedFields"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| !(e["manager"] == json!(manager) && e["operation"] == "Apply"))
                .collect();
            fields.push(entry);
            new["metadata"]["managedFields"] = json!(fields);
            return self
                .update(gvr, ns, name, new, sub, opts.dry_run)
                .map(|o| (o, false));
        }
        let existing = self
            .get(gvr, ns, name)
            .ok_or_else(|| ApiError::not_found(gvr, name))?;
        let new = match kind {
            PatchKind::Json => json_patch(&existing, patch)?,
            _ => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                let mut n = (*existing).clone();
                merge_patch(&mut n, patch);
                n
            }
        };
        self.update(gvr, ns, name, new, sub, opts.dry_run)
            .map(|o| (o, false))
    }

    /// Delete an object.
    pub fn delete(
        &mut self,
        gvr: &Gvr,
        ns: &str,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let rt = self.resource_type(gvr)?;
        let ns = if rt.namespaced { ns } else { "" };
        let existing = self
            .get(gvr, ns, name)
            .ok_or_else(|| ApiError::not_found(gvr, name))?;
        let uid = meta_str(&existing, "uid").unwrap_or("").to_string();
        if let Some(want) = pre.uid.as_deref()
            && want != uid
        {
            return Err(ApiError::precondition(
                gvr,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        let rv = meta_str(&existing, "resourceVersion").unwrap_or("");
        if let Some(want) = pre.resource_version.as_deref()
            && want != rv
        {
            return Err(ApiError::precondition(
                gvr,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
                ),
            ));
        }
        let key = ObjKey {
            gvr: gvr.clone(),
            namespace: ns.into(),
            name: name.into(),
        };
        let has_finalizers = existing["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if existing["metadata"].get("deletionTimestamp").is_some() || dry_run {
                return Ok(Deleted::Pending(existing));
            }
            let mut obj = (*existing).clone();
            obj["metadata"]["deletionTimestamp"] = json!(now_time());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Ok(Deleted::Pending(self.commit(key, obj, EventType::Modified)));
        }
        let status = deleted_status(gvr, name, &uid);
        if dry_run {
            return Ok(Deleted::Gone(status, existing));
        }
        let last = self.commit(key, (*existing).clone(), EventType::Deleted);
        if gvr.plural == "namespaces" && gvr.group.is_empty() {
            self.delete_namespace_content(name);
        }
        self.after_change(gvr);
        Ok(Deleted::Gone(status, last))
    }

    /// Graceful deletion of a pod bound to a node (what the API server does for a pod with a
    /// grace period): `deletionTimestamp` (now + grace) and `deletionGracePeriodSeconds` are
    /// set, and the pod stays, Terminating, until its kubelet confirms (or the pod GC removes
    /// it). Nothing if it is gone or already terminating.
    pub fn mark_terminating(&mut self, gvr: &Gvr, ns: &str, name: &str, grace_secs: i64) {
        let Some(existing) = self.get(gvr, ns, name) else {
            return;
        };
        if existing["metadata"].get("deletionTimestamp").is_some() {
            return;
        }
        let mut obj = (*existing).clone();
        let at = chrono::Utc::now() + chrono::Duration::seconds(grace_secs.max(0));
        obj["metadata"]["deletionTimestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace_secs.max(0));
        let key = ObjKey {
            gvr: gvr.clone(),
            namespace: ns.into(),
            name: name.into(),
        };
        self.commit(key, obj, EventType::Modified);
        self.after_change(gvr);
    }

    /// Remove every object of a namespace (the namespace controller's job, done at once).
    fn delete_namespace_content(&mut self, ns: &str) {
        let keys: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect();
        for k in keys {
            if let Some(obj) = self.objects.get(&k).cloned() {
                self.commit(k, (*obj).clone(), EventType::Deleted);
            }
        }
    }

    /// Follow-ups of a committed change: CRDs (un)register their types.
    fn after_change(&mut self, gvr: &Gvr) {
        if gvr.group == "apiextensions.k8s.io" && gvr.plural == "customresourcedefinitions" {
            self.sync_crd_types();
        }
    }

    fn sync_crd_types(&mut self) {
        let crd = Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        let declared: Vec<ResourceType> = self
            .list(&crd, None, &Filter::default())
            .iter()
            .filter(|c| c["metadata"].get("deletionTimestamp").is_none())
            .flat_map(|c| ResourceType::from_crd(c))
            .collect();
        let stale: Vec<Gvr> = self
            .types
            .values()
            .filter(|t| t.from_crd && !declared.iter().any(|d| d.gvr == t.gvr))
            .map(|t| t.gvr.clone())
            .collect();
        for gvr in stale {
            self.types.remove(&gvr);
            let keys: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|k| k.gvr == gvr)
                .cloned()
                .collect();
            for k in keys {
                if let Some(obj) = self.objects.get(&k).cloned() {
                    self.commit(k, (*obj).clone(), EventType::Deleted);
                }
            }
        }
        for t in declared {
            if self.types.get(&t.gvr).is_none_or(|old| old.from_crd) {
                self.types.insert(t.gvr.clone(), t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
    }

    #[test]
    fn writes_bump_one_counter_and_history_expires() {
        let mut s = Store::new("t".into());
        let g = Gvr::new("", "v1", "configmaps");
        let a = s.create(&g, "default", cm("a"), false).unwrap();
        let rv_a: u64 = a["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let b = s.create(&g, "default", cm("b"), false).unwrap();
        assert_eq!(
            b["metadata"]["resourceVersion"],
            json!((rv_a + 1).to_string())
        );
        assert!(s.create(&g, "default", cm("a"), false).is_err());
        assert!(s.create(&g, "nope", cm("c"), false).is_err());
        let all = |_: &Gvr| true;
        let evs = s.events_since(rv_a - 1, all).unwrap();
        assert_eq!(evs.len(), 2);
        s.compact();
        assert!(s.events_since(rv_a, all).is_err());
        assert!(
            s.events_since(s.resource_version(), all)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn each_type_keeps_its_own_window() {
        let mut s = Store::new("t".into());
        s.cap = 3;
        let cms = Gvr::new("", "v1", "configmaps");
        let secrets = Gvr::new("", "v1", "secrets");
        let start = s.resource_version();
        s.create(&cms, "default", cm("a"), false).unwrap();
        // Ten changes of another type do not push the ConfigMap out of its window...
        for i in 0..10 {
            let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i}")}});
            s.create(&secrets, "default", secret, false).unwrap();
        }
        let of_cms = s.events_since(start, |g| *g == cms).unwrap();
        assert_eq!(of_cms.len(), 1);
        assert_eq!(of_cms[0].key.name, "a");
        assert!(!s.changed_since(s.resource_version(), |g| *g == cms));
        assert!(s.changed_since(start, |g| *g == cms));
        // ...but they do push the oldest Secrets out of theirs (410 from there on).
        let oldest = s.events_since(start, |g| *g == secrets).unwrap_err();
        assert_eq!(
            oldest,
            start + 8,
            "seven Secrets dropped after the ConfigMap's change"
        );
        assert!(s.events_since(start, |_| true).is_err());
        assert_eq!(s.window_reaches(start, |g| *g == secrets), Err(oldest));
        assert_eq!(s.window_reaches(start, |g| *g == cms), Ok(()));
        assert!(s.changed_since(start, |g| *g == secrets));
        // Several types come back in resourceVersion order.
        s.create(&cms, "default", cm("b"), false).unwrap();
        let mixed = s.events_since(start + 9, |_| true).unwrap();
        let rvs: Vec<u64> = mixed.iter().map(|e| e.rv).collect();
        assert_eq!(rvs, vec![start + 10, start + 11, start + 12]);
    }

    #[test]
    fn update_conflicts_and_noop() {
        let mut s = Store::new("t".into());
        let g = Gvr::new("", "v1", "configmaps");
        let a = s.create(&g, "default", cm("a"), false).unwrap();
        let same = s
            .update(&g, "default", "a", (*a).clone(), Sub::Main, false)
            .unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            a["metadata"]["resourceVersion"]
        );
        let mut changed = (*a).clone();
        changed["data"]["a"] = json!("2");
        let b = s
            .update(&g, "default", "a", changed.clone(), Sub::Main, false)
            .unwrap();
        assert_eq!(b["metadata"]["generation"], json!(2));
        let e = s
            .update(&g, "default", "a", changed, Sub::Main, false)
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
    }

    #[test]
    fn finalizers_hold_deletion() {
        let mut s = Store::new("t".into());
        let g = Gvr::new("", "v1", "configmaps");
        let mut o = cm("f");
        o["metadata"]["finalizers"] = json!(["x/y"]);
        s.create(&g, "default", o, false).unwrap();
        let d = s
            .delete(&g, "default", "f", &Preconditions::default(), false)
            .unwrap();
        let Deleted::Pending(obj) = d else {
            panic!("not held")
        };
        let mut o = (*obj).clone();
        o["metadata"]["finalizers"] = json!([]);
        s.update(&g, "default", "f", o, Sub::Main, false).unwrap();
        assert!(s.get(&g, "default", "f").is_none());
    }
}

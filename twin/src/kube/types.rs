//! The resource types the twin serves and the discovery documents that describe them
//! (`/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`), in the shapes
//! of `APIVersions`, `APIGroupList`, `APIGroup` and `APIResourceList`.
//!
//! Built in: the core, coordination, apps, apiextensions, events and Gateway API types the
//! project's scenarios use. A CustomResourceDefinition created through the API registers
//! its served versions here (see [`ResourceType::from_crd`]).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Group, version and plural resource name: the path of a collection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl Gvr {
    pub fn new(group: &str, version: &str, plural: &str) -> Gvr {
        Gvr {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        }
    }

    /// `configmaps` or `deployments.apps`, as Kubernetes names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// One servable resource type.
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub gvr: Gvr,
    pub kind: String,
    pub singular: String,
    pub namespaced: bool,
    /// Whether `/status` is a subresource (then the main resource ignores status writes).
    pub status: bool,
    pub short_names: Vec<String>,
    /// Registered by a CustomResourceDefinition (removed with it).
    pub from_crd: bool,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        status: bool,
        short: &[&str],
    ) -> ResourceType {
        ResourceType {
            gvr: Gvr::new(group, version, plural),
            kind: kind.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            status,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            from_crd: false,
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.gvr.group.is_empty() {
            self.gvr.version.clone()
        } else {
            format!("{}/{}", self.gvr.group, self.gvr.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The types a CustomResourceDefinition object declares (one per served version).
    /// Returns nothing when the definition lacks its group, names or versions.
    pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
        let spec = &crd["spec"];
        let (Some(group), Some(plural), Some(kind)) = (
            spec["group"].as_str(),
            spec["names"]["plural"].as_str(),
            spec["names"]["kind"].as_str(),
        ) else {
            return Vec::new();
        };
        let singular = spec["names"]["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_ascii_lowercase());
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let short_names: Vec<String> = spec["names"]["shortNames"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let Some(versions) = spec["versions"].as_array() else {
            return Vec::new();
        };
        versions
            .iter()
            .filter(|v| v["served"].as_bool().unwrap_or(true))
            .filter_map(|v| {
                let name = v["name"].as_str()?;
                Some(ResourceType {
                    gvr: Gvr::new(group, name, plural),
                    kind: kind.into(),
                    singular: singular.clone(),
                    namespaced,
                    status: v["subresources"]["status"].is_object(),
                    short_names: short_names.clone(),
                    from_crd: true,
                })
            })
            .collect()
    }
}

/// The built-in types.
pub fn builtin_types() -> Vec<ResourceType> {
    let b = ResourceType::builtin;
    vec![
        b("", "v1", "namespaces", "Namespace", false, true, &["ns"]),
        b("", "v1", "nodes", "Node", false, true, &["no"]),
        b("", "v1", "pods", "Pod", true, true, &["po"]),
        b("", "v1", "services", "Service", true, true, &["svc"]),
        b("", "v1", "endpoints", "Endpoints", true, false, &["ep"]),
        b(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            false,
            &[],
        ),
        b("", "v1", "configmaps", "ConfigMap", true, false, &["cm"]),
        b("", "v1", "secrets", "Secret", true, false, &[]),
        b(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            &["sa"],
        ),
        b("", "v1", "events", "Event", true, false, &["ev"]),
        b(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            &[],
        ),
        b(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            true,
            &["deploy"],
        ),
        b(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            true,
            &["rs"],
        ),
        b("apps", "v1", "daemonsets", "DaemonSet", true, true, &["ds"]),
        b(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            true,
            &["sts"],
        ),
        b(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            false,
            &["ev"],
        ),
        b(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            &["crd", "crds"],
        ),
        b(
            "gateway.networking.k8s.io",
            "v1",
            "gatewayclasses",
            "GatewayClass",
            false,
            true,
            &["gc"],
        ),
        b(
            "gateway.networking.k8s.io",
            "v1",
            "gateways",
            "Gateway",
            true,
            true,
            &["gtw"],
        ),
        b(
            "gateway.networking.k8s.io",
            "v1",
            "httproutes",
            "HTTPRoute",
            true,
            true,
            &[],
        ),
    ]
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `GET /api`.
pub fn api_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

/// Group name → its versions (sorted, preferred first), for the non-core groups.
fn groups(types: &BTreeMap<Gvr, ResourceType>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in types.keys().filter(|g| !g.group.is_empty()) {
        let vs = out.entry(g.group.clone()).or_default();
        if !vs.contains(&g.version) {
            vs.push(g.version.clone());
        }
    }
    for vs in out.values_mut() {
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    out
}

/// Kubernetes' version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": vs, "preferredVersion": preferred})
}

/// `GET /apis`.
pub fn api_group_list(types: &BTreeMap<Gvr, ResourceType>) -> Value {
    let groups: Vec<Value> = groups(types)
        .iter()
        .map(|(name, vs)| group_doc(name, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`, or `None` for an unknown group.
pub fn api_group(types: &BTreeMap<Gvr, ResourceType>, group: &str) -> Option<Value> {
    let all = groups(types);
    let vs = all.get(group)?;
    let mut doc = group_doc(group, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /api/v1` or `/apis/{group}/{version}`, or `None` when nothing is served there.
pub fn api_resource_list(
    types: &BTreeMap<Gvr, ResourceType>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut resources = Vec::new();
    for t in types
        .values()
        .filter(|t| t.gvr.group == group && t.gvr.version == version)
    {
        let mut main = json!({
            "name": t.gvr.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": VERBS,
        });
        if !t.short_names.is_empty() {
            main["shortNames"] = json!(t.short_names);
        }
        resources.push(main);
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.gvr.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        match t.gvr.plural.as_str() {
            "pods" if group.is_empty() => resources.push(json!({
                "name": "pods/eviction", "singularName": "", "namespaced": true,
                "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"],
            })),
            "services" if group.is_empty() => resources.push(json!({
                "name": "services/proxy", "singularName": "", "namespaced": true,
                "kind": "ServiceProxyOptions",
                "verbs": ["create", "delete", "get", "patch", "update"],
            })),
            _ => {}
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, ["v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn crd_registers_served_versions() {
        let crd = json!({"spec": {"group": "x.io", "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "subresources": {"status": {}}},
                         {"name": "v0", "served": false}]}});
        let t = ResourceType::from_crd(&crd);
        assert_eq!(t.len(), 1);
        assert!(!t[0].namespaced && t[0].status);
        assert_eq!(t[0].api_version(), "x.io/v1");
    }
}

//! Request accounting as kube-apiserver does it: every HTTP request a client sends is counted
//! under the labels of `apiserver_request_total` and served as Prometheus text on
//! `GET /metrics`; [`super::KubeTwin::request_counts`] gives the same numbers to tests.
//!
//! Labels follow `k8s.io/apiserver/pkg/endpoints/metrics` (metrics.go, `MonitorRequest`,
//! `CanonicalVerb`, `CleanVerb`, `cleanDryRun`) and the scopes the route installer assigns
//! (`endpoints/installer.go`):
//! - `verb` is the HTTP method, with GET on a collection reported as `LIST`, any GET with
//!   `watch=true` (or under the legacy `/watch/` prefix) as `WATCH`, a PATCH with
//!   `Content-Type: application/apply-patch+yaml` as `APPLY`, and requests to a connect
//!   subresource (`proxy`) as `CONNECT`; creates are `POST`, replaces `PUT`, deletes (also of
//!   collections) `DELETE`.
//! - `scope` is `resource` for a named object or any POST, `namespace` for a collection in a
//!   namespace, `cluster` for a cluster-wide collection (including all-namespaces lists).
//! - `dry_run` is the sorted, de-duplicated `dryRun` values (`All`), or empty.
//! - Requests that are not resource requests (discovery, `/version`, health, `/metrics`)
//!   carry empty group/version/resource/scope/component and the path as `subresource`, the
//!   way the health handlers instrument themselves (`server/healthz/healthz.go`).
//!
//! Unlike kube-apiserver, the twin also counts requests it rejects with 401 (the real server
//! rejects them in the authentication filter, before the instrumented route). The twin's own
//! components (its kubelets and controllers, which act on the store in-process, and its CNI
//! physics, which authenticates with the component token) are never counted.

use std::collections::BTreeSet;
use std::fmt::Write;

use axum::http::{HeaderMap, Method, header};

use crate::accounting::{Classify, RequestCounts};

/// The labels of one `apiserver_request_total` series, `code` included.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    pub component: String,
    pub dry_run: String,
    pub code: u16,
}

impl Classify for RequestKey {
    fn mutating(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE"
        )
    }
}

/// A snapshot of the Kubernetes twin's request counts.
pub type KubeRequestCounts = RequestCounts<RequestKey>;

impl RequestCounts<RequestKey> {
    /// Requests with this verb (`LIST`, `WATCH`, `POST`, …) on this resource (`nodes`,
    /// `pods/status` for a subresource), any code.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        let (res, sub) = resource.split_once('/').unwrap_or((resource, ""));
        self.matching(|k| k.verb == verb && k.resource == res && k.subresource == sub)
    }
}

/// What the route says about a resource request.
pub(crate) struct ResourceRequest<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub plural: &'a str,
    pub namespaced_collection: bool,
    pub named: bool,
    pub subresource: &'a str,
    pub watch: bool,
}

/// `cleanDryRun`: the sorted distinct `dryRun` values, or empty.
pub(crate) fn dry_run_label(query: Option<&str>) -> String {
    let values: BTreeSet<String> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "dryRun")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    values.into_iter().collect::<Vec<_>>().join(",")
}

/// The labels of a resource request (without the code).
pub(crate) fn resource_key(
    method: &Method,
    headers: &HeaderMap,
    r: &ResourceRequest,
    dry_run: String,
) -> RequestKey {
    let scope = if r.named || *method == Method::POST {
        "resource"
    } else if r.namespaced_collection {
        "namespace"
    } else {
        "cluster"
    };
    let apply = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/apply-patch"));
    let verb = match method.as_str() {
        _ if r.subresource == "proxy" => "CONNECT".to_string(),
        "GET" | "HEAD" if r.watch => "WATCH".to_string(),
        "GET" | "HEAD" if scope == "resource" => "GET".to_string(),
        "GET" | "HEAD" => "LIST".to_string(),
        "PATCH" if apply => "APPLY".to_string(),
        m => m.to_string(),
    };
    RequestKey {
        verb,
        group: r.group.into(),
        version: r.version.into(),
        resource: r.plural.into(),
        subresource: r.subresource.into(),
        scope: scope.into(),
        component: "apiserver".into(),
        dry_run,
        code: 0,
    }
}

/// The labels of a request that names no resource (discovery, health, `/version`, …).
pub(crate) fn non_resource_key(method: &Method, path: &str) -> RequestKey {
    RequestKey {
        verb: method.as_str().to_string(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: path.to_string(),
        scope: String::new(),
        component: String::new(),
        dry_run: String::new(),
        code: 0,
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: the counter family in the Prometheus text format (labels sorted by
/// name, as client_golang writes them).
pub(crate) fn render(counts: &KubeRequestCounts) -> String {
    let mut out = String::from(
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n\
         # TYPE apiserver_request_total counter\n",
    );
    // Series in the order of their label values, label names sorted (code first).
    let mut series: Vec<(&RequestKey, &u64)> = counts.by_key.iter().collect();
    series.sort_by_key(|(k, _)| {
        (
            k.code,
            &k.component,
            &k.dry_run,
            &k.group,
            &k.resource,
            &k.scope,
            &k.subresource,
            &k.verb,
            &k.version,
        )
    });
    for (k, n) in series {
        let _ = writeln!(
            out,
            "apiserver_request_total{{code=\"{}\",component=\"{}\",dry_run=\"{}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
            k.code,
            escape(&k.component),
            escape(&k.dry_run),
            escape(&k.group),
            escape(&k.resource),
            escape(&k.scope),
            escape(&k.subresource),
            escape(&k.verb),
            escape(&k.version),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(method: Method, ct: &str, r: ResourceRequest) -> RequestKey {
        let mut h = HeaderMap::new();
        if !ct.is_empty() {
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        resource_key(&method, &h, &r, String::new())
    }

    fn req(named: bool, ns: bool, sub: &'static str, watch: bool) -> ResourceRequest<'static> {
        ResourceRequest {
            group: "",
            version: "v1",
            plural: "pods",
            namespaced_collection: ns,
            named,
            subresource: sub,
            watch,
        }
    }

    #[test]
    fn verbs_and_scopes_like_the_apiserver() {
        let cases = [
            (
                key(Method::GET, "", req(false, true, "", false)),
                "LIST",
                "namespace",
            ),
            (
                key(Method::GET, "", req(false, false, "", false)),
                "LIST",
                "cluster",
            ),
            (
                key(Method::GET, "", req(true, false, "", false)),
                "GET",
                "resource",
            ),
            (
                key(Method::GET, "", req(false, true, "", true)),
                "WATCH",
                "namespace",
            ),
            (
                key(Method::POST, "", req(false, true, "", false)),
                "POST",
                "resource",
            ),
            (
                key(Method::PUT, "", req(true, false, "status", false)),
                "PUT",
                "resource",
            ),
            (
                key(
                    Method::PATCH,
                    "application/apply-patch+yaml",
                    req(true, false, "", false),
                ),
                "APPLY",
                "resource",
            ),
            (
                key(
                    Method::PATCH,
                    "application/merge-patch+json",
                    req(true, false, "", false),
                ),
                "PATCH",
                "resource",
            ),
            (
                key(Method::DELETE, "", req(false, true, "", false)),
                "DELETE",
                "namespace",
            ),
            (
                key(Method::GET, "", req(true, false, "proxy", false)),
                "CONNECT",
                "resource",
            ),
        ];
        for (k, verb, scope) in cases {
            assert_eq!((k.verb.as_str(), k.scope.as_str()), (verb, scope), "{k:?}");
        }
        assert!(!key(Method::GET, "", req(true, false, "", false)).mutating());
        assert!(key(Method::POST, "", req(false, true, "", false)).mutating());
    }

    #[test]
    fn dry_run_is_sorted_and_deduplicated() {
        assert_eq!(dry_run_label(None), "");
        assert_eq!(dry_run_label(Some("dryRun=All&x=1&dryRun=All")), "All");
    }

    #[test]
    fn prometheus_text_has_sorted_labels() {
        let mut counts = KubeRequestCounts::default();
        let mut k = key(Method::GET, "", req(false, false, "", false));
        k.code = 200;
        counts.by_key.insert(k, 3);
        let text = render(&counts);
        assert!(text.contains("# TYPE apiserver_request_total counter\n"));
        assert!(text.contains(
            "apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"cluster\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 3\n"
        ));
    }
}

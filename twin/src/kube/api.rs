//! The HTTP side of the twin's API server: bearer-token authentication, path routing
//! (`/api/v1/...`, `/apis/{group}/{version}/...`, namespaced or not, `watch` prefixes,
//! subresources), the verbs (reference §3, §4, §6), discovery, `/version`, the health
//! endpoints ([`super::health`]), `/metrics` and request accounting ([`super::metrics`]),
//! Table and metadata answers ([`super::table`]), pod eviction, and the routing of the pod
//! and service proxies ([`super::proxy`]).
//!
//! Query strings are parsed leniently (kube-rs sends `?` and `?&`); every error is a
//! `Status` object.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::metrics::{self, RequestKey, ResourceRequest};
use super::select::{FieldSelector, Filter, LabelSelector};
use super::status::ApiError;
use super::store::{Deleted, PatchKind, PatchOpts, Preconditions, Store, Sub};
use super::table::{self, Format};
use super::types::{Gvr, ResourceType, api_group, api_group_list, api_resource_list, api_versions};
use super::watch::{self, WatchRequest};
use super::{Shared, health, lock, lock_health};

/// The version the twin reports (`/version`, kubelets).
pub const GIT_VERSION: &str = "v1.34.2";

type Q = BTreeMap<String, String>;

/// A resource path, split.
#[derive(Debug)]
struct ResPath {
    gvr: Gvr,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    /// What follows a `proxy` subresource.
    rest: String,
    watch_prefix: bool,
}

fn json_response(code: u16, v: &Value) -> Response {
    let mut resp = Response::new(Body::from(v.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn text_response(code: u16, text: String, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn version_doc() -> Value {
    json!({
        "major": "1", "minor": "34", "emulationMajor": "1", "emulationMinor": "34",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "33",
        "gitVersion": GIT_VERSION, "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2025-11-11T00:00:00Z",
        "goVersion": "go1.24.9", "compiler": "gc", "platform": "linux/amd64",
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Ok,
    /// One of the twin's own components: served, not counted.
    Component,
    Missing,
    Bad,
}

fn authenticate(sh: &Shared, headers: &HeaderMap) -> Auth {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    match v.to_str().ok().and_then(|s| s.strip_prefix("Bearer ")) {
        Some(t) if t.trim() == sh.token => Auth::Ok,
        Some(t) if t.trim() == sh.component_token => Auth::Component,
        _ => Auth::Bad,
    }
}

/// Path segments, percent-decoded.
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// `(group, version, rest)` of `/api/{v}/...` and `/apis/{g}/{v}/...`.
fn api_path<'a>(segs: &'a [&'a str]) -> Option<(&'a str, &'a str, &'a [&'a str])> {
    match segs {
        ["api", v, rest @ ..] => Some(("", v, rest)),
        ["apis", g, v, rest @ ..] => Some((g, v, rest)),
        _ => None,
    }
}

/// The `apiserver_request_total` labels of a request (the code is set when answered).
fn request_key(method: &Method, uri: &Uri, headers: &HeaderMap) -> RequestKey {
    let segs = segments(uri.path());
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let rp = api_path(&segs)
        .filter(|(_, _, rest)| !rest.is_empty())
        .and_then(|(g, v, rest)| parse_resource_path(g, v, rest));
    let Some(rp) = rp else {
        return metrics::non_resource_key(method, uri.path());
    };
    let watch = rp.watch_prefix
        || Query::<Vec<(String, String)>>::try_from_uri(uri).is_ok_and(|Query(q)| {
            q.iter().any(|(k, v)| {
                k == "watch" && !matches!(v.to_ascii_lowercase().as_str(), "0" | "false")
            })
        });
    metrics::resource_key(
        method,
        headers,
        &ResourceRequest {
            group: &rp.gvr.group,
            version: &rp.gvr.version,
            plural: &rp.gvr.plural,
            namespaced_collection: rp.namespace.is_some(),
            named: rp.name.is_some(),
            subresource: rp.sub.as_deref().unwrap_or(""),
            watch,
        },
        metrics::dry_run_label(uri.query()),
    )
}

fn is_public(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p == "/version"
        || ["/healthz", "/livez", "/readyz"]
            .iter()
            .any(|h| p == *h || p.starts_with(&format!("{h}/")))
}

/// The axum handler for every request: answer it, then count it (unless one of the twin's
/// own components sent it).
pub(crate) async fn handle(
    AxState(sh): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = authenticate(&sh, &headers);
    let key = request_key(&method, &uri, &headers);
    let resp = respond(&sh, auth, method, uri, headers, body).await;
    if auth != Auth::Component {
        sh.requests.add(RequestKey {
            code: resp.status().as_u16(),
            ..key
        });
    }
    resp
}

async fn respond(
    sh: &Arc<Shared>,
    auth: Auth,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    match auth {
        Auth::Ok | Auth::Component => {}
        Auth::Missing if is_public(&path) => {}
        _ => return error_response(&ApiError::unauthorized()),
    }
    let q: Q = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(pairs)) => pairs.into_iter().collect(),
        Err(e) => return error_response(&ApiError::bad_request(format!("bad query string: {e}"))),
    };
    if let Some(a) = health::answer(&path, uri.query(), &lock_health(sh)) {
        let mut resp = text_response(a.code, a.body, "text/plain; charset=utf-8");
        resp.headers_mut().insert(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        );
        return resp;
    }
    match path.trim_end_matches('/') {
        "/version" => return json_response(200, &version_doc()),
        "/metrics" => {
            return text_response(
                200,
                metrics::render(&sh.requests.snapshot()),
                "text/plain; version=0.0.4; charset=utf-8",
            );
        }
        _ => {}
    }
    let segs = segments(&path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api"] => return json_response(200, &api_versions(&sh.server)),
        ["apis"] => return json_response(200, &api_group_list(lock(&sh.world).store.types())),
        ["apis", g] => {
            return match api_group(lock(&sh.world).store.types(), g) {
                Some(d) => json_response(200, &d),
                None => error_response(&ApiError::no_route()),
            };
        }
        s => match api_path(s) {
            Some(p) => p,
            None => return error_response(&ApiError::no_route()),
        },
    };
    if rest.is_empty() {
        return match api_resource_list(lock(&sh.world).store.types(), group, version) {
            Some(d) => json_response(200, &d),
            None => error_response(&ApiError::no_route()),
        };
    }
    let Some(rp) = parse_resource_path(group, version, rest) else {
        return error_response(&ApiError::no_route());
    };
    if let Some(req) = proxy_request(&rp, &path, &uri, &method, &headers, &body) {
        return super::proxy::handle(sh, req).await;
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = match Format::negotiate(accept, q.get("includeObject").map(String::as_str)) {
        Ok(f) if method == Method::GET && rp.sub.as_deref() != Some("proxy") => f,
        Ok(_) => Format::Json,
        Err(e) => return error_response(&e),
    };
    let gvr = rp.gvr.clone();
    match resource(sh, &method, rp, &q, &headers, &body, &format) {
        Ok(reply @ (Reply::Json(..) | Reply::List(..)))
            if format != Format::Json && reply.code() < 300 =>
        {
            let Some((code, v)) = reply.into_value() else {
                return error_response(&ApiError::new(500, "InternalError", "not a table"));
            };
            let w = lock(&sh.world);
            match w.store.resource_type(&gvr) {
                Ok(rt) => json_response(
                    code,
                    &table::encode(&w.store, &rt, v, &format, chrono::Utc::now()),
                ),
                Err(e) => error_response(&e),
            }
        }
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Ok(Reply::List(head, items)) => list_response(&head, &items),
        Ok(Reply::Watch(req)) => {
            let stream = watch::stream(Arc::clone(sh), *req);
            let mut resp = Response::new(Body::from_stream(stream));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => error_response(&e),
    }
}

fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResPath> {
    let (watch_prefix, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..]
            if !(r.is_empty() || r.len() == 1 && matches!(r[0], "status" | "finalize")) =>
        {
            (Some(ns.to_string()), r)
        }
        r => (None, r),
    };
    let (plural, name, sub, extra) = match rest {
        [p] => (*p, None, None, &[][..]),
        [p, n] => (*p, Some(*n), None, &[][..]),
        [p, n, s, extra @ ..] => (*p, Some(*n), Some(*s), extra),
        _ => return None,
    };
    if !extra.is_empty() && sub != Some("proxy") {
        return None;
    }
    Some(ResPath {
        gvr: Gvr::new(group, version, plural),
        namespace,
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
        rest: extra.join("/"),
        watch_prefix,
    })
}

enum Reply {
    Json(u16, Value),
    /// A list: its `apiVersion`, `kind` and `metadata`, and the stored items themselves
    /// (shared, not copied: serialised after the world's lock is released).
    List(Value, Vec<Arc<Value>>),
    Watch(Box<WatchRequest>),
}

impl Reply {
    fn code(&self) -> u16 {
        match self {
            Reply::Json(code, _) => *code,
            Reply::List(..) | Reply::Watch(_) => 200,
        }
    }

    /// The list as one JSON value (what the Table conversion reads).
    fn into_value(self) -> Option<(u16, Value)> {
        match self {
            Reply::Json(code, v) => Some((code, v)),
            Reply::List(mut head, items) => {
                head["items"] = Value::Array(items.iter().map(|o| (**o).clone()).collect());
                Some((200, head))
            }
            Reply::Watch(_) => None,
        }
    }
}

/// A list's body, serialised from the shared items (keys in the order the twin's other JSON
/// has them: sorted).
fn list_response(head: &Value, items: &[Arc<Value>]) -> Response {
    #[derive(serde::Serialize)]
    struct ListBody<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'a Value,
        items: &'a [Arc<Value>],
        kind: &'a Value,
        metadata: &'a Value,
    }
    let body = ListBody {
        api_version: &head["apiVersion"],
        items,
        kind: &head["kind"],
        metadata: &head["metadata"],
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => error_response(&ApiError::new(
            500,
            "InternalError",
            format!("encoding the list: {e}"),
        )),
    }
}

fn flag(q: &Q, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("true" | "1"))
}

fn dry_run(q: &Q) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

fn filter(q: &Q, name: Option<&str>) -> Result<Filter, ApiError> {
    let mut fields = q.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(n) = name {
        fields = format!("{fields},metadata.name={n}");
    }
    Ok(Filter {
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(&fields)?,
    })
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body could not be decoded (the twin accepts JSON only): {e}"
        ))
    })
}

fn resource(
    sh: &Arc<Shared>,
    method: &Method,
    rp: ResPath,
    q: &Q,
    headers: &HeaderMap,
    body: &Bytes,
    format: &Format,
) -> Result<Reply, ApiError> {
    let mut world = lock(&sh.world);
    let store = &mut world.store;
    let rt = store.resource_type(&rp.gvr)?;
    if rt.namespaced != rp.namespace.is_some() && (rp.name.is_some() || !rt.namespaced) {
        return Err(ApiError::no_route());
    }
    let ns = rp.namespace.clone().unwrap_or_default();
    let sub = match rp.sub.as_deref() {
        None => Sub::Main,
        Some("status") if rt.status => Sub::Status,
        Some("eviction") if is_core(&rt, "pods") && *method == Method::POST => {
            let name = rp.name.as_deref().unwrap_or_default();
            store.delete(&rt.gvr, &ns, name, &Preconditions::default(), dry_run(q))?;
            return Ok(Reply::Json(
                201,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ));
        }
        Some(_) => return Err(ApiError::no_route()),
    };
    let watching = rp.watch_prefix || flag(q, "watch");
    let name = rp.name.as_deref();
    let ns_opt = rp.namespace.as_deref();
    match (method.clone(), name) {
        (Method::GET, _) if watching => {
            watch_request(rt, ns_opt, name, q, format).map(|w| Reply::Watch(Box::new(w)))
        }
        (Method::GET, None) => list(store, &rt, ns_opt, q),
        (Method::GET, Some(n)) => store
            .get(&rt.gvr, &ns, n)
            .map(|o| Reply::Json(200, (*o).clone()))
            .ok_or_else(|| ApiError::not_found(&rt.gvr, n)),
        (Method::POST, None) if sub == Sub::Main && (ns_opt.is_some() || !rt.namespaced) => {
            let obj = store.create(&rt.gvr, &ns, parse_body(body)?, dry_run(q))?;
            Ok(Reply::Json(201, (*obj).clone()))
        }
        (Method::PUT, Some(n)) => {
            let obj = store.update(&rt.gvr, &ns, n, parse_body(body)?, sub, dry_run(q))?;
            Ok(Reply::Json(200, (*obj).clone()))
        }
        (Method::PATCH, Some(n)) => patch(store, &rt, &ns, n, sub, q, headers, body),
        (Method::DELETE, Some(n)) if sub == Sub::Main => {
            let pre = delete_options(body, q)?;
            match store.delete(&rt.gvr, &ns, n, &pre.0, pre.1)? {
                Deleted::Gone(status, _) => Ok(Reply::Json(200, status)),
                Deleted::Pending(obj) => Ok(Reply::Json(200, (*obj).clone())),
            }
        }
        (Method::DELETE, None) => delete_collection(store, &rt, ns_opt, q),
        (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

fn is_core(rt: &ResourceType, plural: &str) -> bool {
    rt.gvr.group.is_empty() && rt.gvr.plural == plural
}

#[allow(clippy::too_many_arguments)]
fn patch(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    sub: Sub,
    q: &Q,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind =
        PatchKind::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    let patch = parse_body(body)?;
    let opts = PatchOpts {
        dry_run: dry_run(q),
        field_manager: q.get("fieldManager").cloned(),
    };
    let (obj, created) = store.patch(&rt.gvr, ns, name, kind, &patch, sub, &opts)?;
    Ok(Reply::Json(if created { 201 } else { 200 }, (*obj).clone()))
}

/// DeleteOptions from the body (kube sends `{}` or options) and the query.
fn delete_options(body: &Bytes, q: &Q) -> Result<(Preconditions, bool), ApiError> {
    let opts = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(body)?
    };
    let pre = Preconditions {
        uid: opts["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: opts["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    };
    let dry = dry_run(q)
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok((pre, dry))
}

fn delete_collection(
    store: &mut Store,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &Q,
) -> Result<Reply, ApiError> {
    let f = filter(q, None)?;
    let victims = store.list(&rt.gvr, ns, &f);
    let mut items = Vec::new();
    for v in victims {
        let vns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let vname = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match store.delete(&rt.gvr, &vns, &vname, &Preconditions::default(), dry_run(q)) {
            Ok(Deleted::Gone(_, last)) | Ok(Deleted::Pending(last)) => items.push((*last).clone()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::Json(
        200,
        json!({"apiVersion": rt.api_version(), "kind": rt.list_kind(),
            "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items}),
    ))
}

/// Continue tokens: the list's resourceVersion and the last key returned.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let raw = json!({"rv": rv, "ns": ns, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(tok: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {tok:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    match (v["rv"].as_u64(), v["ns"].as_str(), v["name"].as_str()) {
        (Some(rv), Some(ns), Some(n)) => Ok((rv, ns.into(), n.into())),
        _ => Err(bad()),
    }
}

fn list(store: &Store, rt: &ResourceType, ns: Option<&str>, q: &Q) -> Result<Reply, ApiError> {
    let f = filter(q, None)?;
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => return Err(ApiError::bad_request("limit must be a number")),
    };
    let (list_rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(tok) => {
            let (rv, cns, cname) = decode_continue(tok)?;
            if store.window_reaches(rv, |g| *g == rt.gvr).is_err() {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some((cns, cname)))
        }
        None => (store.resource_version(), None),
    };
    let mut items: Vec<Arc<Value>> = store
        .list(&rt.gvr, ns, &f)
        .into_iter()
        .filter(|o| {
            after.as_ref().is_none_or(|(ans, aname)| {
                let key = (
                    o["metadata"]["namespace"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default(),
                );
                key > (ans.as_str(), aname.as_str())
            })
        })
        .collect();
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(l) = limit
        && items.len() > l
    {
        let remaining = items.len() - l;
        items.truncate(l);
        if let Some(last) = items.last() {
            meta["continue"] = json!(encode_continue(
                list_rv,
                last["metadata"]["namespace"].as_str().unwrap_or_default(),
                last["metadata"]["name"].as_str().unwrap_or_default(),
            ));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(Reply::List(
        json!({"apiVersion": rt.api_version(), "kind": rt.list_kind(), "metadata": meta}),
        items,
    ))
}

fn watch_request(
    rt: ResourceType,
    ns: Option<&str>,
    name: Option<&str>,
    q: &Q,
    format: &Format,
) -> Result<WatchRequest, ApiError> {
    let since = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = match q.get("timeoutSeconds") {
        None => None,
        Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request("timeoutSeconds must be a number")
        })?)),
    };
    Ok(WatchRequest {
        filter: filter(q, name)?,
        rt,
        namespace: ns.map(str::to_string),
        since,
        bookmarks: flag(q, "allowWatchBookmarks"),
        initial_events: flag(q, "sendInitialEvents"),
        timeout,
        format: format.clone(),
    })
}

/// A pod or service proxy request (`/api/v1/namespaces/{ns}/{pods|services}/{id}/proxy/…`),
/// for [`super::proxy`].
fn proxy_request<'a>(
    rp: &'a ResPath,
    path: &str,
    uri: &'a Uri,
    method: &'a Method,
    headers: &'a HeaderMap,
    body: &'a Bytes,
) -> Option<super::proxy::ProxyRequest<'a>> {
    let kind = match (
        rp.gvr.group.as_str(),
        rp.gvr.version.as_str(),
        rp.gvr.plural.as_str(),
    ) {
        ("", "v1", "pods") => super::proxy::Kind::Pod,
        ("", "v1", "services") => super::proxy::Kind::Service,
        _ => return None,
    };
    if rp.sub.as_deref() != Some("proxy") || rp.watch_prefix {
        return None;
    }
    let mut target = format!("/{}", rp.rest);
    if path.ends_with('/') && !rp.rest.is_empty() {
        target.push('/');
    }
    Some(super::proxy::ProxyRequest {
        kind,
        namespace: rp.namespace.as_deref()?,
        id: rp.name.as_deref()?,
        path: target,
        query: uri.query().unwrap_or_default(),
        method,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_like_the_api_server() {
        let p =
            parse_resource_path("", "v1", &["namespaces", "default", "configmaps", "a"]).unwrap();
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.gvr.plural.as_str(),
                p.name.as_deref()
            ),
            (Some("default"), "configmaps", Some("a"))
        );
        let p = parse_resource_path("", "v1", &["namespaces", "kube-system"]).unwrap();
        assert_eq!(
            (p.namespace, p.gvr.plural.as_str(), p.name.as_deref()),
            (None, "namespaces", Some("kube-system"))
        );
        let p = parse_resource_path("", "v1", &["namespaces", "x", "status"]).unwrap();
        assert_eq!(
            (p.name.as_deref(), p.sub.as_deref()),
            (Some("x"), Some("status"))
        );
        let p = parse_resource_path("", "v1", &["watch", "nodes"]).unwrap();
        assert!(p.watch_prefix);
        let p = parse_resource_path(
            "",
            "v1",
            &["namespaces", "d", "services", "web:80", "proxy", "a", "b"],
        )
        .unwrap();
        assert_eq!((p.sub.as_deref(), p.rest.as_str()), (Some("proxy"), "a/b"));
        assert!(parse_resource_path("", "v1", &["nodes", "n", "status", "x"]).is_none());
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(7, "ns", "a");
        assert_eq!(decode_continue(&t).unwrap(), (7, "ns".into(), "a".into()));
        assert!(decode_continue("!!").is_err());
    }
}

//! The twin's Omni endpoint: runs the `omnictl` commands the shim forwards and streams
//! their stdout/stderr/exit back ([`super::wire`]). Command semantics and texts follow
//! omni.md: authentication (§2, §4), `get` (§3, §4, §5), `apply` (§6), `cluster template`
//! (§7), `kubeconfig` (§8).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

use super::cli::{self, Command, GetArgs, KubeconfigArgs, TemplateArgs, TemplateVerb};
use super::format::{Writer, unsaved_yv};
use super::resource::{Change, EventKind, Resource, Selector};
use super::store::{LABEL_CLUSTER, LABEL_MACHINE_SET, Store};
use super::template::{self, Template};
use super::types::{self, NS_DEFAULT, NS_INFRA_PROVIDER, t};
use super::value::to_yaml;
use super::wire::{FileArg, Frame, PATH, Request};
use super::{OmniFault, Shared};

const UNAUTHENTICATED: &str = "rpc error: code = Unauthenticated desc = invalid signature";

/// Accept connections until told to stop.
pub(crate) async fn serve(
    listener: TcpListener,
    sh: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let app = axum::Router::new()
        .route(PATH, axum::routing::post(handle))
        .with_state(sh);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("omni twin accept: {e}");
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = TowerToHyperService::new(app);
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

async fn handle(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let mut resp = Response::new(Body::from(format!("bad request: {e}\n")));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return resp;
        }
    };
    tracing::debug!(args = ?req.args, "omnictl via twin");
    let (tx, rx) = mpsc::channel::<Frame>(256);
    tokio::spawn(run(sh, req, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let frame = rx.recv().await?;
        let mut line = serde_json::to_vec(&frame).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<Bytes, Infallible>(Bytes::from(line)), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// Frames back to the shim.
struct Out {
    tx: mpsc::Sender<Frame>,
}

impl Out {
    /// False when the shim has gone away.
    async fn out(&self, s: impl Into<String>) -> bool {
        let s = s.into();
        if s.is_empty() {
            return !self.tx.is_closed();
        }
        self.tx.send(Frame::Stdout(s)).await.is_ok()
    }

    async fn err(&self, s: impl Into<String>) -> bool {
        self.tx.send(Frame::Stderr(s.into())).await.is_ok()
    }
}

/// `Err` holds the text `omnictl` prints after `Error: `.
type Outcome = Result<i32, String>;

async fn run(sh: Arc<Shared>, req: Request, tx: mpsc::Sender<Frame>) {
    let o = Out { tx };
    let code = match execute(&sh, &req, &o).await {
        Ok(code) => code,
        Err(msg) => {
            o.err(format!("Error: {msg}\n")).await;
            1
        }
    };
    let _ = o.tx.send(Frame::Exit(code)).await;
}

async fn execute(sh: &Arc<Shared>, req: &Request, o: &Out) -> Outcome {
    let parsed = match cli::parse(&req.args) {
        Ok(p) => p,
        Err(e) => {
            o.err(e.stderr()).await;
            return Ok(1);
        }
    };
    if let Command::Help(text) = &parsed.command {
        o.out(text.clone()).await;
        return Ok(0);
    }
    // Every command starts by reading SysVersion; that is where auth fails (omni.md §2).
    let offline = matches!(parsed.command, Command::Template(TemplateVerb::Validate, _));
    if !offline && (sh.has_fault(OmniFault::AuthExpired) || req.identity != sh.account) {
        tracing::info!("omni twin: rejected a request (unknown or expired service account)");
        return Err(UNAUTHENTICATED.into());
    }
    match parsed.command {
        Command::Get(g) => get(sh, &g, o).await,
        Command::Apply { dry_run, .. } => apply(sh, req, dry_run),
        Command::Template(verb, a) => template_cmd(sh, req, verb, &a, o).await,
        Command::Kubeconfig(k) => kubeconfig(sh, req, &k, o).await,
        Command::Help(_) => Ok(0),
    }
}

// ---------------------------------------------------------------------------------------
// get
// ---------------------------------------------------------------------------------------

fn not_found(kind: &str, ns: &str, id: &str) -> String {
    format!("rpc error: code = NotFound desc = resource {kind}({ns}/{id}@undefined) doesn't exist")
}

async fn get(sh: &Arc<Shared>, g: &GetArgs, o: &Out) -> Outcome {
    let def = types::resolve(&g.kind).map_err(|e| e.to_string())?;
    let ns = g
        .namespace
        .clone()
        .unwrap_or_else(|| def.namespace.to_string());
    let selector = if g.selector.is_empty() {
        None
    } else {
        if g.id.is_some() {
            return Err("cannot specify both resource ID and selector".into());
        }
        Some(Selector::parse(&g.selector)?)
    };
    if !g.id_regexp.is_empty() {
        if g.id.is_some() {
            return Err("cannot specify both resource ID and ID regexp".into());
        }
        return Err(
            "invalid ID regexp: --id-match-regexp is not supported by the twin's omnictl".into(),
        );
    }
    let mut w = Writer::new(&g.output, def, g.watch)?;
    w.header();
    let matches = |r: &Resource| {
        r.metadata.kind == def.full
            && r.metadata.namespace == ns
            && g.id.as_ref().is_none_or(|id| *id == r.metadata.id)
            && selector
                .as_ref()
                .is_none_or(|s| s.matches(&r.metadata.labels))
    };
    if !g.watch {
        let found: Option<Vec<Resource>> = {
            let st = sh.store();
            match &g.id {
                Some(id) => st.get(def.full, &ns, id).map(|r| vec![r.clone()]),
                None => Some(
                    st.list_ns(def.full, &ns)
                        .into_iter()
                        .filter(|r| matches(r))
                        .collect(),
                ),
            }
        };
        let Some(items) = found else {
            // The table header is flushed even when the Get fails (omnictl defers Flush).
            o.out(w.flush()).await;
            return Err(not_found(
                def.full,
                &ns,
                g.id.as_deref().unwrap_or_default(),
            ));
        };
        let mut text = String::new();
        for r in &items {
            text.push_str(&w.resource(r, None));
        }
        text.push_str(&w.flush());
        o.out(text).await;
        return Ok(0);
    }
    // Watch: subscribe first, then the bootstrap contents as `created`.
    let (mut rx, snapshot) = {
        let st = sh.store();
        let rx = st.subscribe();
        let snap: Vec<Resource> = st
            .list_ns(def.full, &ns)
            .into_iter()
            .filter(|r| matches(r))
            .collect();
        (rx, snap)
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut text = String::new();
    for r in &snapshot {
        seen.insert(r.metadata.id.clone(), r.metadata.version);
        text.push_str(&w.resource(r, Some(EventKind::Created)));
    }
    // A kind watch flushes at "bootstrapped"; a single-id watch after its first event.
    if g.id.is_none() || !snapshot.is_empty() {
        text.push_str(&w.flush());
    }
    if !o.out(text).await {
        return Ok(0);
    }
    let mut stopped = sh.stopped.clone();
    loop {
        let change: Change = tokio::select! {
            c = rx.recv() => match c {
                Ok(c) => c,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(format!("watch error: the watch fell behind by {n} events"));
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(0),
            },
            _ = stopped.changed() => return Ok(0),
            _ = o.tx.closed() => return Ok(0),
        };
        let r = &change.resource;
        if !matches(r) {
            continue;
        }
        if change.event != EventKind::Destroyed
            && seen
                .get(&r.metadata.id)
                .is_some_and(|v| *v >= r.metadata.version)
        {
            continue;
        }
        let event = if change.event != EventKind::Destroyed && !seen.contains_key(&r.metadata.id) {
            EventKind::Created
        } else {
            change.event
        };
        if change.event == EventKind::Destroyed {
            seen.remove(&r.metadata.id);
        } else {
            seen.insert(r.metadata.id.clone(), r.metadata.version);
        }
        let mut text = w.resource(r, Some(event));
        text.push_str(&w.flush());
        if !o.out(text).await {
            return Ok(0);
        }
    }
}

// ---------------------------------------------------------------------------------------
// apply
// ---------------------------------------------------------------------------------------

fn apply(sh: &Arc<Shared>, req: &Request, dry_run: bool) -> Outcome {
    let file = req
        .files
        .first()
        .ok_or_else(|| "open: no file was given".to_string())?;
    let path = Arc::new(PathBuf::from(&file.path));
    let docs = harness::yaml::parse_documents(&path, &file.content).map_err(|e| {
        format!(
            "yaml: line {}: {}",
            e.location.line,
            e.message.trim_start_matches("invalid YAML: ")
        )
    })?;
    for doc in &docs {
        let Some(entries) = doc.as_map() else {
            return Err("expected mapping node".into());
        };
        if entries.len() != 2 || doc.get("metadata").is_none() || doc.get("spec").is_none() {
            return Err(format!(
                "expected 4 elements node, got {}",
                entries.len() * 2
            ));
        }
        let meta = super::schema::node_json(doc.get("metadata").unwrap_or(doc));
        let spec = super::schema::node_json(doc.get("spec").unwrap_or(doc));
        let kind = meta.get("type").and_then(Value::as_str).unwrap_or_default();
        let def = types::def(kind).ok_or_else(|| format!("resource {kind:?} is not registered"))?;
        let ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(def.namespace)
            .to_string();
        let id = meta
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            return Err("resource ID must not be empty".into());
        }
        let mut r = Resource::new(def.full, ns, id, known_fields(def.spec, &spec));
        for (key, target) in [
            ("labels", &mut r.metadata.labels),
            ("annotations", &mut r.metadata.annotations),
        ] {
            if let Some(m) = meta.get(key).and_then(Value::as_object) {
                for (k, v) in m {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    target.insert(k.clone(), text);
                }
            }
        }
        let existing = sh.store().get(def.full, r.namespace(), r.id()).cloned();
        if def.full == t::MACHINE_CLASS {
            validate_machine_class(sh, &r, existing.as_ref()).map_err(|e| {
                format!("rpc error: code = InvalidArgument desc = failed to validate: {e}")
            })?;
        }
        if let Some(old) = &existing {
            r.metadata.owner = old.metadata.owner.clone();
            r.metadata.finalizers = old.metadata.finalizers.clone();
        }
        if !dry_run {
            sh.store().put(r);
        }
    }
    Ok(0)
}

/// Keep only the spec keys the type knows (Omni decodes specs non-strictly: camelCase keys
/// such as `providerData` are silently dropped, omni.md §6).
fn known_fields(fields: Option<&'static [(&'static str, types::F)]>, v: &Value) -> Value {
    let Some(fields) = fields else {
        return v.clone();
    };
    let Some(obj) = v.as_object() else {
        return Value::Object(Default::default());
    };
    let mut out = serde_json::Map::new();
    for (name, f) in fields {
        if let Some(val) = obj.get(*name) {
            let val = match f {
                types::F::Msg(sub) if val.is_object() => known_fields(Some(sub), val),
                types::F::List(types::F::Msg(sub)) => match val.as_array() {
                    Some(items) => {
                        Value::Array(items.iter().map(|i| known_fields(Some(sub), i)).collect())
                    }
                    None => val.clone(),
                },
                _ => val.clone(),
            };
            out.insert((*name).to_string(), val);
        }
    }
    Value::Object(out)
}

/// Omni's MachineClass validation (`validations/machine_class.go`, omni.md §6).
fn validate_machine_class(sh: &Shared, r: &Resource, old: Option<&Resource>) -> Result<(), String> {
    let auto = r.spec.get("autoprovision").filter(|a| a.is_object());
    let labels: Vec<String> = r
        .spec
        .get("matchlabels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if auto.is_some() && !labels.is_empty() {
        return Err("can't set both auto provision and match labels at the same time".into());
    }
    if let Some(auto) = auto {
        let provider = auto.get("providerid").and_then(Value::as_str).unwrap_or("");
        if provider.is_empty() {
            return Err("providerID can not be empty".into());
        }
        let data = auto
            .get("providerdata")
            .and_then(Value::as_str)
            .unwrap_or("");
        let old_data = old
            .and_then(|o| o.spec.get("autoprovision"))
            .and_then(|a| a.get("providerdata"))
            .and_then(Value::as_str);
        if old_data == Some(data) {
            return Ok(());
        }
        let status = sh
            .store()
            .get(t::INFRA_PROVIDER_STATUS, NS_INFRA_PROVIDER, provider)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "failed to get provider: resource {}({NS_INFRA_PROVIDER}/{provider}@undefined) doesn't exist",
                    t::INFRA_PROVIDER_STATUS
                )
            })?;
        if status
            .metadata
            .labels
            .contains_key("omni.sidero.dev/is-static-infra-provider")
        {
            return Err("cannot use static provider in the auto-provisioned machine class".into());
        }
        let schema = status
            .spec
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or("");
        if schema.is_empty() {
            return Ok(());
        }
        return super::schema::validate_provider_data(schema, data);
    }
    if labels.is_empty() {
        return Err("machine class should either have auto provision or match labels set".into());
    }
    for l in &labels {
        for term in l.split(',') {
            if term
                .trim()
                .starts_with("omni.sidero.dev/no-manual-allocation")
            {
                return Err(
                    "selectors using label omni.sidero.dev/no-manual-allocation are not allowed"
                        .into(),
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// cluster template
// ---------------------------------------------------------------------------------------

/// What a sync (or delete) would do.
struct Plan {
    create: Vec<Resource>,
    update: Vec<(Resource, Resource)>,
    destroy: Vec<Vec<Resource>>,
}

fn key(r: &Resource) -> (String, String, String) {
    (
        r.metadata.namespace.clone(),
        r.metadata.kind.clone(),
        r.metadata.id.clone(),
    )
}

/// Resources in the store that belong to the template's cluster (`actualResources`).
fn actual_resources(st: &Store, cluster: &str, expected: &[Resource]) -> Vec<Resource> {
    let mut out: Vec<Resource> = st
        .get(t::CLUSTER, NS_DEFAULT, cluster)
        .cloned()
        .into_iter()
        .collect();
    for kind in [
        t::MACHINE_SET,
        t::MACHINE_SET_NODE,
        t::CONFIG_PATCH,
        t::EXTENSIONS_CONFIGURATION,
    ] {
        out.extend(st.list_ns(kind, NS_DEFAULT).into_iter().filter(|r| {
            r.label(LABEL_CLUSTER) == Some(cluster)
                && r.metadata.owner.is_empty()
                && !r
                    .metadata
                    .labels
                    .contains_key("omni.sidero.dev/managed-by-machine-set-node-controller")
        }));
    }
    for e in expected {
        if out.iter().any(|a| key(a) == key(e)) {
            continue;
        }
        if let Some(a) = st.get(e.kind(), e.namespace(), e.id())
            && a.metadata.owner.is_empty()
        {
            out.push(a.clone());
        }
    }
    out
}

fn check_belongs(r: &Resource, cluster: &str) -> Result<(), String> {
    if r.metadata.kind != t::CLUSTER {
        let label = r.label(LABEL_CLUSTER).unwrap_or("");
        if label != cluster {
            return Err(format!(
                "resource {} belongs to cluster {label:?}, but template is for cluster {cluster:?}",
                r.string()
            ));
        }
    }
    Ok(())
}

/// Drop resources whose deletion follows from another one's (`deduplicateDeletion`), and
/// split into the two teardown phases (machine sets first).
fn phases(to_delete: Vec<Resource>) -> Vec<Vec<Resource>> {
    let keys: Vec<(String, String)> = to_delete
        .iter()
        .map(|r| (r.metadata.kind.clone(), r.metadata.id.clone()))
        .collect();
    let has = |kind: &str, id: &str| keys.iter().any(|(k, i)| k == kind && i == id);
    let kept: Vec<Resource> = to_delete
        .iter()
        .filter(|r| match r.metadata.kind.as_str() {
            t::CLUSTER => true,
            t::MACHINE_SET_NODE => match r.label(LABEL_MACHINE_SET) {
                Some(ms) => !has(t::MACHINE_SET, ms),
                None => true,
            },
            _ => match r.label(LABEL_CLUSTER) {
                Some(c) => !has(t::CLUSTER, c),
                None => true,
            },
        })
        .cloned()
        .collect();
    let (mut first, mut second): (Vec<Resource>, Vec<Resource>) = kept
        .into_iter()
        .partition(|r| r.metadata.kind == t::MACHINE_SET || r.metadata.kind == t::MACHINE_SET_NODE);
    sort_canonical(&mut first);
    sort_canonical(&mut second);
    vec![first, second]
}

fn sort_canonical(v: &mut [Resource]) {
    v.sort_by(|a, b| {
        template::canonical_order(a.kind())
            .cmp(&template::canonical_order(b.kind()))
            .then_with(|| a.id().cmp(b.id()))
    });
}

fn plan_sync(st: &Store, tmpl: &Template) -> Result<Plan, String> {
    let cluster = tmpl.cluster_name()?;
    let expected = tmpl.translate()?;
    let actual = actual_resources(st, &cluster, &expected);
    let mut expected_map: BTreeMap<(String, String, String), Resource> =
        expected.iter().map(|r| (key(r), r.clone())).collect();
    let mut plan = Plan {
        create: Vec::new(),
        update: Vec::new(),
        destroy: Vec::new(),
    };
    let mut to_delete = Vec::new();
    for a in &actual {
        match expected_map.remove(&key(a)) {
            Some(mut e) => {
                e.metadata.version = a.metadata.version;
                e.metadata.created = a.metadata.created;
                e.metadata.updated = a.metadata.updated;
                e.metadata.finalizers = a.metadata.finalizers.clone();
                let same = e.metadata.labels == a.metadata.labels
                    && e.metadata.annotations == a.metadata.annotations
                    && e.spec_value() == a.spec_value();
                if !same {
                    plan.update.push((a.clone(), e));
                }
            }
            None => {
                check_belongs(a, &cluster)?;
                to_delete.push(a.clone());
            }
        }
    }
    for (_, e) in expected_map {
        if let Some(existing) = st.get(e.kind(), e.namespace(), e.id()) {
            let label = existing.label(LABEL_CLUSTER).unwrap_or("");
            return Err(format!(
                "resource {} already exists for cluster {label:?}, cannot create a conflicting resource for a different cluster",
                existing.string()
            ));
        }
        plan.create.push(e);
    }
    sort_canonical(&mut plan.create);
    plan.update.sort_by(|a, b| {
        template::canonical_order(a.1.kind())
            .cmp(&template::canonical_order(b.1.kind()))
            .then_with(|| a.1.id().cmp(b.1.id()))
    });
    plan.destroy = phases(to_delete);
    Ok(plan)
}

fn plan_delete(st: &Store, tmpl: &Template) -> Result<Plan, String> {
    let cluster = tmpl.cluster_name()?;
    let actual = actual_resources(st, &cluster, &[]);
    for a in &actual {
        check_belongs(a, &cluster)?;
    }
    Ok(Plan {
        create: Vec::new(),
        update: Vec::new(),
        destroy: phases(actual),
    })
}

/// The template files `-f` named (for `sync`, a directory is walked by the shim).
fn template_files(req: &Request) -> Result<&[FileArg], String> {
    if req.files.is_empty() {
        return Err("no template file was given".into());
    }
    Ok(&req.files)
}

fn load(file: &FileArg) -> Result<Template, String> {
    let base = Path::new(&file.abs)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    template::load(&base, &file.content).map_err(|e| format!("error loading template: {e}"))
}

async fn template_cmd(
    sh: &Arc<Shared>,
    req: &Request,
    verb: TemplateVerb,
    a: &TemplateArgs,
    o: &Out,
) -> Outcome {
    let files = template_files(req)?;
    match verb {
        TemplateVerb::Validate => {
            let tmpl = load(&files[0])?;
            tmpl.validate()?;
            Ok(0)
        }
        TemplateVerb::Sync => {
            let multi = files.len() > 1 || files[0].abs.ends_with('/');
            if a.verbose && multi {
                o.out(format!("Processing {} template file(s)\n", files.len()))
                    .await;
            }
            for f in files {
                if a.verbose && multi {
                    o.out(format!("Syncing template: {}\n", f.path)).await;
                }
                sync(sh, f, a, o)
                    .await
                    .map_err(|e| format!("failed to sync template {:?}: {e}", f.path))?;
            }
            Ok(0)
        }
        TemplateVerb::Delete => {
            let tmpl = load(&files[0])?;
            let plan = plan_delete(&sh.store(), &tmpl)?;
            for phase in plan.destroy {
                teardown_phase(sh, phase, a, o).await?;
            }
            Ok(0)
        }
        TemplateVerb::Diff => {
            let tmpl = load(&files[0])?;
            tmpl.validate()?;
            let plan = plan_sync(&sh.store(), &tmpl)?;
            let mut text = String::new();
            for (old, new) in &plan.update {
                text.push_str(&update_diff(old, new));
            }
            for c in &plan.create {
                text.push_str(&create_diff(c));
            }
            for r in plan.destroy.iter().flatten() {
                text.push_str(&destroy_diff(r));
            }
            o.out(text).await;
            Ok(0)
        }
        TemplateVerb::Status => {
            let tmpl = load(&files[0])?;
            tmpl.validate()?;
            let cluster = tmpl.cluster_name()?;
            status(sh, &cluster, a, o).await
        }
    }
}

fn create_diff(r: &Resource) -> String {
    template::unified_diff("", &to_yaml(&unsaved_yv(r), 2), "/dev/null", &r.describe())
        .unwrap_or_default()
}

fn update_diff(old: &Resource, new: &Resource) -> String {
    template::unified_diff(
        &template::diff_yaml(old),
        &template::diff_yaml(new),
        &old.describe(),
        &new.describe(),
    )
    .unwrap_or_default()
}

fn destroy_diff(r: &Resource) -> String {
    template::unified_diff(&template::diff_yaml(r), "", &r.describe(), "/dev/null")
        .unwrap_or_default()
}

async fn sync(sh: &Arc<Shared>, f: &FileArg, a: &TemplateArgs, o: &Out) -> Result<(), String> {
    let tmpl = load(f)?;
    tmpl.validate()?;
    let plan = plan_sync(&sh.store(), &tmpl).map_err(|e| format!("error syncing template: {e}"))?;
    let dry = if a.dry_run { " (dry run)" } else { "" };
    for c in plan.create {
        let mut text = format!("* creating{dry} {}\n", c.describe());
        if a.verbose {
            text.push_str(&create_diff(&c));
        }
        o.out(text).await;
        if !a.dry_run {
            sh.store().put(c);
        }
    }
    for (old, new) in plan.update {
        let mut text = format!("* updating{dry} {}\n", new.describe());
        if a.verbose {
            text.push_str(&update_diff(&old, &new));
        }
        o.out(text).await;
        if !a.dry_run {
            sh.store().put(new);
        }
    }
    for phase in plan.destroy {
        teardown_phase(sh, phase, a, o).await?;
    }
    Ok(())
}

/// Tear a phase down and wait until every resource in it is destroyed.
async fn teardown_phase(
    sh: &Arc<Shared>,
    phase: Vec<Resource>,
    a: &TemplateArgs,
    o: &Out,
) -> Result<(), String> {
    if phase.is_empty() {
        return Ok(());
    }
    let dry = if a.dry_run { " (dry run)" } else { "" };
    let mut rx = sh.store().subscribe();
    let mut pending: Vec<Resource> = Vec::new();
    for r in &phase {
        let mut text = format!("* tearing down{dry} {}\n", r.describe());
        if a.verbose {
            text.push_str(&destroy_diff(r));
        }
        o.out(text).await;
        if !a.dry_run {
            sh.store().teardown(r.kind(), r.namespace(), r.id());
            pending.push(r.clone());
        }
    }
    if a.dry_run {
        return Ok(());
    }
    let mut stopped = sh.stopped.clone();
    loop {
        // Report what is gone, in teardown order, then wait for the rest.
        let gone: Vec<Resource> = {
            let st = sh.store();
            pending
                .iter()
                .filter(|r| st.get(r.kind(), r.namespace(), r.id()).is_none())
                .cloned()
                .collect()
        };
        for g in &gone {
            o.out(format!("* destroyed{dry} {}\n", g.describe())).await;
        }
        pending.retain(|r| !gone.iter().any(|g| key(g) == key(r)));
        if pending.is_empty() {
            return Ok(());
        }
        tokio::select! {
            c = rx.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = c {
                    return Ok(());
                }
            }
            _ = stopped.changed() => return Err("context canceled".into()),
            _ = o.tx.closed() => return Err("context canceled".into()),
        }
    }
}

fn status_inputs(st: &Store, cluster: &str) -> template::StatusInputs {
    let labelled = |kind: &str| -> Vec<Resource> {
        st.list_ns(kind, NS_DEFAULT)
            .into_iter()
            .filter(|r| r.label(LABEL_CLUSTER) == Some(cluster))
            .collect()
    };
    template::StatusInputs {
        cluster_status: st.get(t::CLUSTER_STATUS, NS_DEFAULT, cluster).cloned(),
        machine_sets: labelled(t::MACHINE_SET_STATUS),
        control_planes: labelled(t::CONTROL_PLANE_STATUS),
        load_balancers: labelled(t::LOAD_BALANCER_STATUS),
        kubernetes_upgrades: labelled(t::KUBERNETES_UPGRADE_STATUS),
        talos_upgrades: labelled(t::TALOS_UPGRADE_STATUS),
        machines: labelled(t::CLUSTER_MACHINE_STATUS),
    }
}

/// `cluster template status`: print the tree, reprint on change, exit 0 once healthy.
async fn status(sh: &Arc<Shared>, cluster: &str, a: &TemplateArgs, o: &Out) -> Outcome {
    let wait = !a.wait.is_zero();
    let deadline = tokio::time::Instant::now() + a.wait;
    let mut rx = sh.store().subscribe();
    let mut stopped = sh.stopped.clone();
    let mut last: Option<String> = None;
    loop {
        let rendered = template::render_status(&status_inputs(&sh.store(), cluster));
        match rendered {
            Some((tree, healthy)) => {
                if !a.quiet && last.as_deref() != Some(tree.as_str()) {
                    o.out(tree.clone()).await;
                }
                last = Some(tree);
                if healthy {
                    return Ok(0);
                }
                if !wait {
                    return Err("cluster is not healthy".into());
                }
            }
            None if !wait => return Err("cluster is not healthy".into()),
            None => {}
        }
        tokio::select! {
            c = rx.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = c {
                    return Ok(0);
                }
                // Settle a burst of changes into one render, like omnictl's 1 s ticker.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep_until(deadline) => return Err("context deadline exceeded".into()),
            _ = stopped.changed() => return Err("context canceled".into()),
            _ = o.tx.closed() => return Ok(0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// kubeconfig
// ---------------------------------------------------------------------------------------

async fn kubeconfig(sh: &Arc<Shared>, req: &Request, k: &KubeconfigArgs, o: &Out) -> Outcome {
    if let Some(e) = &req.local_error {
        return Err(e.clone());
    }
    if sh.store().get(t::CLUSTER, NS_DEFAULT, &k.cluster).is_none() {
        return Err(format!("cluster not found: {:?}", k.cluster));
    }
    if k.service_account && k.user.is_empty() {
        return Err("--user flag is required when --service-account is set to true".into());
    }
    let provider = sh.kubeconfig_provider().ok_or_else(|| {
        format!(
            "rpc error: code = Unavailable desc = the twin cannot issue a kubeconfig for cluster {:?}: no kubeconfig provider is set (OmniTwin::set_kubeconfig_provider)",
            k.cluster
        )
    })?;
    let user = if k.service_account {
        k.user.clone()
    } else {
        req.identity.clone()
    };
    let cluster = k.cluster.clone();
    let content = tokio::task::spawn_blocking(move || provider(&cluster, &user))
        .await
        .map_err(|e| format!("rpc error: code = Internal desc = {e}"))?
        .ok_or_else(|| format!("cluster {} not found", k.cluster))?;
    o.tx.send(Frame::Kubeconfig(content))
        .await
        .map_err(|_| "context canceled".to_string())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_cluster_deletes_only_the_cluster_itself() {
        let c = Resource::new(t::CLUSTER, NS_DEFAULT, "c", serde_json::json!({}));
        let ms = Resource::new(
            t::MACHINE_SET,
            NS_DEFAULT,
            "c-workers",
            serde_json::json!({}),
        )
        .with_label(LABEL_CLUSTER, "c");
        let p = phases(vec![ms, c]);
        assert!(p[0].is_empty());
        assert_eq!(p[1].len(), 1);
        assert_eq!(p[1][0].kind(), t::CLUSTER);
    }
}

//! Watches (reference §5): a chunked body of newline-delimited `{"type","object"}` events.
//!
//! Without a resourceVersion (or with `0`, or `sendInitialEvents=true`) the stream starts
//! with a synthetic ADDED per current object; with one it replays the history after it.
//! Selectors apply to both ends of a change: an object that stops matching arrives as
//! DELETED, one that starts matching as ADDED, like the API server's watch cache. A
//! resourceVersion older than the history gets an in-stream ERROR event carrying a 410
//! `Expired` Status (kube-rs relists only on that, not on an HTTP 410). BOOKMARKs are sent
//! periodically when `allowWatchBookmarks=true`, and after the initial events of a
//! streaming list with the `k8s.io/initial-events-end` annotation. The stream ends after
//! `timeoutSeconds` or when the twin stops.
//!
//! A watch that asked for a Table (`kubectl get -w`) gets each object as a one-row Table,
//! the first one with the column definitions (`NoHeaders` afterwards, as kube-apiserver's
//! watch encoder does); one that asked for metadata gets `PartialObjectMetadata`. ERROR
//! events carry the Status unchanged.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::select::Filter;
use super::status::ApiError;
use super::store::{Event, EventType};
use super::table::{Format, Printer, partial};
use super::types::ResourceType;
use super::{Shared, lock};

/// Default watch length when the client sends no `timeoutSeconds` (the API server picks
/// 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch request asked for.
pub(crate) struct WatchRequest {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub filter: Filter,
    /// None: start with the current state.
    pub since: Option<u64>,
    pub bookmarks: bool,
    pub initial_events: bool,
    pub timeout: Option<Duration>,
    /// How each event's object is encoded.
    pub format: Format,
}

struct WatchState {
    shared: Arc<Shared>,
    req: WatchRequest,
    last_rv: u64,
    pending: VecDeque<Bytes>,
    finished: bool,
    changes: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    deadline: Instant,
    bookmark_every: Duration,
    next_bookmark: Instant,
    /// The type's printer, for Table watches.
    printer: Option<Printer>,
    headers_sent: bool,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = format!("{{\"type\":\"{kind}\",\"object\":");
    s.push_str(&object.to_string());
    s.push_str("}\n");
    Bytes::from(s)
}

impl WatchState {
    /// One event line, its object encoded as the watch asked.
    fn event(&mut self, kind: &str, object: &Value) -> Bytes {
        match (&self.req.format, &self.printer) {
            (Format::Metadata { group_version }, _) => line(kind, &partial(object, group_version)),
            (
                Format::Table {
                    group_version,
                    include,
                },
                Some(p),
            ) if kind != "BOOKMARK" => {
                let meta =
                    json!({"resourceVersion": object["metadata"]["resourceVersion"].clone()});
                let t = p.table(
                    &[object],
                    meta,
                    *include,
                    group_version,
                    !self.headers_sent,
                    chrono::Utc::now(),
                );
                self.headers_sent = true;
                line(kind, &t)
            }
            _ => line(kind, object),
        }
    }

    fn bookmark(&mut self, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.req.rt.kind, "apiVersion": self.req.rt.api_version(), "metadata": meta});
        self.event("BOOKMARK", &obj)
    }

    fn in_scope(&self, obj: &Value) -> bool {
        self.req.filter.matches(obj)
    }

    /// Queue the initial events (or the 410) under the store lock.
    fn start(&mut self) {
        let shared = Arc::clone(&self.shared);
        let world = lock(&shared.world);
        let store = &world.store;
        if matches!(self.req.format, Format::Table { .. }) {
            self.printer = Some(Printer::for_type(store, &self.req.rt));
        }
        match self.req.since {
            Some(rv) if !self.req.initial_events => {
                self.last_rv = rv;
                let gvr = &self.req.rt.gvr;
                if let Err(oldest) = store.window_reaches(rv, |g| g == gvr) {
                    self.expire(rv, oldest);
                }
            }
            _ => {
                let objs = store.list(
                    &self.req.rt.gvr,
                    self.req.namespace.as_deref(),
                    &self.req.filter,
                );
                for o in objs {
                    let b = self.event("ADDED", &o);
                    self.pending.push_back(b);
                }
                self.last_rv = store.resource_version();
                if self.req.initial_events && self.req.bookmarks {
                    let b = self.bookmark(true);
                    self.pending.push_back(b);
                }
            }
        }
    }

    fn expire(&mut self, rv: u64, oldest: u64) {
        let status = ApiError::expired(rv, oldest + 1).to_status();
        self.pending.push_back(line("ERROR", &status));
        self.finished = true;
    }

    /// Queue the changes after `last_rv` that this watch sees.
    fn scan(&mut self) {
        let (found, now) = {
            let world = lock(&self.shared.world);
            let gvr = &self.req.rt.gvr;
            (
                world.store.events_since(self.last_rv, |g| g == gvr),
                world.store.resource_version(),
            )
        };
        let events = match found {
            // Every change of this type up to `now` is in `evs`: the watch has seen the
            // store up to there (what its bookmarks report).
            Ok(evs) => {
                self.last_rv = now;
                evs
            }
            Err(oldest) => {
                let rv = self.last_rv;
                self.expire(rv, oldest);
                return;
            }
        };
        for ev in events {
            if let Some(kind) = self.translate(&ev) {
                let b = self.event(kind, &ev.object);
                self.pending.push_back(b);
            }
        }
    }

    fn translate(&self, ev: &Event) -> Option<&'static str> {
        if ev.key.gvr != self.req.rt.gvr
            || self
                .req
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != ev.key.namespace)
        {
            return None;
        }
        let now = self.in_scope(&ev.object);
        let before = ev.old.as_deref().is_some_and(|o| self.in_scope(o));
        match ev.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => (before || now).then_some("DELETED"),
            EventType::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }
}

/// The event stream of one watch request.
pub(crate) fn stream(
    shared: Arc<Shared>,
    req: WatchRequest,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let changes = lock(&shared.world).store.subscribe();
    let stop = shared.stop.clone();
    let bookmark_every = Duration::from_secs_f64((60.0 * shared.time_scale).max(0.05));
    let now = Instant::now();
    let deadline = now + req.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut st = WatchState {
        shared,
        req,
        last_rv: 0,
        pending: VecDeque::new(),
        finished: false,
        changes,
        stop,
        deadline,
        bookmark_every,
        next_bookmark: now + bookmark_every,
        printer: None,
        headers_sent: false,
    };
    st.changes.borrow_and_update();
    st.start();
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(b) = st.pending.pop_front() {
                return Some((Ok(b), st));
            }
            if st.finished || *st.stop.borrow() {
                return None;
            }
            st.changes.borrow_and_update();
            st.scan();
            if !st.pending.is_empty() {
                continue;
            }
            let bookmarks = st.req.bookmarks;
            tokio::select! {
                r = st.changes.changed() => if r.is_err() { st.finished = true },
                _ = tokio::time::sleep_until(st.next_bookmark), if bookmarks => {
                    let b = st.bookmark(false);
                    st.pending.push_back(b);
                    st.next_bookmark = Instant::now() + st.bookmark_every;
                }
                _ = tokio::time::sleep_until(st.deadline) => st.finished = true,
                _ = st.stop.changed() => st.finished = true,
            }
        }
    })
}

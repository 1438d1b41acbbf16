//! `/healthz`, `/livez` and `/readyz` as kube-apiserver serves them
//! (`k8s.io/apiserver/pkg/server/healthz/healthz.go`, `handleRootHealth` and
//! `adaptCheckToHandler`; <https://kubernetes.io/docs/reference/using-api/health-checks/>):
//!
//! - the root path answers `ok` (`text/plain; charset=utf-8`, `X-Content-Type-Options:
//!   nosniff`), or with `?verbose` one line per check — `[+]NAME ok`, `[+]NAME excluded: ok` —
//!   and `NAME check passed`;
//! - `?exclude=NAME` (repeatable) skips a check; names no check has are reported as
//!   `warn: some health checks cannot be excluded: no matches for "a","b"` (sorted);
//! - any failing check makes it a 500 whose body lists every check with the failing ones as
//!   `[-]NAME failed: reason withheld` and ends with `NAME check failed` (Go's `http.Error`
//!   appends a newline), verbose or not;
//! - `/readyz/NAME` answers `ok`, or 500 `internal server error: REASON` with the real reason.
//!
//! The checks are those of a v1.34 kube-apiserver (as its `/readyz?verbose` prints them, e.g.
//! the transcripts of kubeadm and minikube clusters): `/livez` and `/healthz` have `ping`,
//! `log`, `etcd` and the post-start hooks; `/readyz` adds `etcd-readiness`, `informer-sync`
//! and `shutdown`. A check fails when the twin is told so ([`super::KubeTwin::fail_health_check`]);
//! a failing `etcd` also fails `etcd-readiness`, as both ask the same etcd.

use std::collections::{BTreeMap, BTreeSet};

/// The post-start hooks (and `autoregister-completion`) of a v1.34 kube-apiserver, in the
/// order it prints them.
const POST_START_HOOKS: [&str; 31] = [
    "poststarthook/start-apiserver-admission-initializer",
    "poststarthook/generic-apiserver-start-informers",
    "poststarthook/priority-and-fairness-config-consumer",
    "poststarthook/priority-and-fairness-filter",
    "poststarthook/storage-object-count-tracker-hook",
    "poststarthook/start-apiextensions-informers",
    "poststarthook/start-apiextensions-controllers",
    "poststarthook/crd-informer-synced",
    "poststarthook/start-system-namespaces-controller",
    "poststarthook/peer-endpoint-reconciler-controller",
    "poststarthook/start-cluster-authentication-info-controller",
    "poststarthook/start-kube-apiserver-identity-lease-controller",
    "poststarthook/start-kube-apiserver-identity-lease-garbage-collector",
    "poststarthook/storage-readiness",
    "poststarthook/start-legacy-token-tracking-controller",
    "poststarthook/start-service-ip-repair-controllers",
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/scheduling/bootstrap-system-priority-classes",
    "poststarthook/priority-and-fairness-config-producer",
    "poststarthook/bootstrap-controller",
    "poststarthook/start-kubernetes-service-cidr-controller",
    "poststarthook/aggregator-reload-proxy-client-cert",
    "poststarthook/start-kube-aggregator-informers",
    "poststarthook/apiservice-status-local-available-controller",
    "poststarthook/apiservice-status-remote-available-controller",
    "poststarthook/apiservice-registration-controller",
    "poststarthook/apiservice-discovery-controller",
    "poststarthook/kube-apiserver-autoregistration",
    "autoregister-completion",
    "poststarthook/apiservice-openapi-controller",
    "poststarthook/apiservice-openapiv3-controller",
];

/// The checks of one endpoint, in the order the server prints them.
fn checks(endpoint: &str) -> Vec<&'static str> {
    let mut out = vec!["ping", "log", "etcd"];
    if endpoint == "readyz" {
        out.extend(["etcd-readiness", "informer-sync"]);
    }
    out.extend(POST_START_HOOKS);
    if endpoint == "readyz" {
        out.push("shutdown");
    }
    out
}

/// Every check name any endpoint has.
pub(crate) fn known(check: &str) -> bool {
    checks("readyz").contains(&check)
}

/// The checks that fail, with the reason each gives.
#[derive(Default)]
pub(crate) struct Failures(BTreeMap<String, String>);

impl Failures {
    pub fn fail(&mut self, check: &str, reason: &str) {
        self.0.insert(check.to_string(), reason.to_string());
    }

    pub fn heal(&mut self, check: &str) {
        self.0.remove(check);
    }

    fn reason(&self, check: &str) -> Option<&str> {
        let own = self.0.get(check).map(String::as_str);
        match check {
            "etcd-readiness" => own.or_else(|| self.reason("etcd")),
            _ => own,
        }
    }
}

/// A health answer: status, body.
pub(crate) struct Answer {
    pub code: u16,
    pub body: String,
}

/// `/healthz`, `/livez`, `/readyz` and their `/NAME` sub-paths; `None` for any other path
/// (or a check the endpoint does not have).
pub(crate) fn answer(path: &str, query: Option<&str>, failures: &Failures) -> Option<Answer> {
    let path = path.trim_end_matches('/');
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let endpoint = parts.next()?;
    if !matches!(endpoint, "healthz" | "livez" | "readyz") {
        return None;
    }
    let all = checks(endpoint);
    if let Some(one) = parts.next() {
        let check = all.iter().find(|c| **c == one)?;
        return Some(match failures.reason(check) {
            None => Answer {
                code: 200,
                body: "ok".into(),
            },
            Some(r) => Answer {
                code: 500,
                body: format!("internal server error: {r}\n"),
            },
        });
    }
    let pairs: Vec<(String, String)> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect();
    let verbose = pairs.iter().any(|(k, _)| k == "verbose");
    let mut excluded: BTreeSet<String> = pairs
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.clone())
        .collect();
    let mut lines = String::new();
    let mut failed = false;
    for check in all {
        if excluded.remove(check) {
            lines.push_str(&format!("[+]{check} excluded: ok\n"));
        } else if failures.reason(check).is_some() {
            // The reason stays out of the public answer, as kube-apiserver keeps it.
            lines.push_str(&format!("[-]{check} failed: reason withheld\n"));
            failed = true;
        } else {
            lines.push_str(&format!("[+]{check} ok\n"));
        }
    }
    if !excluded.is_empty() {
        let names: Vec<String> = excluded.iter().map(|n| format!("{n:?}")).collect();
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            names.join(",")
        ));
    }
    Some(if failed {
        Answer {
            code: 500,
            body: format!("{lines}{endpoint} check failed\n"),
        }
    } else if verbose {
        Answer {
            code: 200,
            body: format!("{lines}{endpoint} check passed\n"),
        }
    } else {
        Answer {
            code: 200,
            body: "ok".into(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_lists_every_check_and_passes() {
        let a = answer("/readyz", Some("verbose"), &Failures::default()).unwrap();
        assert_eq!(a.code, 200);
        let lines: Vec<&str> = a.body.lines().collect();
        assert_eq!(
            &lines[..5],
            [
                "[+]ping ok",
                "[+]log ok",
                "[+]etcd ok",
                "[+]etcd-readiness ok",
                "[+]informer-sync ok"
            ]
        );
        assert_eq!(
            lines[lines.len() - 2..],
            ["[+]shutdown ok", "readyz check passed"]
        );
        let live = answer("/livez", Some("verbose"), &Failures::default()).unwrap();
        assert!(!live.body.contains("shutdown") && live.body.ends_with("livez check passed\n"));
        assert_eq!(
            answer("/healthz", None, &Failures::default()).unwrap().body,
            "ok"
        );
    }

    #[test]
    fn a_failing_etcd_fails_readiness_and_withholds_the_reason() {
        let mut f = Failures::default();
        f.fail("etcd", "context deadline exceeded");
        let a = answer("/readyz", None, &f).unwrap();
        assert_eq!(a.code, 500);
        assert!(a.body.contains(
            "[-]etcd failed: reason withheld\n[-]etcd-readiness failed: reason withheld\n"
        ));
        assert!(a.body.ends_with("readyz check failed\n"));
        assert!(!a.body.contains("deadline"));
        let one = answer("/readyz/etcd", None, &f).unwrap();
        assert_eq!(
            (one.code, one.body.as_str()),
            (500, "internal server error: context deadline exceeded\n")
        );
        let excl = answer(
            "/readyz",
            Some("exclude=etcd&exclude=etcd-readiness&exclude=nope&verbose"),
            &f,
        )
        .unwrap();
        assert_eq!(excl.code, 200, "{}", excl.body);
        assert!(excl.body.contains("[+]etcd excluded: ok\n"));
        assert!(
            excl.body
                .contains("warn: some health checks cannot be excluded: no matches for \"nope\"\n")
        );
        f.heal("etcd");
        assert_eq!(answer("/readyz", None, &f).unwrap().code, 200);
        assert!(answer("/readyz/nope", None, &f).is_none());
        assert!(answer("/livez/shutdown", None, &f).is_none());
    }
}

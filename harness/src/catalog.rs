//! The catalog's rules and selection: every scenario's [`Meta`] is checked (unique ids, each
//! id its module path, every prerequisite in the catalog and in a phase that runs no later),
//! and `--only ID|GLOB` picks scenarios, pulling in their prerequisites.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::scenario::{Meta, Scenario};

/// A catalog that breaks its rules (a programming error, caught by the catalog test).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    #[error("scenario id {0} is declared twice")]
    Duplicate(&'static str),
    #[error("scenario {id} is declared in module {module}; its id must be its module path")]
    WrongModule {
        id: &'static str,
        module: &'static str,
    },
    #[error("scenario {id} comes after {prerequisite}, which is not in the catalog")]
    MissingPrerequisite {
        id: &'static str,
        prerequisite: &'static str,
    },
    #[error("scenario {id} ({phase}) comes after {prerequisite} of the later phase {later}")]
    LaterPrerequisite {
        id: &'static str,
        phase: &'static str,
        prerequisite: &'static str,
        later: &'static str,
    },
}

/// Check every rule; all violations, in catalog order.
pub fn check(catalog: &[Arc<dyn Scenario>]) -> Vec<CatalogError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for s in catalog {
        let m = s.meta();
        if !seen.insert(m.id) {
            errors.push(CatalogError::Duplicate(m.id));
        }
        // `scenarios::dod::core_pods` declares `dod::core_pods`.
        let path = m.module.split_once("::").map(|(_, p)| p).unwrap_or("");
        if path != m.id {
            errors.push(CatalogError::WrongModule {
                id: m.id,
                module: m.module,
            });
        }
        for p in m.after {
            if !catalog.iter().any(|x| std::ptr::eq(x.meta(), *p)) {
                errors.push(CatalogError::MissingPrerequisite {
                    id: m.id,
                    prerequisite: p.id,
                });
            } else if p.phase > m.phase {
                errors.push(CatalogError::LaterPrerequisite {
                    id: m.id,
                    phase: m.phase.as_str(),
                    prerequisite: p.id,
                    later: p.phase.as_str(),
                });
            }
        }
    }
    errors
}

/// `--only` matched nothing.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--only {pattern} matches no scenario; `clusterproof list` shows the ids")]
pub struct NoMatch {
    pub pattern: String,
}

/// What `--only` selected.
pub struct Selection {
    /// In catalog order.
    pub scenarios: Vec<Arc<dyn Scenario>>,
    /// Ids that were not asked for but are prerequisites of ones that were.
    pub pulled_in: Vec<&'static str>,
}

/// The scenarios whose id matches one of `patterns` (an id, or a glob with `*`, e.g.
/// `dod::*`), plus their prerequisites (transitively), in catalog order.
pub fn select(catalog: &[Arc<dyn Scenario>], patterns: &[String]) -> Result<Selection, NoMatch> {
    let mut asked = BTreeSet::new();
    for p in patterns {
        let hits: Vec<_> = catalog
            .iter()
            .filter(|s| glob_match(p, s.id()))
            .map(|s| s.id())
            .collect();
        if hits.is_empty() {
            return Err(NoMatch { pattern: p.clone() });
        }
        asked.extend(hits);
    }
    let mut wanted = asked.clone();
    let mut todo: Vec<&'static Meta> = catalog
        .iter()
        .filter(|s| asked.contains(s.id()))
        .map(|s| s.meta())
        .collect();
    while let Some(m) = todo.pop() {
        for p in m.after {
            if wanted.insert(p.id) {
                todo.push(p);
            }
        }
    }
    Ok(Selection {
        scenarios: catalog
            .iter()
            .filter(|s| wanted.contains(s.id()))
            .cloned()
            .collect(),
        pulled_in: catalog
            .iter()
            .map(|s| s.id())
            .filter(|id| wanted.contains(id) && !asked.contains(id))
            .collect(),
    })
}

/// `*` matches any run of characters (`::` included); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Context, Need, Outcome, Phase};
    use futures::future::BoxFuture;

    struct S(&'static Meta);
    impl Scenario for S {
        fn meta(&self) -> &'static Meta {
            self.0
        }
        fn run<'a>(&'a self, _cx: &'a Context) -> BoxFuture<'a, Outcome> {
            Box::pin(async { Outcome::pass("") })
        }
    }

    static A: Meta = Meta {
        id: "provision::a",
        module: "scenarios::provision::a",
        phase: Phase::Provision,
        proves: "",
        needs: &[Need::Spec],
        after: &[],
    };
    static B: Meta = Meta {
        id: "provision::b",
        module: "scenarios::provision::b",
        phase: Phase::Provision,
        proves: "",
        needs: &[Need::Spec],
        after: &[&A],
    };
    /// Declared, but nobody put it in the catalog.
    static UNLISTED: Meta = Meta {
        id: "verify::unlisted",
        module: "scenarios::verify::unlisted",
        phase: Phase::Verify,
        proves: "",
        needs: &[Need::Spec],
        after: &[],
    };
    /// Its module is not its id, and it comes after one that is not listed and is later.
    static BAD: Meta = Meta {
        id: "provision::bad",
        module: "scenarios::provision::badly_named",
        phase: Phase::Provision,
        proves: "",
        needs: &[Need::Spec],
        after: &[&UNLISTED, &B],
    };

    fn cat(metas: &[&'static Meta]) -> Vec<Arc<dyn Scenario>> {
        metas
            .iter()
            .map(|m| Arc::new(S(m)) as Arc<dyn Scenario>)
            .collect()
    }

    #[test]
    fn a_good_catalog_passes() {
        assert_eq!(check(&cat(&[&A, &B])), []);
    }

    #[test]
    fn a_bad_catalog_names_every_broken_rule() {
        let errors = check(&cat(&[&A, &B, &BAD, &A]));
        assert_eq!(
            errors,
            [
                CatalogError::WrongModule {
                    id: "provision::bad",
                    module: "scenarios::provision::badly_named"
                },
                CatalogError::MissingPrerequisite {
                    id: "provision::bad",
                    prerequisite: "verify::unlisted"
                },
                CatalogError::Duplicate("provision::a"),
            ]
        );
        let with_later = check(&cat(&[&A, &B, &UNLISTED, &BAD]));
        assert!(
            with_later.contains(&CatalogError::LaterPrerequisite {
                id: "provision::bad",
                phase: "provision",
                prerequisite: "verify::unlisted",
                later: "verify"
            }),
            "{with_later:?}"
        );
    }

    #[test]
    fn only_pulls_in_prerequisites_and_refuses_what_matches_nothing() {
        let c = cat(&[&A, &B, &UNLISTED]);
        let sel = select(&c, &["provision::b".into()]).unwrap();
        let ids: Vec<_> = sel.scenarios.iter().map(|s| s.id()).collect();
        assert_eq!(ids, ["provision::a", "provision::b"]);
        assert_eq!(sel.pulled_in, ["provision::a"]);
        let sel = select(&c, &["verify::*".into()]).unwrap();
        assert_eq!(sel.scenarios.len(), 1);
        assert!(sel.pulled_in.is_empty());
        assert_eq!(
            select(&c, &["dod::nope".into()]).err(),
            Some(NoMatch {
                pattern: "dod::nope".into()
            })
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("dod::*", "dod::core_pods"));
        assert!(glob_match("*::core_*", "dod::core_pods"));
        assert!(glob_match("*", "x"));
        assert!(!glob_match("dod::*", "chaos::node_failure"));
        assert!(!glob_match("dod::core", "dod::core_pods"));
        assert!(!glob_match("a*a", "a"));
    }
}

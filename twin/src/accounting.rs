//! Request accounting shared by the twin's HTTP servers: a counter per request key (what a
//! server labels a request with) and the snapshot tests and benchmarks read.
//!
//! Each server defines its key ([`crate::kube::RequestKey`], [`crate::proxmox::RequestKey`]) and
//! says which keys are mutating; only requests that arrive over HTTP from clients are
//! counted, never what the twin's own components do to its state in-process.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a request key says about the request.
pub trait Classify {
    /// Whether the request asks for a change (a write, a delete, an action).
    fn mutating(&self) -> bool;
}

/// A snapshot of the counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestCounts<K: Ord> {
    /// Every counted request.
    pub total: u64,
    /// The counted requests whose key is [`Classify::mutating`].
    pub mutating: u64,
    /// Requests per key.
    pub by_key: BTreeMap<K, u64>,
}

impl<K: Ord> Default for RequestCounts<K> {
    fn default() -> Self {
        RequestCounts {
            total: 0,
            mutating: 0,
            by_key: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone + Classify> RequestCounts<K> {
    /// The number of requests whose key satisfies `pred`.
    pub fn matching(&self, pred: impl Fn(&K) -> bool) -> u64 {
        self.by_key
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, n)| n)
            .sum()
    }

    /// What happened after `earlier` (a snapshot taken before): the difference per key.
    pub fn since(&self, earlier: &RequestCounts<K>) -> RequestCounts<K> {
        let by_key: BTreeMap<K, u64> = self
            .by_key
            .iter()
            .filter_map(|(k, n)| {
                let d = n.saturating_sub(earlier.by_key.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect();
        RequestCounts::from_map(by_key)
    }

    fn from_map(by_key: BTreeMap<K, u64>) -> RequestCounts<K> {
        RequestCounts {
            total: by_key.values().sum(),
            mutating: by_key
                .iter()
                .filter(|(k, _)| k.mutating())
                .map(|(_, n)| n)
                .sum(),
            by_key,
        }
    }
}

/// The live counters of one server.
pub(crate) struct Tally<K> {
    counts: Mutex<BTreeMap<K, u64>>,
}

impl<K: Ord + Clone + Classify> Tally<K> {
    pub fn new() -> Tally<K> {
        Tally {
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn add(&self, key: K) {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(key).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> RequestCounts<K> {
        let m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        RequestCounts::from_map(m.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct K(&'static str);
    impl Classify for K {
        fn mutating(&self) -> bool {
            self.0 == "POST"
        }
    }

    #[test]
    fn counts_totals_mutations_and_differences() {
        let t = Tally::new();
        t.add(K("GET"));
        let before = t.snapshot();
        t.add(K("GET"));
        t.add(K("POST"));
        let now = t.snapshot();
        assert_eq!((now.total, now.mutating), (3, 1));
        assert_eq!(now.matching(|k| k.0 == "GET"), 2);
        let d = now.since(&before);
        assert_eq!((d.total, d.mutating), (2, 1));
        assert_eq!(d.by_key.get(&K("GET")), Some(&1));
    }
}

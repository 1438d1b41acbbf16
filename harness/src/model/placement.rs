//! Where the Omni Proxmox provider will put each VM, and whether memory allows it.
//!
//! The provider (`pickNode`, `shared/reference/omni.md` §9.4) honours a `node` pin, and
//! otherwise picks the online host with the highest free-memory fraction
//! `(maxmem − mem) / maxmem`. What that fraction sees depends on the provider's version
//! (`shared/reference/failure-semantics.md` §1; sources there: the provider's
//! `provision.go` at `0d9fd58`, its v0.2.0 CHANGELOG, issue #51 and PR #68):
//! - up to v0.1.x ([`Scheduler::Unreserved`]) a machine set's requests are picked before any
//!   of its VMs runs, and Proxmox's `mem` counts only running VMs: every VM of a set sees the
//!   hosts as they were when the set started, so **the whole set lands on one host** (the
//!   "fewest VMs of this set" sort key is 0 for all of them: the tag is written later);
//! - from v0.2.0 ([`Scheduler::Reserving`]) the provider remembers its picks (reservations,
//!   counted within one machine set): the "fewest VMs of this set" key works, so a set
//!   spreads over the hosts whatever other sets' requests are interleaved with it, and each
//!   placed VM's memory counts for the next pick. v0.2.0 also offers other strategies
//!   (round-robin, binpack); this models its spreading placement.
//!
//! Memory fit is checked against what the VMs will use once running, whatever the version.

use std::collections::BTreeMap;

/// A host as `GET /nodes` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMem {
    pub name: String,
    pub online: bool,
    /// Bytes.
    pub total: u64,
    /// Bytes in use now (host and running VMs).
    pub used: u64,
}

/// The provider's version, as far as placement is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl ProviderVersion {
    /// `v0.1.4`, `0.2.0`, `v0.2.1-beta.0` (pre-release and build suffixes ignored).
    pub fn parse(s: &str) -> Option<ProviderVersion> {
        let core = s.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        let v = ProviderVersion {
            major: it.next()??,
            minor: it.next()??,
            patch: it.next().unwrap_or(Some(0))?,
        };
        it.next().is_none().then_some(v)
    }

    pub fn scheduler(&self) -> Scheduler {
        if (self.major, self.minor) >= (0, 2) {
            Scheduler::Reserving
        } else {
            Scheduler::Unreserved
        }
    }
}

impl std::fmt::Display for ProviderVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// How the provider's picks within one machine set see each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// Up to v0.1.x: picks do not reserve memory; a set stacks on one host.
    Unreserved,
    /// v0.2.0 and later: picks reserve memory; a set spreads.
    Reserving,
}

impl HostMem {
    /// A host as `GET /nodes` lists it.
    pub fn from_node(n: &crate::proxmox::types::NodeItem) -> HostMem {
        HostMem {
            name: n.node.clone(),
            online: n.online(),
            total: n.maxmem.unwrap_or(0),
            used: n.mem.unwrap_or(0),
        }
    }
}

/// One VM the template will create.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedVm {
    /// e.g. `talos-prod-01-control-planes #2`.
    pub label: String,
    /// The machine set it belongs to (`talos-prod-01-control-planes`).
    pub set: String,
    pub class: String,
    pub control_plane: bool,
    /// Bytes.
    pub memory: u64,
    /// Boot disk, bytes.
    pub disk: u64,
    /// The class's `storage_selector`.
    pub selector: Option<String>,
    pub pin: Option<String>,
}

/// The outcome of placing every planned VM.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Host → VMs placed there (by index into the planned list).
    pub placed: BTreeMap<String, Vec<usize>>,
    /// VMs that found no host with enough memory above the headroom, with the reason.
    pub unplaced: Vec<(usize, String)>,
    /// Memory used per host after placement (bytes).
    pub used_after: BTreeMap<String, u64>,
}

/// Memory a host may give to VMs: total minus the headroom (percent of total).
pub fn usable(h: &HostMem, headroom_percent: u8) -> u64 {
    h.total - h.total * u64::from(headroom_percent) / 100
}

/// Place `vms` on `hosts` as the provider would; a VM fits when the host's use after placing
/// it stays within [`usable`].
pub fn place(
    hosts: &[HostMem],
    vms: &[PlannedVm],
    headroom_percent: u8,
    scheduler: Scheduler,
) -> Plan {
    let mut used: BTreeMap<String, u64> = hosts.iter().map(|h| (h.name.clone(), h.used)).collect();
    // What the provider's free-memory fraction sees: with reservations, everything placed so
    // far; without, the hosts as they were before the current set.
    let mut seen = used.clone();
    let mut set: Option<&str> = None;
    // VMs of each set placed on each host so far.
    let mut set_on: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut plan = Plan::default();
    for (i, vm) in vms.iter().enumerate() {
        if set != Some(vm.set.as_str()) {
            set = Some(vm.set.as_str());
            seen = used.clone();
        }
        let sees = if scheduler == Scheduler::Reserving {
            &used
        } else {
            &seen
        };
        let target = match &vm.pin {
            Some(pin) => match hosts.iter().find(|h| &h.name == pin) {
                Some(h) if h.online => Some(h),
                Some(_) => {
                    plan.unplaced
                        .push((i, format!("pinned host {pin} is not online")));
                    continue;
                }
                None => {
                    plan.unplaced
                        .push((i, format!("pinned host {pin} does not exist")));
                    continue;
                }
            },
            None => hosts
                .iter()
                .filter(|h| h.online && h.total > 0)
                .min_by(|a, b| {
                    // v0.2.0's scheduler counts each set's picks: the fewest of this set first.
                    let of_set = |h: &HostMem| match scheduler {
                        Scheduler::Reserving => set_on
                            .get(&(vm.set.as_str(), h.name.as_str()))
                            .copied()
                            .unwrap_or(0),
                        Scheduler::Unreserved => 0,
                    };
                    let free = |h: &HostMem| {
                        (h.total - sees[&h.name].min(h.total)) as f64 / h.total as f64
                    };
                    of_set(a)
                        .cmp(&of_set(b))
                        .then_with(|| free(b).total_cmp(&free(a)))
                        .then_with(|| a.name.cmp(&b.name))
                }),
        };
        let Some(h) = target else {
            plan.unplaced.push((i, "no online host".into()));
            continue;
        };
        let after = used[&h.name] + vm.memory;
        if after > usable(h, headroom_percent) {
            plan.unplaced.push((
                i,
                format!(
                    "{} would need {} on {}, which has {} free above the headroom",
                    vm.label,
                    gib(vm.memory),
                    h.name,
                    gib(usable(h, headroom_percent).saturating_sub(used[&h.name]))
                ),
            ));
            continue;
        }
        used.insert(h.name.clone(), after);
        *set_on
            .entry((vm.set.as_str(), h.name.as_str()))
            .or_default() += 1;
        plan.placed.entry(h.name.clone()).or_default().push(i);
    }
    plan.used_after = used;
    plan
}

/// `12.5 GiB`.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    fn host(name: &str, total: u64, used: u64) -> HostMem {
        HostMem {
            name: name.into(),
            online: true,
            total: total * G,
            used: used * G,
        }
    }

    fn vm(label: &str, mem: u64, pin: Option<&str>) -> PlannedVm {
        PlannedVm {
            label: label.into(),
            set: label.into(),
            class: "c".into(),
            control_plane: false,
            memory: mem * G,
            disk: 0,
            selector: None,
            pin: pin.map(Into::into),
        }
    }

    #[test]
    fn most_free_fraction_first_and_pins_respected() {
        let hosts = [host("a", 64, 30), host("b", 64, 10), host("c", 32, 2)];
        let plan = place(
            &hosts,
            &[vm("v1", 8, None), vm("v2", 8, Some("a")), vm("v3", 8, None)],
            10,
            Scheduler::Reserving,
        );
        // c is 94% free, b 84%: v1 → c (then c is 69% free), v3 → b.
        assert_eq!(plan.placed["c"], vec![0]);
        assert_eq!(plan.placed["a"], vec![1]);
        assert_eq!(plan.placed["b"], vec![2]);
        assert!(plan.unplaced.is_empty());
    }

    #[test]
    fn headroom_is_respected_and_misfits_are_explained() {
        let hosts = [host("a", 64, 50)];
        let plan = place(&hosts, &[vm("big", 8, None)], 10, Scheduler::Reserving);
        assert_eq!(plan.unplaced.len(), 1);
        assert!(
            plan.unplaced[0]
                .1
                .contains("7.6 GiB free above the headroom"),
            "{}",
            plan.unplaced[0].1
        );
    }

    #[test]
    fn offline_and_missing_pins_do_not_place() {
        let mut down = host("a", 64, 0);
        down.online = false;
        let plan = place(
            &[down],
            &[
                vm("x", 1, Some("a")),
                vm("y", 1, Some("zz")),
                vm("z", 1, None),
            ],
            0,
            Scheduler::Unreserved,
        );
        assert_eq!(plan.unplaced.len(), 3);
    }

    fn set(name: &str, n: usize, mem: u64) -> Vec<PlannedVm> {
        (0..n)
            .map(|i| PlannedVm {
                set: name.into(),
                ..vm(&format!("{name} #{i}"), mem, None)
            })
            .collect()
    }

    #[test]
    fn before_v0_2_a_set_stacks_on_one_host_and_from_v0_2_it_spreads() {
        let hosts = [host("a", 64, 4), host("b", 64, 6), host("c", 64, 8)];
        let mut vms = set("cp", 3, 8);
        vms.extend(set("w", 2, 16));
        let old = place(
            &hosts,
            &vms,
            10,
            ProviderVersion::parse("v0.1.4").unwrap().scheduler(),
        );
        // All control planes on a (the most free when the set started); the workers' set
        // starts seeing a's 24 GiB: b is the most free then, and both workers go there.
        assert_eq!(old.placed["a"], vec![0, 1, 2]);
        assert_eq!(old.placed["b"], vec![3, 4]);
        let new = place(
            &hosts,
            &vms,
            10,
            ProviderVersion::parse("0.2.0").unwrap().scheduler(),
        );
        let cp_hosts: std::collections::BTreeSet<_> = new
            .placed
            .iter()
            .filter(|(_, ids)| ids.iter().any(|i| *i < 3))
            .map(|(h, _)| h.clone())
            .collect();
        assert_eq!(cp_hosts.len(), 3, "{:?}", new.placed);
    }

    #[test]
    fn versions_parse_with_or_without_v_and_suffixes() {
        let v = |s| ProviderVersion::parse(s).map(|v| v.scheduler());
        assert_eq!(v("v0.1.4"), Some(Scheduler::Unreserved));
        assert_eq!(v("0.2.0"), Some(Scheduler::Reserving));
        assert_eq!(v("v1.0.0-beta.1"), Some(Scheduler::Reserving));
        assert_eq!(v("v0.1"), Some(Scheduler::Unreserved));
        assert_eq!(v("latest"), None);
        assert_eq!(v("0.1.2.3"), None);
    }
}

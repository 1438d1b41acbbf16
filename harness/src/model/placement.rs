//! Where the Omni Proxmox provider will put each VM, and whether memory allows it.
//!
//! The provider (`pickNode`, `shared/reference/omni.md` §9.4) honours a `node` pin, and
//! otherwise picks the online host with the highest free-memory fraction
//! `(maxmem − mem) / maxmem` — with the provider's pinned go-proxmox the "fewest VMs of this
//! set" tie-break never applies. Each placed VM's memory counts as used for the next one.

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

/// One VM the template will create.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedVm {
    /// e.g. `talos-prod-01-control-planes #2`.
    pub label: String,
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
pub fn place(hosts: &[HostMem], vms: &[PlannedVm], headroom_percent: u8) -> Plan {
    let mut used: BTreeMap<String, u64> = hosts.iter().map(|h| (h.name.clone(), h.used)).collect();
    let mut plan = Plan::default();
    for (i, vm) in vms.iter().enumerate() {
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
                .max_by(|a, b| {
                    let fa = (a.total - used[&a.name].min(a.total)) as f64 / a.total as f64;
                    let fb = (b.total - used[&b.name].min(b.total)) as f64 / b.total as f64;
                    fa.total_cmp(&fb).then_with(|| b.name.cmp(&a.name))
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
        let plan = place(&hosts, &[vm("big", 8, None)], 10);
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
        );
        assert_eq!(plan.unplaced.len(), 3);
    }
}

//! Chaos: experiments that break the lab on purpose and always put it back (DESIGN §4).

pub mod node_failure;

//! The `clusterproof` library: the run session the CLI and the nextest lab suite share
//! ([`session`]), the command line's definition ([`cli`]), offline linting ([`lint`]) and
//! the terminal's progress and tables ([`terminal`]).

pub mod bench;
pub mod cli;
pub mod lint;
pub mod session;
pub mod terminal;

pub use session::{ChaosMode, ChaosRequest, ChaosTarget, RunOutcome, Session, SessionError};

/// A multi-threaded async runtime for one command.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

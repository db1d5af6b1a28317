//! The open-file limit of a serving mirror.
//!
//! Every connection and every file being sent is a file descriptor, and the
//! soft limit a process starts with is often 1024, below the default
//! connection budgets together: past it, accepting fails and clients are
//! turned away before any budget is full. So `serve` raises its soft limit
//! to the hard limit (which an unprivileged process may do), and warns when
//! even that is below what the budgets need.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// Descriptors besides the connections: listeners, files being sent, Tor's
/// own sockets and state files, the log.
const RESERVE: u64 = 256;

/// The open-file limits of this process, after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before; `None`: unlimited.
    pub before: Option<u64>,
    /// The soft limit now; `None`: unlimited.
    pub now: Option<u64>,
}

/// Raises the soft open-file limit to the hard one, and warns when the
/// result is below `connections` (the budgets together) and a reserve.
pub fn raise(connections: u64) -> NofileLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let mut now = current;
    if let (Some(soft), Some(hard)) = (current, maximum)
        && soft < hard
    {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        ) {
            Ok(()) => {
                info!(from = soft, to = hard, "raised the open-file limit");
                now = Some(hard);
            }
            Err(e) => warn!(error = %e, soft, hard, "cannot raise the open-file limit"),
        }
    }
    let needed = connections.saturating_add(RESERVE);
    if let Some(limit) = now
        && limit < needed
    {
        warn!(
            limit,
            needed,
            "the open-file limit is below the connection budgets: raise LimitNOFILE (or \
             `ulimit -n`) or lower [limits]"
        );
    }
    NofileLimit {
        before: current,
        now,
    }
}

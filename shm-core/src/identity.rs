//! Process identities that survive PID reuse (stand-in; replaced by the full module).

/// Who created or holds something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// PID or TID in its own namespace.
    pub id: u32,
    /// Start-time token.
    pub token: u32,
    /// PID namespace inode, 0 = unknown.
    pub pidns: u32,
}

/// Whether an identity is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Alive.
    Alive,
    /// Provably dead.
    Dead,
    /// Cannot tell.
    Unknown,
}

impl Identity {
    /// This process.
    pub fn current_process() -> Identity {
        Identity {
            id: std::process::id(),
            token: 1,
            pidns: 0,
        }
    }

    /// Liveness.
    pub fn liveness(&self) -> Liveness {
        Liveness::Unknown
    }
}

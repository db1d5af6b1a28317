//! Race-free TCP port reservation on 127.0.0.1.
//!
//! A port is ours while we hold an exclusive lock on a per-port lock file in
//! the system temp dir; a bind probe then checks that no other program uses
//! it. Parallel test binaries lock before probing, so two of them can never
//! hand out the same port, and the lock lives as long as the network.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Range;
use std::path::PathBuf;

use super::{Error, Result};

/// Ports for tor's own listeners: below Linux's ephemeral range, so an
/// outgoing connection's source port cannot take one between probe and use.
pub const TOR_PORTS: Range<u16> = 20000..32000;

/// Ports the private exits accept: test HTTP servers reached through an exit
/// must listen in this range (the exits' policy summary is `accept 8000-8099`).
pub const EXIT_PORTS: Range<u16> = 8000..8100;

/// A reserved port; released when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    _lock: File,
}

impl PortLease {
    /// The port number.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

fn lock_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("onionpkg-port-locks");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the port lock dir", e))?;
    Ok(dir)
}

/// Reserves one free port in `range`, starting the search at a point that
/// differs between processes to keep contention low.
pub fn lease(range: Range<u16>) -> Result<PortLease> {
    let dir = lock_dir()?;
    let span = u32::from(range.end - range.start);
    let seed = std::process::id().wrapping_mul(2_654_435_761).wrapping_add(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    );
    for i in 0..span {
        let offset = u16::try_from((seed.wrapping_add(i)) % span).unwrap_or(0);
        let port = range.start + offset;
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        return Ok(PortLease { port, _lock: file });
    }
    Err(Error::NoFreePort {
        range: format!("{}..{}", range.start, range.end),
    })
}

/// Reserves `n` distinct ports in `range`.
pub fn lease_many(range: Range<u16>, n: usize) -> Result<Vec<PortLease>> {
    (0..n).map(|_| lease(range.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_until_dropped() {
        let a = lease(EXIT_PORTS).unwrap();
        let many = lease_many(EXIT_PORTS, 5).unwrap();
        assert!(many.iter().all(|l| l.port() != a.port()));
        assert!(EXIT_PORTS.contains(&a.port()));
        // Another handle on the same lock file cannot lock it while leased.
        let f = File::open(lock_dir().unwrap().join(format!("{}.lock", a.port()))).unwrap();
        assert!(f.try_lock().is_err());
        drop(a);
        assert!(f.try_lock().is_ok());
    }
}

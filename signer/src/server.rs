//! The Unix socket server and the process that runs it.
//!
//! `serve` takes the state directory's lock, starts the key holder, opens the
//! service (checking every key), binds the socket (mode 0660) and answers
//! frames, one request at a time across all connections (and those of the
//! relays it dials, [`crate::dial`]). It listens on no TCP socket.
//!
//! # Invariants
//! - This process never opens the key store; it reaches keys only through
//!   the key holder, restarted if it dies.
//! - At most [`MAX_CONNECTIONS`] connections are served at once; each frame
//!   has a size cap and a deadline ([`crate::frame`]).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use onionpkg_config::SignerConfig;

use crate::frame::{self, FRAME_DEADLINE, FrameError, MAX_REQUEST};
use crate::holder::Holder;
use crate::keys::{KeyRole, RoleKey};
use crate::request::{Reason, Refusal, Response};
use crate::service::{Keys, Service};
use crate::{Error, Result};

/// The most connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// The key holder, started again after a failure.
#[derive(Debug)]
pub struct RespawningHolder {
    exe: PathBuf,
    config: PathBuf,
    holder: Option<Holder>,
}

impl RespawningHolder {
    /// A key holder run as `exe key-holder --config config`.
    pub fn new(exe: PathBuf, config: PathBuf) -> Self {
        Self {
            exe,
            config,
            holder: None,
        }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Holder) -> Result<T>) -> Result<T> {
        let holder = match &mut self.holder {
            Some(h) => h,
            None => self.holder.insert(Holder::spawn(&self.exe, &self.config)?),
        };
        let out = f(holder);
        if out.is_err() {
            // A fresh key holder for the next call, whatever went wrong.
            self.holder = None;
        }
        out
    }
}

impl Keys for RespawningHolder {
    fn key(&mut self, role: KeyRole) -> Result<RoleKey> {
        self.with(|h| h.key(role))
    }
    fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        self.with(|h| h.sign(role, msg))
    }
}

/// Takes the state directory's lock for as long as the file lives.
fn lock(state_dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(state_dir).map_err(Error::io("creating", state_dir))?;
    let path = state_dir.join("lock");
    let file = onionpkg_trust::util::open_lock_file(&path).map_err(Error::io("opening", &path))?;
    file.try_lock()
        .map_err(|_| Error::Busy(state_dir.to_path_buf()))?;
    Ok(file)
}

/// Binds the socket with mode 0660, replacing a stale socket file.
fn bind(path: &Path) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Invalid(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        // We hold the state lock: no other signer serves it.
        std::fs::remove_file(path).map_err(Error::io("removing the stale socket", path))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    }
    let listener = UnixListener::bind(path).map_err(Error::io("binding", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(Error::io("setting the mode of", path))?;
    Ok(listener)
}

/// Runs the service until killed. `config` is the configuration file, which
/// the key holder reads too.
pub fn serve(cfg: &SignerConfig, config: &Path) -> Result<()> {
    let _lock = lock(&cfg.state_dir)?;
    let exe = std::env::current_exe().map_err(Error::io("finding", Path::new("/proc/self/exe")))?;
    let config = std::path::absolute(config).map_err(Error::io("resolving", config))?;
    let keys = Box::new(RespawningHolder::new(exe, config));
    let service = Service::open(cfg.clone(), keys, jiff::Timestamp::now().as_second())?;
    let service = Arc::new(Mutex::new(service));
    crate::dial::spawn(&cfg.upstream, &service)?;
    let listener = bind(&cfg.socket)?;
    tracing::info!(socket = %cfg.socket.display(), "listening");
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("too many connections; closing one");
            continue;
        }
        let (service, open) = (Arc::clone(&service), Arc::clone(&open));
        std::thread::spawn(move || {
            connection(stream, &service);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// Answers the frames of one connection until it closes or breaks a rule.
fn connection(mut stream: UnixStream, service: &Mutex<Service>) {
    loop {
        let response = match frame::read_frame(&mut stream, MAX_REQUEST, FRAME_DEADLINE) {
            Ok(request) => {
                let now = jiff::Timestamp::now().as_second();
                match service.lock() {
                    Ok(mut s) => s.handle(&request, now),
                    Err(_) => return,
                }
            }
            Err(FrameError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "dropping a connection");
                Response::Refused(Refusal::new(Reason::Malformed, e.to_string()))
            }
        };
        let Ok(bytes) = serde_json::to_vec(&response) else {
            return;
        };
        let refused_frame =
            matches!(&response, Response::Refused(r) if r.reason == Reason::Malformed);
        if frame::write_frame(&mut stream, &bytes, FRAME_DEADLINE).is_err() || refused_frame {
            return;
        }
    }
}

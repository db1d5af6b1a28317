//! The pinned root: the trust every other check starts from.

use std::path::{Path, PathBuf};

use onionpkg_trust::roles;
use tracing::info;

use crate::context::App;
use crate::err::{AppError, AppResult};

impl App {
    /// Checks `root_file` (the configured `trust_root` when `None`) and pins
    /// it in the state directory. A different root already pinned is kept
    /// unless `replace` is set: pinning decides what the appliance trusts.
    /// Returns the version pinned and whether anything changed.
    pub fn init(&self, root_file: Option<&Path>, replace: bool) -> AppResult<(u64, bool)> {
        let root_file = root_file.unwrap_or(&self.config().trust_root);
        let bytes =
            crate::state::read_capped(root_file, roles::ROOT_MAX_BYTES).map_err(|source| {
                AppError::Io {
                    path: root_file.to_owned(),
                    source,
                }
            })?;
        let root = onionpkg_trust::metadata::check_root(&bytes)?;
        let pinned_path = self.state().root();
        match crate::state::read_capped(&pinned_path, roles::ROOT_MAX_BYTES) {
            Ok(pinned) if pinned == bytes => return Ok((root.version, false)),
            Ok(pinned) if !replace => {
                let pinned_version = onionpkg_trust::metadata::check_root(&pinned)
                    .map(|r| r.version)
                    .unwrap_or(0);
                return Err(AppError::RootPinned {
                    pinned: self.state().root(),
                    pinned_version,
                    new: root_file.to_owned(),
                    new_version: root.version,
                });
            }
            Ok(_) => {
                // Another root: what was trusted under the old one (metadata,
                // the announcement floor, completed downloads) is not
                // evidence under the new one.
                self.forget_trusted()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AppError::Io {
                    path: pinned_path,
                    source,
                });
            }
        }
        self.pin(&bytes)?;
        Ok((root.version, true))
    }

    fn forget_trusted(&self) -> AppResult<()> {
        let io = |path: PathBuf| move |source| AppError::Io { path, source };
        match std::fs::remove_dir_all(self.state().metadata()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(self.state().metadata())(e));
            }
            _ => {}
        }
        for file in [self.state().announced(), self.state().completed()] {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(file)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    fn pin(&self, bytes: &[u8]) -> AppResult<()> {
        std::fs::create_dir_all(self.state().metadata()).map_err(|source| AppError::Io {
            path: self.state().metadata(),
            source,
        })?;
        onionpkg_trust::util::write_atomic(&self.state().root(), bytes, None)?;
        Ok(())
    }

    /// The pinned root. On first use, when nothing is pinned yet, the
    /// configured `trust_root` (the root shipped with the appliance's image)
    /// is checked and pinned; after that the pinned root and the chain of
    /// roots verified from it rule.
    pub fn pinned_root(&self) -> AppResult<Vec<u8>> {
        let path = self.state().root();
        match crate::state::read_capped(&path, roles::ROOT_MAX_BYTES) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let shipped = &self.config().trust_root;
                let bytes = match crate::state::read_capped(shipped, roles::ROOT_MAX_BYTES) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(AppError::NotInitialized(path));
                    }
                    Err(source) => {
                        return Err(AppError::Io {
                            path: shipped.clone(),
                            source,
                        });
                    }
                };
                let root = onionpkg_trust::metadata::check_root(&bytes)?;
                self.pin(&bytes)?;
                info!(version = root.version, file = %shipped.display(), "pinned the configured trust root");
                Ok(bytes)
            }
            Err(source) => Err(AppError::Io { path, source }),
        }
    }
}

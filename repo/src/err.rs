//! The error type of the release side.

use std::path::PathBuf;

use onionpkg_core::{ErrorKind, HasKind};

/// A result with the release side's [`RepoError`].
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// Everything that can go wrong on the release side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// An error of the trust layer (keys, signatures, formats).
    #[error(transparent)]
    Trust(#[from] onionpkg_trust::Error),
    /// A repository file could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A repository file is not what it should be.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Not enough private keys are at hand to meet a role's threshold.
    #[error(
        "role {role} needs {threshold} signature(s) but only {available} of its keys are in {dir}"
    )]
    NotEnoughKeys {
        /// The role.
        role: String,
        /// The role's threshold.
        threshold: usize,
        /// Usable keys found.
        available: usize,
        /// Where keys were looked for.
        dir: PathBuf,
    },
    /// The signing service did not sign (unreachable, refused, broke the
    /// protocol).
    #[error("signer: {0}")]
    Signer(#[from] onionpkg_signer_client::ClientError),
    /// The signing service signed with a key the role does not have, or its
    /// signature does not verify.
    #[error("the signer's signature for {role} by key {key_id} {reason}")]
    SignerKey {
        /// The role.
        role: String,
        /// The key the signature names.
        key_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key directory lies inside the repository tree, which mirrors
    /// copy and serve.
    #[error(
        "the key directory {k} is inside the repository {r}, whose files mirrors copy and serve; \
         keep the keys outside it (the default is {r}.keys)",
        k = keys.display(),
        r = repo.display()
    )]
    KeysInRepository {
        /// The key directory, as given.
        keys: PathBuf,
        /// The repository directory, as given.
        repo: PathBuf,
    },
    /// The request does not make sense for this repository.
    #[error("{0}")]
    Invalid(String),
    /// The directory holds no repository: a mistyped path, or `init` not run.
    #[error(
        "{d} is not an onionpkg repository (no metadata/root.json); run `onionpkg-repo -r {d} init` first?",
        d = dir.display()
    )]
    NotARepository {
        /// The directory, as given.
        dir: PathBuf,
    },
    /// The repository was made with offline root keys and its first root
    /// still awaits their holders' signatures.
    #[error(
        "{d}: the first root is not installed yet: the root key holders sign {draft} (`onionpkg-repo root sign`), then `onionpkg-repo -r {d} root install`",
        d = dir.display(),
        draft = draft.display()
    )]
    FirstRootPending {
        /// The repository directory.
        dir: PathBuf,
        /// The root draft to sign.
        draft: PathBuf,
    },
}

impl RepoError {
    /// An I/O error on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// A malformed file.
    pub(crate) fn bad(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl From<onionpkg_trust::metadata::VerifyError> for RepoError {
    fn from(e: onionpkg_trust::metadata::VerifyError) -> Self {
        Self::Trust(e.into())
    }
}

impl From<onionpkg_trust::announce::AnnounceError> for RepoError {
    fn from(e: onionpkg_trust::announce::AnnounceError) -> Self {
        Self::Trust(e.into())
    }
}

impl From<onionpkg_trust::mirrors::MirrorListError> for RepoError {
    fn from(e: onionpkg_trust::mirrors::MirrorListError) -> Self {
        Self::Trust(e.into())
    }
}

impl From<onionpkg_trust::keys::KeyError> for RepoError {
    fn from(e: onionpkg_trust::keys::KeyError) -> Self {
        Self::Trust(e.into())
    }
}

impl HasKind for RepoError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Trust(e) => e.kind(),
            Self::Io { .. } => ErrorKind::Io,
            Self::BadFile { .. } => ErrorKind::BadInput,
            Self::NotEnoughKeys { .. } => ErrorKind::Key,
            Self::Signer(e) => e.kind(),
            Self::SignerKey { .. } => ErrorKind::Verification,
            Self::Invalid(_) | Self::KeysInRepository { .. } => ErrorKind::BadConfig,
            Self::NotARepository { .. } | Self::FirstRootPending { .. } => {
                ErrorKind::NotInitialized
            }
        }
    }
}

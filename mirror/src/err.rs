//! Errors of the mirror's serving paths.

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while launching or serving the onion service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service nickname is not a valid arti nickname.
    #[error("invalid onion service nickname {0:?}")]
    Nickname(String),

    /// arti refused the onion service configuration.
    #[error("invalid onion service configuration: {0}")]
    Config(#[from] arti_client::config::ConfigBuildError),

    /// arti could not launch the service (keystore, state dir, bootstrap).
    #[error("cannot launch the onion service: {0}")]
    Launch(#[source] arti_client::Error),

    /// The service is disabled in its configuration.
    #[error("the onion service is disabled in its configuration")]
    Disabled,

    /// The service has no identity key, so no address.
    #[error("the onion service has no address (no identity key in the keystore)")]
    NoAddress,

    /// Serving needs a tokio runtime, and none is running on this thread.
    #[error("no tokio runtime is running")]
    NoRuntime,
}

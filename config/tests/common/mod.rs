//! Helpers the configuration tests share.

use std::fmt::Debug;

use onionpkg_config::{ConfigError, ConfigFile, ErrorKind, HasKind, from_str};

/// Parses `text` as file `name`, expecting an error.
pub(crate) fn error<T: ConfigFile + Debug>(text: &str, name: &str) -> ConfigError {
    from_str::<T>(text, name).expect_err("the configuration should be refused")
}

/// Asserts the error's line and key, and that its message mentions `needle`.
#[track_caller]
pub(crate) fn assert_at(e: &ConfigError, line: usize, key: &str, needle: &str) {
    assert_eq!(e.line(), Some(line), "wrong line in: {e}");
    assert_eq!(e.key(), Some(key), "wrong key in: {e}");
    assert!(e.to_string().contains(needle), "{needle:?} not in: {e}");
    assert_eq!(e.kind(), ErrorKind::BadConfig);
}

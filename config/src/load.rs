//! Reading, parsing, validating: the one way to obtain a configuration.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, Deserializer};

use crate::err::{ConfigError, Location};
use crate::keypath::KeyPath;

/// Configuration files larger than this many bytes are refused: real ones are
/// a few KiB, and a runaway file must not exhaust an appliance's memory.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// A configuration file format: a TOML document with rules beyond its types.
pub trait ConfigFile: DeserializeOwned {
    /// Checks the rules that the types alone do not express, such as keys
    /// that depend on each other. Reports the first rule broken.
    fn validate(&self) -> Result<(), Invalid>;

    /// Makes relative paths absolute against `base` (the directory of the
    /// file) and fills in defaults derived from other keys.
    fn finish(&mut self, base: &Path);
}

/// A broken validation rule: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    key: String,
    near: Option<String>,
    message: String,
}

impl Invalid {
    /// The value at dotted path `key` (such as `feed[2].name`) is wrong.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            near: None,
            message: message.into(),
        }
    }

    /// Where to point when `key` itself is absent from the file, typically the
    /// key that makes it required.
    #[must_use]
    pub fn near(mut self, key: impl Into<String>) -> Self {
        self.near = Some(key.into());
        self
    }

    /// The dotted path of the key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Reads, parses and validates the configuration file at `path`.
///
/// Relative paths in the file are taken relative to the file's directory, so
/// the meaning of a file does not depend on the working directory.
pub fn load<T: ConfigFile>(path: impl AsRef<Path>) -> Result<T, ConfigError> {
    let path = path.as_ref();
    let text = read_limited(path)?;
    let text = String::from_utf8(text).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let at = std::str::from_utf8(&e.as_bytes()[..offset]).map_or_else(
            |_| Location::file(path),
            |ok| Location::at(path, ok, offset),
        );
        ConfigError::NotUtf8 { at }
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse(
        &text,
        path,
        absolute.parent().unwrap_or_else(|| Path::new("")),
    )
}

/// Parses and validates configuration text; `file_name` is used in errors and,
/// like the file's path in [`load`], as the base of relative paths.
pub fn from_str<T: ConfigFile>(text: &str, file_name: impl AsRef<Path>) -> Result<T, ConfigError> {
    let file = file_name.as_ref();
    parse(text, file, file.parent().unwrap_or_else(|| Path::new("")))
}

/// Reads at most [`MAX_FILE_SIZE`] bytes; the limit is checked on what is
/// read, not on the metadata, so special files and growing files are bounded
/// too.
fn read_limited(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_SIZE,
        });
    }
    Ok(text)
}

fn parse<T: ConfigFile>(text: &str, file: &Path, base: &Path) -> Result<T, ConfigError> {
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(ConfigError::TooLarge {
            path: file.to_path_buf(),
            limit: MAX_FILE_SIZE,
        });
    }
    let doc = DeTable::parse(text).map_err(|e| {
        let mut message = e.message().trim_end().to_owned();
        // The parser names no key; the span holds it.
        if let Some(key) = e.span().and_then(|s| text.get(s))
            && message == "duplicate key"
        {
            message = format!("duplicate key `{key}`");
        }
        ConfigError::Syntax {
            at: span_location(file, text, e.span()),
            message,
        }
    })?;
    let root = doc.get_ref().clone();
    let mut config =
        T::deserialize(Deserializer::from(doc)).map_err(|e| classify(file, text, &root, &e))?;
    config.validate().map_err(|inv| {
        let key = KeyPath::parse(&inv.key);
        let span = key
            .span_in(&root)
            .or_else(|| {
                inv.near
                    .as_deref()
                    .and_then(|n| KeyPath::parse(n).span_in(&root))
            })
            .or_else(|| key.nearest_span_in(&root));
        ConfigError::Invalid {
            at: span_location(file, text, span),
            key: inv.key,
            message: inv.message,
        }
    })?;
    config.finish(base);
    Ok(config)
}

fn span_location(file: &Path, text: &str, span: Option<std::ops::Range<usize>>) -> Location {
    span.map_or_else(
        || Location::file(file),
        |s| Location::at(file, text, s.start),
    )
}

/// Turns a deserialization error into the matching [`ConfigError`] variant.
///
/// The `toml` error carries a span and serde's message; the key comes from
/// the span, and the variant from the message's standard serde wording.
fn classify(file: &Path, text: &str, root: &DeTable<'_>, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim_end();
    let path = e
        .span()
        .map(|s| KeyPath::enclosing(root, &s))
        .unwrap_or_default();
    let at = span_location(file, text, e.span());
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let expected = rest.split_once("`, ").map_or("", |(_, exp)| exp);
        let expected = if expected == "there are no fields" {
            "this table takes no keys".to_owned()
        } else {
            expected.replace("expected one of", "expected one of:")
        };
        return ConfigError::UnknownKey {
            at,
            key: path.to_string(),
            expected,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.trim_end_matches('`');
        // A table's span is its header; a top-level key has no better place
        // than the file itself.
        let at = if path.is_root() {
            Location::file(file)
        } else {
            at
        };
        return ConfigError::MissingKey {
            at,
            key: path.join(name).to_string(),
        };
    }
    let key = path.to_string();
    if message.starts_with("invalid type: ") {
        return ConfigError::WrongType {
            at,
            key,
            message: plain_expected(message),
        };
    }
    ConfigError::Invalid {
        at,
        key,
        message: plain_expected(&message.replace("unknown variant", "unknown value")),
    }
}

/// Rewords serde's Rust type names ("expected u16") for operators.
fn plain_expected(message: &str) -> String {
    let Some((found, expected)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let plain = match expected {
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        "a map" => "a table",
        "path string" => "a path (a string)",
        other if other.starts_with("struct ") => "a table",
        other => other,
    };
    format!("{found}, expected {plain}")
}

/// A relative `path` resolved against `base`; absolute paths are kept.
pub(crate) fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() && !path.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_expected_rewords_rust_types() {
        assert_eq!(
            plain_expected("invalid value: integer `99999`, expected u16"),
            "invalid value: integer `99999`, expected an integer from 0 to 65535"
        );
        assert_eq!(
            plain_expected("invalid type: string \"x\", expected struct Tls"),
            "invalid type: string \"x\", expected a table"
        );
        assert_eq!(plain_expected("no comma here"), "no comma here");
    }

    #[test]
    fn resolve_keeps_absolute_paths() {
        let mut rel = PathBuf::from("keys/root.json");
        resolve(Path::new("/etc/onionpkg"), &mut rel);
        assert_eq!(rel, Path::new("/etc/onionpkg/keys/root.json"));
        let mut abs = PathBuf::from("/var/lib/x");
        resolve(Path::new("/etc/onionpkg"), &mut abs);
        assert_eq!(abs, Path::new("/var/lib/x"));
        let mut empty = PathBuf::new();
        resolve(Path::new("/etc"), &mut empty);
        assert_eq!(empty, PathBuf::new());
    }
}

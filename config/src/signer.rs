//! The configuration of `onionpkg-signer`, the signing service that holds the
//! online keys in a PKCS#11 token (or, for small setups, in encrypted key
//! files), authenticates every request by signature, enforces policy and
//! rate limits, and records every signature in a transparency log.
//!
//! # Invariants
//! - `root` appears nowhere: no client may request it and it has no limits,
//!   because root is never signed online.
//! - Exactly the keys of the chosen backend are set: a PKCS#11 setting in a
//!   file-backend configuration (or the reverse) is an error, not ignored.
//! - Every client has a distinct name and a distinct key, and at least one role.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::common::{check_slug, de_with, format_duration};
use crate::load::{ConfigFile, Invalid, resolve};

/// The widest request time window accepted: a longer one keeps replays
/// possible (and the nonce store large) for too long.
pub const MAX_REQUEST_WINDOW: Duration = Duration::from_secs(3600);

/// The roles a client may be allowed and limits may be set for. `bins`
/// stands for every hashed bin (`bin-00` … `bin-ff`); `announcement` is the
/// DNS announcement, signed with the timestamp key.
pub const ROLE_NAMES: [&str; 7] = [
    "targets",
    "bins",
    "mirrors",
    "feeds",
    "snapshot",
    "timestamp",
    "announcement",
];

/// The configuration of `onionpkg-signer`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// The Unix socket requests arrive on (created with mode 0660). Required.
    pub socket: PathBuf,
    /// Where the signer keeps what must survive restarts: the log entries,
    /// the checkpoints, the last signed payload per role. Required.
    pub state_dir: PathBuf,
    /// How far a request's time may be from the signer's clock, either way;
    /// nonces are remembered this long. At most 1h. Default: `"5m"`.
    #[serde(default = "default_window", deserialize_with = "de_with::duration")]
    pub request_window: Duration,
    /// Where the private keys live.
    pub backend: BackendConfig,
    /// The transparency log.
    pub log: LogConfig,
    /// Limits per role (`[role.timestamp]`, …); roles not listed get the
    /// defaults of [`RoleLimits`].
    #[serde(default)]
    pub role: BTreeMap<String, RoleLimits>,
    /// The clients allowed to ask for signatures (`[[client]]`); at least one.
    #[serde(default)]
    pub client: Vec<ClientConfig>,
    /// The relays the signer dials out to over mutual TLS (`[[upstream]]`)
    /// to collect requests from other hosts; none by default (the Unix
    /// socket only). The signer listens on no network socket either way.
    #[serde(default)]
    pub upstream: Vec<UpstreamConfig>,
}

/// The most `[[upstream]]` relays.
pub const MAX_UPSTREAMS: usize = 8;

/// `[[upstream]]`: a relay (`onionpkg-signer relay`) on another host that the
/// signer connects to, collecting its clients' requests and answering on the
/// same connection. The link is TLS 1.3 with a certificate on each side, each
/// trusted by the SHA-256 of its public key; it grants nothing by itself:
/// every request is still signed by a `[[client]]` key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The relay, `HOST:PORT` (a name is resolved at each connection).
    /// Required.
    pub address: String,
    /// The relay's certificate key pins: SHA-256 of its SubjectPublicKeyInfo,
    /// 64 hex digits each (`onionpkg-signer tls-pin CERT` prints it); more
    /// than one during a rotation. No CA, name or date is checked. Required.
    pub relay_pins: Vec<String>,
    /// The signer's certificate (PEM) presented to the relay, which pins its
    /// key. Required.
    pub cert: PathBuf,
    /// The private key of `cert` (PEM). Required.
    pub key: PathBuf,
}

fn check_pin(key: String, pin: &str) -> Result<(), Invalid> {
    if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Invalid::new(
            key,
            format!(
                "expected the SHA-256 of a certificate's public key as 64 hex digits, found {pin:?}"
            ),
        ))
    }
}

impl UpstreamConfig {
    fn validate(&self, i: usize) -> Result<(), Invalid> {
        let port_ok = self.address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !port_ok {
            return Err(Invalid::new(
                format!("upstream[{i}].address"),
                format!("expected HOST:PORT, found {:?}", self.address),
            ));
        }
        if self.relay_pins.is_empty() {
            return Err(Invalid::new(
                format!("upstream[{i}].relay_pins"),
                "needs at least one pin",
            ));
        }
        for (j, pin) in self.relay_pins.iter().enumerate() {
            check_pin(format!("upstream[{i}].relay_pins[{j}]"), pin)?;
        }
        for (name, path) in [("cert", &self.cert), ("key", &self.key)] {
            if path.as_os_str().is_empty() {
                return Err(Invalid::new(
                    format!("upstream[{i}].{name}"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}

/// Which kind of key store holds the signing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A PKCS#11 token: keys are generated inside it and cannot be exported.
    Pkcs11,
    /// Encrypted key files, one passphrase per role: the keys can be copied.
    File,
}

/// `[backend]`: the key store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `"pkcs11"` or `"file"`. Required.
    #[serde(rename = "type")]
    pub kind: BackendKind,
    /// pkcs11: the module, such as `/usr/lib/softhsm/libsofthsm2.so`.
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// pkcs11: the label of the token holding the keys.
    #[serde(default)]
    pub token: Option<String>,
    /// pkcs11: a file holding the user PIN (a trailing newline is ignored).
    /// Exactly one of `pin_file` and `pin_env`.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// pkcs11: the environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// file: the directory of the encrypted key files (`ROLE.key`).
    #[serde(default)]
    pub key_dir: Option<PathBuf>,
    /// file: the directory of the passphrase files, one per role
    /// (`ROLE.passphrase`, such as systemd's credentials directory).
    #[serde(default)]
    pub passphrase_dir: Option<PathBuf>,
}

/// `[log]`: the transparency log of every signature.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The log's origin line, the name clients know it by (such as
    /// `example.org/onionpkg-signer`); also the checkpoint key's name.
    /// Required.
    pub origin: String,
    /// The directory of the static tlog-tiles files (`checkpoint`, `tile/…`)
    /// that mirrors serve. Default: `log` inside `state_dir`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The checkpoint key as a signed-note verifier key
    /// (`ORIGIN+KEYID+BASE64`), as `keys generate --role log` prints it. The
    /// signer refuses to start unless its log key matches; `audit verify`
    /// checks checkpoints with it. Required to serve; not to make keys.
    #[serde(default)]
    pub verifier_key: Option<String>,
}

impl LogConfig {
    /// The directory of the static log files (set by loading).
    pub fn dir(&self) -> &Path {
        self.dir.as_deref().unwrap_or_else(|| Path::new("log"))
    }
}

/// `[role.NAME]`: bounds on what is signed for one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleLimits {
    /// The longest lifetime (expiry minus now) signed. Default: twice the
    /// role's default lifetime (targets and bins 180d, mirrors 60d, feeds,
    /// snapshot 14d, timestamp and announcement 2d).
    #[serde(default, deserialize_with = "de_with::opt_duration")]
    pub max_lifetime: Option<Duration>,
    /// The most signatures for the role in any hour. Default: 60.
    #[serde(default)]
    pub max_per_hour: Option<u32>,
}

/// The default longest lifetime of `role` (a name of [`ROLE_NAMES`]).
pub fn default_max_lifetime(role: &str) -> Duration {
    const DAY: u64 = 86_400;
    Duration::from_secs(match role {
        "targets" | "bins" => 180 * DAY,
        "mirrors" => 60 * DAY,
        "feeds" | "snapshot" => 14 * DAY,
        _ => 2 * DAY,
    })
}

/// The default number of signatures per hour for a role.
pub const DEFAULT_MAX_PER_HOUR: u32 = 60;

/// `[[client]]`: one client allowed to request signatures.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// A name for logs and the audit record (`[a-z0-9-]`, up to 32). Required.
    pub name: String,
    /// The client's ed25519 public key, 64 hex digits. Required.
    pub key: String,
    /// The roles it may request, from [`ROLE_NAMES`]; at least one. Required.
    pub roles: Vec<String>,
}

impl SignerConfig {
    /// The limits of `role` (a name of [`ROLE_NAMES`]), defaults filled in.
    pub fn limits(&self, role: &str) -> (Duration, u32) {
        let set = self.role.get(role);
        (
            set.and_then(|l| l.max_lifetime)
                .unwrap_or_else(|| default_max_lifetime(role)),
            set.and_then(|l| l.max_per_hour)
                .unwrap_or(DEFAULT_MAX_PER_HOUR),
        )
    }
}

fn check_role_name(key: String, role: &str) -> Result<(), Invalid> {
    if role == "root" {
        return Err(Invalid::new(key, "root is never signed online"));
    }
    if !ROLE_NAMES.contains(&role) {
        return Err(Invalid::new(
            key,
            format!(
                "unknown role {role:?}, expected one of: {}",
                ROLE_NAMES.join(", ")
            ),
        ));
    }
    Ok(())
}

impl BackendConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let set = |name: &str| -> bool {
            match name {
                "module" => self.module.is_some(),
                "token" => self.token.is_some(),
                "pin_file" => self.pin_file.is_some(),
                "pin_env" => self.pin_env.is_some(),
                "key_dir" => self.key_dir.is_some(),
                _ => self.passphrase_dir.is_some(),
            }
        };
        let (needed, foreign): (&[&str], &[&str]) = match self.kind {
            BackendKind::Pkcs11 => (&["module", "token"], &["key_dir", "passphrase_dir"]),
            BackendKind::File => (
                &["key_dir", "passphrase_dir"],
                &["module", "token", "pin_file", "pin_env"],
            ),
        };
        for key in foreign {
            if set(key) {
                return Err(Invalid::new(
                    format!("backend.{key}"),
                    format!(
                        "only for the other backend type; remove it (type = {:?})",
                        self.kind
                    ),
                ));
            }
        }
        for key in needed {
            if !set(key) {
                return Err(Invalid::new(
                    format!("backend.{key}"),
                    "required by this backend type",
                )
                .near("backend.type"));
            }
        }
        if self.kind == BackendKind::Pkcs11 {
            match (&self.pin_file, &self.pin_env) {
                (Some(_), Some(_)) => {
                    return Err(Invalid::new(
                        "backend.pin_env",
                        "give either pin_file or pin_env, not both",
                    ));
                }
                (None, None) => {
                    return Err(Invalid::new(
                        "backend.pin_file",
                        "the token's PIN: give pin_file or pin_env",
                    )
                    .near("backend.type"));
                }
                _ => {}
            }
            if let Some(var) = &self.pin_env
                && (var.is_empty() || var.contains('=') || var.contains('\0'))
            {
                return Err(Invalid::new(
                    "backend.pin_env",
                    "not an environment variable name",
                ));
            }
            if self
                .token
                .as_deref()
                .is_some_and(|t| t.is_empty() || t.len() > 32)
            {
                return Err(Invalid::new(
                    "backend.token",
                    "a token label is 1 to 32 characters",
                ));
            }
        }
        Ok(())
    }
}

impl ConfigFile for SignerConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if self.socket.as_os_str().is_empty() {
            return Err(Invalid::new("socket", "must not be empty"));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(Invalid::new("state_dir", "must not be empty"));
        }
        if self.request_window.is_zero() || self.request_window > MAX_REQUEST_WINDOW {
            return Err(Invalid::new(
                "request_window",
                format!(
                    "must be more than 0 and at most {}, found {}",
                    format_duration(MAX_REQUEST_WINDOW),
                    format_duration(self.request_window)
                ),
            ));
        }
        self.backend.validate()?;
        let origin = &self.log.origin;
        if origin.is_empty()
            || origin.len() > 128
            || origin
                .chars()
                .any(|c| c.is_whitespace() || c == '+' || c.is_control())
        {
            return Err(Invalid::new(
                "log.origin",
                "1 to 128 characters, no spaces and no '+' (it names the checkpoint key too)",
            ));
        }
        if let Some(v) = &self.log.verifier_key {
            // The base64 key may itself hold '+'.
            let parts: Vec<&str> = v.splitn(3, '+').collect();
            let ok = matches!(parts[..], [name, id, key]
                if name == origin && id.len() == 8 && !key.is_empty());
            if !ok {
                return Err(Invalid::new(
                    "log.verifier_key",
                    format!(
                        "expected {origin}+KEYID+BASE64, as `keys generate --role log` prints it"
                    ),
                ));
            }
        }
        for (role, limits) in &self.role {
            check_role_name(format!("role.{role}"), role)?;
            if limits.max_lifetime.is_some_and(|d| d.is_zero()) {
                return Err(Invalid::new(
                    format!("role.{role}.max_lifetime"),
                    "must be more than 0",
                ));
            }
            if limits.max_per_hour == Some(0) {
                return Err(Invalid::new(
                    format!("role.{role}.max_per_hour"),
                    "must be at least 1 (leave the client out instead)",
                ));
            }
        }
        if self.client.is_empty() {
            return Err(Invalid::new("client", "needs at least one [[client]]"));
        }
        let (mut names, mut keys) = (HashSet::new(), HashSet::new());
        for (i, c) in self.client.iter().enumerate() {
            check_slug(&c.name, 32).map_err(|e| Invalid::new(format!("client[{i}].name"), e))?;
            if !names.insert(&c.name) {
                return Err(Invalid::new(format!("client[{i}].name"), "listed twice"));
            }
            let hex_ok = c.key.len() == 64 && c.key.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok {
                return Err(Invalid::new(
                    format!("client[{i}].key"),
                    format!(
                        "expected an ed25519 public key as 64 hex digits, found {:?}",
                        c.key
                    ),
                ));
            }
            if !keys.insert(c.key.to_ascii_lowercase()) {
                return Err(Invalid::new(
                    format!("client[{i}].key"),
                    "the same key is given to another client",
                ));
            }
            if c.roles.is_empty() {
                return Err(Invalid::new(
                    format!("client[{i}].roles"),
                    "needs at least one role",
                ));
            }
            for (j, r) in c.roles.iter().enumerate() {
                check_role_name(format!("client[{i}].roles[{j}]"), r)?;
            }
        }
        if self.upstream.len() > MAX_UPSTREAMS {
            return Err(Invalid::new(
                "upstream",
                format!("at most {MAX_UPSTREAMS} relays"),
            ));
        }
        let mut addresses = HashSet::new();
        for (i, u) in self.upstream.iter().enumerate() {
            u.validate(i)?;
            if !addresses.insert(&u.address) {
                return Err(Invalid::new(
                    format!("upstream[{i}].address"),
                    "listed twice",
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self, base: &Path) {
        resolve(base, &mut self.socket);
        resolve(base, &mut self.state_dir);
        for p in [
            &mut self.backend.module,
            &mut self.backend.pin_file,
            &mut self.backend.key_dir,
            &mut self.backend.passphrase_dir,
        ]
        .into_iter()
        .flatten()
        {
            resolve(base, p);
        }
        match &mut self.log.dir {
            Some(dir) => resolve(base, dir),
            None => self.log.dir = Some(self.state_dir.join("log")),
        }
        for c in &mut self.client {
            c.key.make_ascii_lowercase();
        }
        for u in &mut self.upstream {
            resolve(base, &mut u.cert);
            resolve(base, &mut u.key);
            u.relay_pins
                .iter_mut()
                .for_each(|p| p.make_ascii_lowercase());
        }
    }
}

//! Loading the signing service's configuration: the example, the defaults,
//! and refusals that point at the right line and key.

#![allow(clippy::unwrap_used, reason = "test code: failures should panic")]

use std::path::Path;
use std::time::Duration;

use onionpkg_config::signer::BackendKind;
use onionpkg_config::{ConfigError, SignerConfig, from_str};

mod common;

use common::assert_at;

const KEY: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

/// A minimal valid configuration; `backend` and `extra` are inserted at
/// lines 3 and 9 on.
fn signer(backend: &str, extra: &str) -> String {
    format!(
        "socket = \"s.sock\"\nstate_dir = \"/var/lib/s\"\n[backend]\n{backend}\n[log]\norigin = \"example.org/log\"\n[[client]]\nname = \"release\"\nkey = \"{KEY}\"\nroles = [\"timestamp\"]\n{extra}"
    )
}

const PKCS11: &str = "type = \"pkcs11\"\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken = \"t\"\npin_env = \"PIN\"";

/// Parses `text` as `signer.toml`, expecting an error.
fn error(text: &str) -> ConfigError {
    common::error::<SignerConfig>(text, "signer.toml")
}

#[test]
fn example_signer_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/signer.toml");
    let c = onionpkg_config::load_signer(path).unwrap();
    assert_eq!(c.backend.kind, BackendKind::Pkcs11);
    assert_eq!(c.client.len(), 3);
    assert_eq!(c.limits("timestamp"), (Duration::from_secs(2 * 86_400), 12));
    assert_eq!(c.limits("snapshot").0, Duration::from_secs(14 * 86_400));
    assert_eq!(c.log.dir(), Path::new("/var/lib/onionpkg-signer/log"));
}

#[test]
fn signer_defaults() {
    let c: SignerConfig = from_str(&signer(PKCS11, ""), "/etc/o/signer.toml").unwrap();
    assert_eq!(c.request_window, Duration::from_secs(300));
    assert_eq!(c.socket, Path::new("/etc/o/s.sock"));
    assert_eq!(c.log.dir(), Path::new("/var/lib/s/log"));
    assert_eq!(c.limits("targets"), (Duration::from_secs(180 * 86_400), 60));
    assert_eq!(c.limits("timestamp"), (Duration::from_secs(2 * 86_400), 60));
    assert!(c.log.verifier_key.is_none());
    // The base64 of a verifier key may itself hold '+'.
    let key = "example.org/log+1a2b3c4d+AX+bY/9z+0+1";
    let text = signer(PKCS11, "").replace(
        "origin = \"example.org/log\"",
        &format!("origin = \"example.org/log\"\nverifier_key = \"{key}\""),
    );
    let c: SignerConfig = from_str(&text, "signer.toml").unwrap();
    assert_eq!(c.log.verifier_key.as_deref(), Some(key));
}

#[test]
fn backend_rules() {
    let e = error(&signer(
        "type = \"pkcs11\"\nmodule = \"m.so\"\npin_env = \"P\"",
        "",
    ));
    assert_at(&e, 4, "backend.token", "required");
    let e = error(&signer(&format!("{PKCS11}\npin_file = \"pin\""), ""));
    assert_at(&e, 7, "backend.pin_env", "not both");
    let e = error(&signer(&format!("{PKCS11}\nkey_dir = \"keys\""), ""));
    assert_at(&e, 8, "backend.key_dir", "only for the other backend");
    let e = error(&signer("type = \"file\"\nkey_dir = \"keys\"", ""));
    assert_at(&e, 4, "backend.passphrase_dir", "required");
    let e = error(&signer("type = \"hsm\"", ""));
    assert_eq!(e.line(), Some(4), "{e}");
    assert!(e.to_string().contains("pkcs11"), "{e}");
    let ok: SignerConfig = from_str(
        &signer(
            "type = \"file\"\nkey_dir = \"keys\"\npassphrase_dir = \"pass\"",
            "",
        ),
        "/etc/o/signer.toml",
    )
    .unwrap();
    assert_eq!(ok.backend.key_dir.unwrap(), Path::new("/etc/o/keys"));
}

#[test]
fn roles_clients_and_limits_rules() {
    let root = signer(PKCS11, "").replace("roles = [\"timestamp\"]", "roles = [\"root\"]");
    assert_at(
        &error(&root),
        13,
        "client[0].roles[0]",
        "never signed online",
    );
    let unknown = signer(PKCS11, "").replace("roles = [\"timestamp\"]", "roles = [\"bin-00\"]");
    assert_at(&error(&unknown), 13, "client[0].roles[0]", "unknown role");
    let badkey = signer(PKCS11, "").replace(KEY, "abcd");
    assert_at(&error(&badkey), 12, "client[0].key", "64 hex digits");
    let twice = signer(
        PKCS11,
        &format!(
            "[[client]]\nname = \"other\"\nkey = \"{}\"\nroles = [\"snapshot\"]\n",
            KEY.to_uppercase()
        ),
    );
    assert_at(&error(&twice), 16, "client[1].key", "another client");
    let e = error(&signer(PKCS11, "[role.root]\nmax_per_hour = 1\n"));
    assert_at(&e, 14, "role.root", "never signed online");
    let e = error(&signer(PKCS11, "[role.timestamp]\nmax_per_hour = 0\n"));
    assert_at(&e, 15, "role.timestamp.max_per_hour", "at least 1");
    let e = error(&signer(
        PKCS11,
        "[role.timestamp]\nmax_lifetime = \"soon\"\n",
    ));
    assert_at(&e, 15, "role.timestamp.max_lifetime", "duration");
    let e = error(&signer(PKCS11, "[role.timestamp]\nrate = 3\n"));
    assert_eq!(e.key(), Some("role.timestamp.rate"), "{e}");
    let e = error(&format!("request_window = \"2h\"\n{}", signer(PKCS11, "")));
    assert_at(&e, 1, "request_window", "at most 1h");
    let e = error(&signer(PKCS11, "").replace("example.org/log", "has space"));
    assert_at(&e, 9, "log.origin", "no spaces");
    let e = error(&signer(PKCS11, "").replace(
        "origin = \"example.org/log\"",
        "origin = \"example.org/log\"\nverifier_key = \"other+00000000+AA\"",
    ));
    assert_at(&e, 10, "log.verifier_key", "example.org/log+KEYID+BASE64");
    let none = signer(PKCS11, "").replace(
        &format!("[[client]]\nname = \"release\"\nkey = \"{KEY}\"\nroles = [\"timestamp\"]\n"),
        "",
    );
    assert_eq!(error(&none).key(), Some("client"));
}

const PIN: &str = "5f0c6a3a9d2d2b8e04e5a4d6f1f3f5c1b6c9f0a2e7d9c3b1a5e8f2d4c6b8a0e2";

#[test]
fn an_upstream_is_read_with_its_paths_resolved() {
    let up = format!(
        "[[upstream]]\naddress = \"release.example.org:7443\"\nrelay_pins = [\"{}\"]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"",
        PIN.to_uppercase()
    );
    let c: SignerConfig = from_str(&signer(PKCS11, &up), "/etc/o/signer.toml").unwrap();
    let u = &c.upstream[0];
    assert_eq!(u.address, "release.example.org:7443");
    assert_eq!(u.relay_pins, [PIN]);
    assert_eq!(u.cert, Path::new("/etc/o/tls/cert.pem"));
    assert_eq!(u.key, Path::new("/etc/o/tls/key.pem"));
    let none: SignerConfig = from_str(&signer(PKCS11, ""), "signer.toml").unwrap();
    assert!(none.upstream.is_empty());
}

#[test]
fn upstream_rules() {
    let up = |address: &str, pins: &str| {
        signer(
            PKCS11,
            &format!(
                "[[upstream]]\naddress = \"{address}\"\nrelay_pins = {pins}\ncert = \"c.pem\"\nkey = \"k.pem\""
            ),
        )
    };
    let pins = format!("[\"{PIN}\"]");
    assert_at(
        &error(&up("release.example.org", &pins)),
        15,
        "upstream[0].address",
        "HOST:PORT",
    );
    assert_at(
        &error(&up("10.0.0.1:0", &pins)),
        15,
        "upstream[0].address",
        "HOST:PORT",
    );
    assert_at(
        &error(&up("10.0.0.1:7443", "[]")),
        16,
        "upstream[0].relay_pins",
        "at least one",
    );
    assert_at(
        &error(&up("10.0.0.1:7443", "[\"abcd\"]")),
        16,
        "upstream[0].relay_pins[0]",
        "64 hex digits",
    );
    // A key not implemented is refused, not ignored.
    let server_name = up("10.0.0.1:7443", &pins) + "\nserver_name = \"x\"";
    assert!(
        error(&server_name).to_string().contains("server_name"),
        "{}",
        error(&server_name)
    );
    let twice = up("10.0.0.1:7443", &pins)
        + &format!(
            "\n[[upstream]]\naddress = \"10.0.0.1:7443\"\nrelay_pins = {pins}\ncert = \"c.pem\"\nkey = \"k.pem\""
        );
    assert_at(&error(&twice), 20, "upstream[1].address", "listed twice");
}

#[test]
fn the_example_s_commented_upstream_loads_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/signer.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let (head, tail) = text.split_once("# [[upstream]]").unwrap();
    let tail: String = tail
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
        .collect();
    let c: SignerConfig = from_str(&format!("{head}[[upstream]]{tail}"), "signer.toml").unwrap();
    assert_eq!(c.upstream.len(), 1);
    assert_eq!(c.upstream[0].address, "release.example.org:7443");
}

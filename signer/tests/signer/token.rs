//! Keys made by `keys generate` stay in the token; exportable keys are
//! refused at start, by name.
//!
//! The PKCS#11 part runs in a child of this test binary with its own
//! `SOFTHSM2_CONF`, since SoftHSM2 reads it once per process.

use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::common::{Env, PIN, Signer, run};

pub const MODE: &str = "SIGNER_TEST_TOKEN_MODE";
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

pub fn session() -> (Pkcs11, Session) {
    let ctx = Pkcs11::new("/usr/lib/softhsm/libsofthsm2.so").unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == "onionpkg")
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(PIN.to_string())))
        .unwrap();
    (ctx, session)
}

pub fn find(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Vec<cryptoki::object::ObjectHandle> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()
}

/// Runs this test again as a child in `mode` against `env`'s token.
pub fn child(env: &Env, test: &str, mode: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &env.softhsm_conf)
        .env(MODE, mode)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {mode} failed:\n{text}");
    text
}

/// In the child: the private keys refuse to give their value.
fn inspect() {
    let (_ctx, session) = session();
    let mut checked = 0;
    for role in ["log", "timestamp", "snapshot", "targets"] {
        let label = format!("onionpkg-{role}");
        let keys = find(&session, ObjectClass::PRIVATE_KEY, &label);
        assert_eq!(keys.len(), 1, "{label}");
        // C_GetAttributeValue(CKA_VALUE) answers CKR_ATTRIBUTE_SENSITIVE,
        // which cryptoki reports as AttributeInfo::Sensitive …
        let info = session
            .get_attribute_info(keys[0], &[AttributeType::Value])
            .unwrap();
        assert!(
            matches!(info[..], [AttributeInfo::Sensitive]),
            "{label}: {info:?}"
        );
        // … and get_attributes leaves the value out.
        let got = session
            .get_attributes(keys[0], &[AttributeType::Value])
            .unwrap();
        assert!(
            !got.iter().any(|a| matches!(a, Attribute::Value(_))),
            "{label} gave its value"
        );
        let flags = session
            .get_attributes(
                keys[0],
                &[
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Sensitive,
                ],
            )
            .unwrap();
        assert!(
            flags.contains(&Attribute::Extractable(false)),
            "{label}: {flags:?}"
        );
        assert!(
            flags.contains(&Attribute::NeverExtractable(true)),
            "{label}: {flags:?}"
        );
        assert!(
            flags.contains(&Attribute::Sensitive(true)),
            "{label}: {flags:?}"
        );
        checked += 1;
    }
    eprintln!("checked {checked} keys");
}

/// In the child: replaces the timestamp key by an extractable one.
fn make_extractable() {
    let (_ctx, session) = session();
    let label = b"onionpkg-timestamp".to_vec();
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        for o in find(&session, class, "onionpkg-timestamp") {
            session.destroy_object(o).unwrap();
        }
    }
    let public = [
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::EcParams(ED25519_OID.to_vec()),
        Attribute::Label(label.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Label(label),
    ];
    session
        .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
        .unwrap();
    eprintln!("made an extractable key");
}

/// In the child: replaces the timestamp private key by an imported one
/// (sensitive and not extractable now, but it was outside the token).
fn import() {
    let (_ctx, session) = session();
    for o in find(&session, ObjectClass::PRIVATE_KEY, "onionpkg-timestamp") {
        session.destroy_object(o).unwrap();
    }
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::EcParams(ED25519_OID.to_vec()),
            Attribute::Value(vec![7u8; 32]),
            Attribute::Label(b"onionpkg-timestamp".to_vec()),
        ])
        .unwrap();
    eprintln!("imported a key");
}

#[test]
fn generated_keys_cannot_be_read_out() {
    if std::env::var(MODE).as_deref() == Ok("inspect") {
        return inspect();
    }
    let env = Env::new("");
    let out = child(&env, "token::generated_keys_cannot_be_read_out", "inspect");
    assert!(out.contains("checked 4 keys"), "{out}");
    // The key ids printed by `keys generate` are the ones `keys show` checks.
    let out = run(&env, &["keys", "show", "--role", "timestamp"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("key id: {}", env.key("timestamp").key_id())),
        "{text}"
    );
}

#[test]
fn exportable_keys_are_refused_at_start_by_name() {
    match std::env::var(MODE).as_deref() {
        Ok("extractable") => return make_extractable(),
        Ok("import") => return import(),
        _ => {}
    }
    let env = Env::new("");
    let test = "token::exportable_keys_are_refused_at_start_by_name";
    child(&env, test, "extractable");
    let out = run(&env, &["keys", "show", "--role", "timestamp"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(12), "{err}");
    assert!(
        err.contains("\"onionpkg-timestamp\" is exportable (CKA_EXTRACTABLE=true)"),
        "{err}"
    );
    let log = Signer::start_failing(&env);
    assert!(
        log.contains("\"onionpkg-timestamp\" is exportable (CKA_EXTRACTABLE=true)"),
        "{log}"
    );
    assert!(!env.socket.exists(), "the socket was made");

    child(&env, test, "import");
    let log = Signer::start_failing(&env);
    assert!(
        log.contains("\"onionpkg-timestamp\" is exportable (CKA_NEVER_EXTRACTABLE=false)")
            || log.contains("\"onionpkg-timestamp\" is exportable (CKA_ALWAYS_SENSITIVE=false)"),
        "{log}"
    );
}

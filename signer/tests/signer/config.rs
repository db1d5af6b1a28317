//! `check-config`: what a package's installer asks before it enables the
//! signer. It reads only; the token is not opened.

use crate::common::{Env, run};

fn check(env: &Env) -> (Option<i32>, String, String) {
    let out = run(env, &["check-config"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_what_serve_could_not_start_with() {
    // No log key made yet, as after installing: refused, saying what to do.
    let env = Env::bare("");
    let (code, _, err) = check(&env);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("not ready to serve: log.verifier_key is not set")
            && err.contains("keys generate --role log"),
        "{err}"
    );

    let env = Env::new("");
    let (code, out, err) = check(&env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("configuration ok"), "{out}");

    let text = std::fs::read_to_string(&env.config).unwrap();
    let edit = |from: &str, to: &str| {
        assert!(text.contains(from), "{text}");
        std::fs::write(&env.config, text.replace(from, to)).unwrap();
    };
    // A PKCS#11 module that is not installed.
    edit(
        "/usr/lib/softhsm/libsofthsm2.so",
        "/nonexistent/libpkcs11.so",
    );
    let (code, _, err) = check(&env);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("backend.module /nonexistent/libpkcs11.so"),
        "{err}"
    );
    // A PIN file that is not there; one that is a credential of the unit
    // is left to systemd, and said so.
    edit(
        "pin_env = \"ONIONPKG_TEST_PIN\"",
        "pin_file = \"/nonexistent/pin\"",
    );
    let (code, _, err) = check(&env);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("backend.pin_file /nonexistent/pin"), "{err}");
    edit(
        "pin_env = \"ONIONPKG_TEST_PIN\"",
        "pin_file = \"/run/credentials/onionpkg-signer-test.service/pin\"",
    );
    let (code, out, err) = check(&env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("systemd credential"), "{out}");
}

#[test]
fn check_config_refuses_an_upstream_certificate_it_cannot_read() {
    let pin = "ab".repeat(32);
    let env = Env::new(&format!(
        "[[upstream]]\naddress = \"127.0.0.2:7443\"\nrelay_pins = [\"{pin}\"]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n"
    ));
    let (code, _, err) = check(&env);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("not ready to serve: upstream[0] (127.0.0.2:7443)")
            && err.contains("cert.pem"),
        "{err}"
    );
    let ca = onionpkg_testkit::ca::TestCa::for_names("signer CA", &["signer.example.org"]);
    let tls = env.dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("cert.pem"), &ca.cert_pem).unwrap();
    std::fs::write(tls.join("key.pem"), "not a key").unwrap();
    let (code, _, err) = check(&env);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no private key"), "{err}");
    std::fs::write(tls.join("key.pem"), &ca.key_pem).unwrap();
    let (code, _, err) = check(&env);
    assert_eq!(code, Some(0), "{err}");
}

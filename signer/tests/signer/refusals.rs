//! Every refusal: its reason, its record, and that nothing was signed.

use onionpkg_signer::client::build_request;
use onionpkg_signer::request::{Kind, Reason};
use onionpkg_trust::sign::SecretKey;

use crate::common::{Env, Signer, assert_refused, at, now, timestamp, tuf_request};

/// Asserts the refusal was recorded with its reason and logged, and that the
/// log did not grow.
#[track_caller]
fn recorded(env: &Env, signer: &Signer, reason: Reason, entries_before: usize) {
    let name = serde_json::to_string(&reason).unwrap();
    assert!(
        env.refusals().contains(&format!("\"reason\":{name}")),
        "{name} not recorded:\n{}",
        env.refusals()
    );
    signer.log_with(&format!("reason=\"{}\"", reason.name()));
    assert_eq!(env.entries(), entries_before, "something was signed");
}

#[test]
fn refusals_are_reasoned_recorded_and_sign_nothing() {
    let env = Env::new("[role.timestamp]\nmax_lifetime = \"2d\"\n");
    let mut signer = env.start();
    let t = now().as_second();
    let signed = |v| timestamp(v, t + 3600, 1);

    // Unsigned.
    let (mut req, _) = tuf_request(&env.release, "timestamp", &signed(1));
    req.signature = None;
    let msg = assert_refused(env.send(&req), Reason::Unsigned);
    assert!(msg.contains("not signed"), "{msg}");
    recorded(&env, &signer, Reason::Unsigned, 0);

    // Signed by a key no client has.
    let (req, _) = tuf_request(&SecretKey::generate(), "timestamp", &signed(1));
    assert_refused(env.send(&req), Reason::UnknownClient);
    recorded(&env, &signer, Reason::UnknownClient, 0);

    // A bad signature: the payload changed after signing.
    let (mut req, _) = tuf_request(&env.release, "timestamp", &signed(1));
    req.request.version = 9;
    assert_refused(env.send(&req), Reason::BadSignature);
    recorded(&env, &signer, Reason::BadSignature, 0);

    // A client allowed only timestamp asks for targets.
    let targets = serde_json::json!({ "_type": "targets", "spec_version": "1.0.31", "version": 1,
        "expires": at(t + 86_400).to_string(), "targets": {} });
    let (req, _) = tuf_request(&env.ts_only, "targets", &targets);
    let msg = assert_refused(env.send(&req), Reason::Forbidden);
    assert!(msg.contains("ts-only may not request targets"), "{msg}");
    recorded(&env, &signer, Reason::Forbidden, 0);

    // Root is never signed.
    let root = serde_json::json!({ "_type": "root", "spec_version": "1.0.31", "version": 2,
        "expires": at(t + 86_400).to_string(), "keys": {}, "roles": {}, "consistent_snapshot": true });
    let (req, _) = tuf_request(&env.release, "root", &root);
    assert_refused(env.send(&req), Reason::Root);
    recorded(&env, &signer, Reason::Root, 0);

    // Not the role's metadata: a snapshot sent as timestamp, and JSON that
    // is not canonical.
    let snap = serde_json::json!({ "_type": "snapshot", "spec_version": "1.0.31", "version": 1,
        "expires": at(t + 3600).to_string(), "meta": {} });
    let (req, _) = tuf_request(&env.release, "timestamp", &snap);
    let msg = assert_refused(env.send(&req), Reason::Payload);
    assert!(msg.contains("`_type`"), "{msg}");
    let pretty = serde_json::to_vec_pretty(&signed(1)).unwrap();
    let req = build_request(
        &env.release,
        "timestamp",
        Kind::Tuf,
        &pretty,
        1,
        at(t + 3600),
        now(),
    );
    let msg = assert_refused(env.send(&req), Reason::Payload);
    assert!(msg.contains("canonical"), "{msg}");
    recorded(&env, &signer, Reason::Payload, 0);

    // An expiry beyond the role's bound (2 days), and one in the past.
    let (req, _) = tuf_request(&env.release, "timestamp", &timestamp(1, t + 10 * 86_400, 1));
    let msg = assert_refused(env.send(&req), Reason::Expiry);
    assert!(msg.contains("at most 172800s"), "{msg}");
    let (req, _) = tuf_request(&env.release, "timestamp", &timestamp(1, t - 10, 1));
    assert_refused(env.send(&req), Reason::Expiry);
    recorded(&env, &signer, Reason::Expiry, 0);

    // A request from outside the time window.
    let payload = onionpkg_trust::sign::canonical_bytes(&signed(1)).unwrap();
    let req = build_request(
        &env.release,
        "timestamp",
        Kind::Tuf,
        &payload,
        1,
        at(t + 3600),
        at(t - 3600),
    );
    assert_refused(env.send(&req), Reason::Stale);
    recorded(&env, &signer, Reason::Stale, 0);

    // Version 5 signs; 5 again and 4 are refused.
    let (req, _) = tuf_request(&env.release, "timestamp", &signed(5));
    env.send(&req).unwrap();
    assert_eq!(env.entries(), 1);
    for v in [5, 4] {
        let (again, _) = tuf_request(&env.release, "timestamp", &signed(v));
        let msg = assert_refused(env.send(&again), Reason::Version);
        assert!(msg.contains("not above version 5"), "{msg}");
    }
    recorded(&env, &signer, Reason::Version, 1);

    // The accepted request replayed: refused, and still after a restart.
    assert_refused(env.send(&req), Reason::Replay);
    recorded(&env, &signer, Reason::Replay, 1);
    signer.kill();
    let signer = env.start();
    assert_refused(env.send(&req), Reason::Replay);
    // A request accepted after the restart, replayed.
    let (req2, _) = tuf_request(&env.release, "timestamp", &signed(6));
    env.send(&req2).unwrap();
    assert_refused(env.send(&req2), Reason::Replay);
    recorded(&env, &signer, Reason::Replay, 2);
}

#[test]
fn a_snapshot_or_timestamp_pins_only_what_the_signer_signed() {
    let env = Env::new("");
    let _signer = env.start();
    let t = now().as_second();
    let snap = |v: u64, targets: u64| {
        serde_json::json!({ "_type": "snapshot", "spec_version": "1.0.31", "version": v,
            "expires": at(t + 86_400).to_string(), "meta": { "targets.json": { "version": targets } } })
    };
    let targets = |v: u64| {
        serde_json::json!({ "_type": "targets", "spec_version": "1.0.31", "version": v,
            "expires": at(t + 86_400).to_string(), "targets": {} })
    };
    // Untracked: targets was never signed here (offline), any version goes.
    env.send(&tuf_request(&env.release, "snapshot", &snap(1, 7)).0)
        .unwrap();
    env.send(&tuf_request(&env.release, "targets", &targets(8)).0)
        .unwrap();
    env.send(&tuf_request(&env.release, "targets", &targets(9)).0)
        .unwrap();
    // Version 8 was signed here but is not the last: a rollback.
    let msg = assert_refused(
        env.send(&tuf_request(&env.release, "snapshot", &snap(2, 8)).0),
        Reason::Reference,
    );
    assert!(
        msg.contains("pins targets version 8; the signer signed version 9 last"),
        "{msg}"
    );
    // Version 10 was never signed.
    assert_refused(
        env.send(&tuf_request(&env.release, "snapshot", &snap(2, 10)).0),
        Reason::Reference,
    );
    // Older than anything tracked, or the last: fine.
    env.send(&tuf_request(&env.release, "snapshot", &snap(2, 7)).0)
        .unwrap();
    env.send(&tuf_request(&env.release, "snapshot", &snap(3, 9)).0)
        .unwrap();
    // The timestamp pins the last snapshot only.
    assert_refused(
        env.send(&tuf_request(&env.release, "timestamp", &timestamp(1, t + 3600, 2)).0),
        Reason::Reference,
    );
    env.send(&tuf_request(&env.release, "timestamp", &timestamp(1, t + 3600, 3)).0)
        .unwrap();
}

#[test]
fn a_burst_above_the_rate_limit_is_refused_also_after_a_restart() {
    let env = Env::new("[role.timestamp]\nmax_per_hour = 3\n");
    let mut signer = env.start();
    let t = now().as_second();
    for v in 1..=3 {
        env.send(&tuf_request(&env.release, "timestamp", &timestamp(v, t + 3600, 1)).0)
            .unwrap();
    }
    let msg = assert_refused(
        env.send(&tuf_request(&env.release, "timestamp", &timestamp(4, t + 3600, 1)).0),
        Reason::RateLimited,
    );
    assert!(
        msg.contains("timestamp is limited to 3 signatures an hour"),
        "{msg}"
    );
    recorded(&env, &signer, Reason::RateLimited, 3);
    signer.kill();
    let signer = env.start();
    assert_refused(
        env.send(&tuf_request(&env.release, "timestamp", &timestamp(5, t + 3600, 1)).0),
        Reason::RateLimited,
    );
    recorded(&env, &signer, Reason::RateLimited, 3);
}

//! The log on disk: `audit verify` catches an edited entry and names it;
//! `audit list` shows what was signed, with the targets that changed.

use crate::common::{Env, at, now, run, timestamp, tuf_request};

fn targets(v: u64, expires: i64, files: &[(&str, &str)]) -> serde_json::Value {
    let mut list = serde_json::Map::new();
    for (path, byte) in files {
        list.insert(
            path.to_string(),
            serde_json::json!({ "length": 10, "hashes": { "sha256": byte.repeat(32) } }),
        );
    }
    serde_json::json!({ "_type": "targets", "spec_version": "1.0.31", "version": v,
        "expires": at(expires).to_string(), "targets": list })
}

#[test]
fn editing_one_entry_makes_audit_verify_fail_naming_it() {
    let env = Env::new("");
    let signer = env.start();
    let t = now().as_second();
    for v in 1..=4 {
        env.send(&tuf_request(&env.release, "timestamp", &timestamp(v, t + 3600, 1)).0)
            .unwrap();
    }
    drop(signer);
    let out = run(&env, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("log verified: 4 entries"), "{text}");

    // Entry 2 claims another client.
    let path = env.state.join("entries.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    assert!(lines[2].contains("\"client\":\"release\""));
    lines[2] = lines[2].replace("\"client\":\"release\"", "\"client\":\"mallory\"");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = run(&env, &["audit", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("entry 2 (line 3 of entries.jsonl) was changed"),
        "{err}"
    );
    // The signer refuses to start on such a log too.
    let log = crate::common::Signer::start_failing(&env);
    assert!(
        log.contains("do not reproduce the served checkpoint"),
        "{log}"
    );

    // An edited entry bundle (the copy mirrors serve) is named as well.
    std::fs::write(&path, &original).unwrap();
    let bundle = env.state.join("log/tile/entries/000.p/4");
    let mut served = std::fs::read(&bundle).unwrap();
    let needle = b"\"version\":2";
    let at = served
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    served[at + needle.len() - 1] = b'7';
    std::fs::write(&bundle, &served).unwrap();
    let out = run(&env, &["audit", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("tile/entries/000.p/4 does not hold what entries.jsonl holds: entry 1"),
        "{err}"
    );
}

#[test]
fn audit_list_shows_what_was_signed_and_the_targets_that_changed() {
    let env = Env::new("");
    let signer = env.start();
    let t = now().as_second();
    let one = targets(1, t + 86_400, &[("pkg/a.tar", "aa"), ("pkg/b.tar", "bb")]);
    env.send(&tuf_request(&env.release, "targets", &one).0)
        .unwrap();
    let two = targets(
        2,
        t + 86_400,
        &[
            ("pkg/a.tar", "aa"),
            ("pkg/b.tar", "cc"),
            ("pkg/c.tar", "dd"),
        ],
    );
    env.send(&tuf_request(&env.release, "targets", &two).0)
        .unwrap();
    let three = targets(3, t + 86_400, &[("pkg/c.tar", "dd")]);
    env.send(&tuf_request(&env.release, "targets", &three).0)
        .unwrap();
    drop(signer);

    let out = run(&env, &["audit", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = [
        "Added pkg/a.tar",
        "Added pkg/b.tar",
        "Changed pkg/b.tar",
        "Added pkg/c.tar",
        "Removed pkg/a.tar",
        "Removed pkg/b.tar",
    ];
    let mut at_line = 0;
    let lines: Vec<&str> = text.lines().collect();
    for want in expected {
        let found = lines[at_line..].iter().position(|l| l.contains(want));
        at_line += found.unwrap_or_else(|| panic!("{want:?} not in order in:\n{text}")) + 1;
    }
    assert!(!text.contains("Added pkg/a.tar sha256\n#1"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        3,
        "{text}"
    );

    let audit_since = |since: i64| {
        let out = run(
            &env,
            &["audit", "list", "--json", "--since", &at(since).to_string()],
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(audit_since(t + 7200).is_empty());
    let json = audit_since(t - 60);
    assert_eq!(json.lines().count(), 3);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["role"], "targets");
    assert_eq!(first["client"], "release");
    assert_eq!(first["targets"][0]["path"], "pkg/a.tar");
}

//! `kill -9` at random points while signing: every signature a client
//! received is in the log, the log verifies, versions never repeat.

use std::process::Command;
use std::time::{Duration, Instant};

use onionpkg_signer::entry::Entry;
use sha2::Digest as _;

use crate::common::{Env, now, run, timestamp, tuf_request};

/// A small deterministic generator (xorshift), seeded from the clock.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_at_random_points_never_releases_an_unlogged_signature() {
    let env = Env::new("[role.timestamp]\nmax_per_hour = 100000\n");
    let ts_key = env.key("timestamp");
    let mut rng = Rng(u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) | 1);
    eprintln!("seed {}", rng.0);
    let deadline = Instant::now() + Duration::from_secs(240);
    let t = now().as_second();
    let mut signer = env.start();
    let mut received = Vec::new();
    let (mut kills, mut version) = (0, 0u64);
    for _ in 0..200 {
        if Instant::now() > deadline {
            break;
        }
        version += 1;
        let killer = rng.next().is_multiple_of(6).then(|| {
            let pid = signer.child.id().to_string();
            let delay = Duration::from_micros(rng.next() % 20_000);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = Command::new("kill").args(["-9", &pid]).status();
            })
        });
        let (req, payload) =
            tuf_request(&env.release, "timestamp", &timestamp(version, t + 3600, 1));
        if let Ok(signed) = env.send(&req) {
            received.push((version, payload, signed));
        }
        if let Some(k) = killer {
            k.join().unwrap();
            signer.kill();
            kills += 1;
            signer = env.start();
        }
    }
    signer.kill();
    eprintln!("{} signatures received, {kills} kills", received.len());
    assert!(kills >= 3, "only {kills} kills");
    assert!(received.len() >= 50, "only {} signatures", received.len());

    let out = run(&env, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&env, &["audit", "list", "--json"]);
    assert!(out.status.success());
    let entries: Vec<Entry> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (v, payload, signed) in &received {
        let e = &entries[signed.log_index as usize];
        assert_eq!(
            e.version, *v,
            "entry {} is not the signature of version {v}",
            e.index
        );
        assert_eq!(e.sha256, hex::encode(sha2::Sha256::digest(payload)));
        ts_key
            .verify(payload, &hex::decode(&signed.signature).unwrap())
            .unwrap();
    }
    let versions: Vec<u64> = entries.iter().map(|e| e.version).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions repeat or go back: {versions:?}"
    );
}

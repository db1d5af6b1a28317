//! `audit verify` and `audit list`: checking and reading the log.
//!
//! `verify` rebuilds the tree from `entries.jsonl` and checks, with the log's
//! verifier key: the served checkpoint and every checkpoint in the history
//! (signature, origin, and that the entries reproduce its root); every tile
//! file under `tile/` (it must hold what the entries give); and every long
//! change list. When the entries do not reproduce a signed root, the level-0
//! hash tiles on disk are authenticated against the signed checkpoint and the
//! first entry whose hash differs is named; if the tiles do not authenticate
//! either, the first entry whose hash differs from them is named.
//!
//! # Invariants
//! - `verify` reads only: it never repairs.

use std::path::Path;

use onionpkg_config::SignerConfig;
use sha2::Digest as _;

use crate::entry::Entry;
use crate::journal::{ENTRIES, read_checkpoints, read_entries};
use crate::tlog::{self, TILE_HEIGHT, Tree};
use crate::{Error, Result};

fn line_of(i: u64) -> String {
    format!("entry {i} (line {} of {ENTRIES})", i + 1)
}

/// The leaf hashes the level-0 tiles on disk give for the first `size`
/// entries, if the files are there.
fn disk_leaf_hashes(log_dir: &Path, size: u64) -> Option<Vec<[u8; 32]>> {
    let mut out = Vec::new();
    let per = 1u64 << TILE_HEIGHT;
    let mut n = 0;
    while n * per < size {
        let width = (size - n * per).min(per);
        let tile = tlog_tiles::Tile::new(TILE_HEIGHT, 0, n, u32::try_from(width).ok()?, false);
        let bytes = std::fs::read(log_dir.join(tlog::c2sp_path(&tile))).ok()?;
        if bytes.len() != width as usize * 32 {
            return None;
        }
        out.extend(
            bytes
                .chunks_exact(32)
                .filter_map(|c| <[u8; 32]>::try_from(c).ok()),
        );
        n += 1;
    }
    Some(out)
}

/// Names what is wrong when the entries do not give `root` at `size`.
fn locate(log_dir: &Path, tree: &Tree, size: u64, root: [u8; 32]) -> Result<String> {
    let Some(disk) = disk_leaf_hashes(log_dir, size) else {
        return Ok(format!(
            "the entries do not reproduce the signed checkpoint of size {size}, and the hash tiles to find the entry are missing"
        ));
    };
    let mut from_tiles = Tree::new();
    for h in &disk {
        from_tiles.append_leaf_hash(*h)?;
    }
    let authentic = from_tiles.root_at(size)? == root;
    for (i, h) in disk.iter().enumerate() {
        if tree.leaf_hash(i as u64)? != *h {
            return Ok(if authentic {
                format!(
                    "{} was changed: its hash differs from the signed log",
                    line_of(i as u64)
                )
            } else {
                format!(
                    "{} differs from the hash tiles, and the tiles do not match the signed checkpoint either",
                    line_of(i as u64)
                )
            });
        }
    }
    Ok(format!(
        "the entries do not reproduce the signed checkpoint of size {size}"
    ))
}

/// Verifies the log of `cfg` with `key` (default: `log.verifier_key`).
pub fn verify_command(cfg: &SignerConfig, key: Option<&str>) -> Result<Vec<String>> {
    let key = key
        .map(str::to_string)
        .or_else(|| cfg.log.verifier_key.clone())
        .ok_or_else(|| Error::Invalid("give --verifier-key or set log.verifier_key".into()))?;
    verify(&cfg.state_dir, cfg.log.dir(), &cfg.log.origin, &key)
}

/// Verifies the log in `state_dir` and `log_dir`; returns a summary.
pub fn verify(state_dir: &Path, log_dir: &Path, origin: &str, key: &str) -> Result<Vec<String>> {
    let (raw, parsed, torn) = read_entries(&state_dir.join(ENTRIES))?;
    let mut tree = Tree::new();
    for e in &raw {
        tree.append(e)?;
    }
    let served = std::fs::read(log_dir.join("checkpoint"))
        .map_err(Error::io("reading", &log_dir.join("checkpoint")))?;
    let mut notes = read_checkpoints(state_dir)?;
    notes.push(served);
    for (i, note) in notes.iter().enumerate() {
        let (size, root) = tlog::open_checkpoint(note, key, origin)
            .map_err(|e| Error::Log(format!("checkpoint {i}: {e}")))?;
        if size > tree.size() {
            return Err(Error::Log(format!(
                "a signed checkpoint covers {size} entries but {ENTRIES} holds {}: entries were removed",
                tree.size()
            )));
        }
        if tree.root_at(size)? != root {
            return Err(Error::Log(locate(log_dir, &tree, size, root)?));
        }
    }
    let tiles = check_tiles(log_dir, &tree, &raw)?;
    for e in &parsed {
        check_changes(log_dir, e)?;
    }
    let mut lines = vec![format!(
        "log verified: {} entries, {} checkpoints, {tiles} tile files; root {}",
        tree.size(),
        notes.len(),
        hex::encode(tree.root()?)
    )];
    if torn.is_some() {
        lines.push(
            "note: the last line of the entries file is cut short (never acknowledged)".into(),
        );
    }
    Ok(lines)
}

fn check_tiles(log_dir: &Path, tree: &Tree, entries: &[Vec<u8>]) -> Result<usize> {
    let root = log_dir.join("tile");
    let mut stack = vec![root];
    let mut count = 0;
    while let Some(dir) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for item in list {
            let item = item.map_err(Error::io("listing", &dir))?;
            let path = item.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(log_dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if rel
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".tmp-"))
            {
                continue;
            }
            let tile = tlog::tile_at(&rel)
                .ok_or_else(|| Error::Log(format!("{rel} is not a tile path")))?;
            let want = tlog::tile_bytes(&tile, tree, entries)?;
            let have = std::fs::read(&path).map_err(Error::io("reading", &path))?;
            if have != want {
                let first = tile.level_index() << TILE_HEIGHT;
                return Err(Error::Log(if tile.is_data() {
                    let got = tlog::parse_bundle(&have).unwrap_or_default();
                    let bad = (0..want.len())
                        .find(|i| got.get(*i) != entries.get(first as usize + i))
                        .unwrap_or(0);
                    format!(
                        "{rel} does not hold what {ENTRIES} holds: {} differs",
                        line_of(first + bad as u64)
                    )
                } else {
                    format!("{rel} does not hold the hashes the entries give")
                }));
            }
            count += 1;
        }
    }
    Ok(count)
}

fn check_changes(log_dir: &Path, e: &Entry) -> Result<()> {
    let Some(sha) = &e.targets_sha256 else {
        return Ok(());
    };
    let path = log_dir.join("changes").join(format!("{sha}.json"));
    let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
    if hex::encode(sha2::Sha256::digest(&bytes)) != *sha {
        return Err(Error::Log(format!(
            "{}: the change list {} was altered",
            line_of(e.index),
            path.display()
        )));
    }
    Ok(())
}

/// Lists the entries signed at or after `since`, as text or JSON lines.
pub fn list(cfg: &SignerConfig, since: Option<jiff::Timestamp>, json: bool) -> Result<Vec<String>> {
    let (_, parsed, _) = read_entries(&cfg.state_dir.join(ENTRIES))?;
    let since = since.map_or(i64::MIN, |t| t.as_second());
    let mut lines = Vec::new();
    for e in parsed.iter().filter(|e| e.time >= since) {
        if json {
            lines.push(serde_json::to_string(e).map_err(|err| Error::Log(err.to_string()))?);
            continue;
        }
        let at = |s: i64| {
            jiff::Timestamp::from_second(s).map_or_else(|_| s.to_string(), |t| t.to_string())
        };
        lines.push(format!(
            "#{} {} {} {} v{} by {} expires {} sha256 {}",
            e.index,
            at(e.time),
            e.role,
            e.kind.name(),
            e.version,
            e.client,
            at(e.expires),
            e.sha256
        ));
        for t in &e.targets {
            lines.push(format!(
                "    {:?} {} {}",
                t.change,
                t.path,
                t.sha256.as_deref().unwrap_or("-")
            ));
        }
        if let (Some(sha), Some(n)) = (&e.targets_sha256, e.targets_count) {
            lines.push(format!("    {n} target changes in changes/{sha}.json"));
        }
    }
    Ok(lines)
}

//! The log on disk: the append-only entries, the tree, the tiles and the
//! signed checkpoints.
//!
//! Files:
//! - `STATE_DIR/entries.jsonl`: one entry per line ([`crate::entry`]),
//!   appended and fsync'd before the signature it records leaves the signer.
//! - `STATE_DIR/checkpoints.jsonl`: every checkpoint note signed, one JSON
//!   string per line, for `audit verify`.
//! - `LOG_DIR/checkpoint`, `LOG_DIR/tile/…`: the C2SP tlog-tiles files that
//!   mirrors serve (see [`crate::tlog`]), and `LOG_DIR/changes/…` for long
//!   change lists.
//!
//! # Invariants
//! - An entry is durable (written and fsync'd) before [`Journal::append`]
//!   returns; the caller releases the signature only after that.
//! - A line cut short by a crash was never acknowledged: at open it is
//!   dropped (with a warning). Any other damage refuses the open.
//! - The tiles and the checkpoint are derived from the entries; after a
//!   crash they are completed at open. A served checkpoint that the entries
//!   do not reproduce refuses the open: the log must never fork.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use onionpkg_trust::util::write_atomic;

use crate::entry::Entry;
use crate::tlog::{self, Tree, VerifierKey};
use crate::{Error, Result};

/// The entries file's name in the state directory.
pub const ENTRIES: &str = "entries.jsonl";
/// The checkpoint history's name in the state directory.
pub const CHECKPOINTS: &str = "checkpoints.jsonl";

/// The open log.
#[derive(Debug)]
pub struct Journal {
    state_dir: PathBuf,
    log_dir: PathBuf,
    origin: String,
    file: File,
    entries: Vec<Vec<u8>>,
    tree: Tree,
    published: u64,
}

/// The entries file read: each line's bytes, each entry parsed, and, if the
/// last line was cut short, the length of the good prefix.
pub type EntriesRead = (Vec<Vec<u8>>, Vec<Entry>, Option<u64>);

/// Reads and parses the entries file.
pub fn read_entries(path: &Path) -> Result<EntriesRead> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(Error::io("reading", path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("opening", path)(e)),
    }
    let good = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let torn = (good < bytes.len()).then_some(good as u64);
    let mut raw = Vec::new();
    let mut parsed = Vec::new();
    let body = bytes[..good].strip_suffix(b"\n").unwrap_or_default();
    let lines = if good == 0 {
        None
    } else {
        Some(body.split(|b| *b == b'\n'))
    };
    for (i, line) in lines.into_iter().flatten().enumerate() {
        let entry: Entry = serde_json::from_slice(line).map_err(|e| {
            Error::Log(format!(
                "entry {i} (line {} of {}): {e}",
                i + 1,
                path.display()
            ))
        })?;
        if entry.index != i as u64 {
            return Err(Error::Log(format!(
                "entry {i} (line {} of {}) says it is entry {}",
                i + 1,
                path.display(),
                entry.index
            )));
        }
        raw.push(line.to_vec());
        parsed.push(entry);
    }
    Ok((raw, parsed, torn))
}

/// Reads the checkpoint history.
pub fn read_checkpoints(state_dir: &Path) -> Result<Vec<Vec<u8>>> {
    let path = state_dir.join(CHECKPOINTS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading", &path)(e)),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let note: String = serde_json::from_str(line).map_err(|e| {
            Error::Log(format!(
                "checkpoint {i} (line {} of {}): {e}",
                i + 1,
                path.display()
            ))
        })?;
        out.push(note.into_bytes());
    }
    Ok(out)
}

impl Journal {
    /// Opens the log: reads every entry, rebuilds the tree, and checks the
    /// served checkpoint against it. Returns the parsed entries too.
    pub fn open(
        state_dir: &Path,
        log_dir: &Path,
        origin: &str,
        key: &str,
    ) -> Result<(Self, Vec<Entry>)> {
        std::fs::create_dir_all(state_dir).map_err(Error::io("creating", state_dir))?;
        std::fs::create_dir_all(log_dir).map_err(Error::io("creating", log_dir))?;
        let path = state_dir.join(ENTRIES);
        let (raw, parsed, torn) = read_entries(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("opening", &path))?;
        if let Some(len) = torn {
            tracing::warn!(path = %path.display(), "dropping a log line cut short by a crash (never acknowledged)");
            file.set_len(len).map_err(Error::io("truncating", &path))?;
            file.sync_all().map_err(Error::io("syncing", &path))?;
        }
        let mut tree = Tree::new();
        for e in &raw {
            tree.append(e)?;
        }
        let cp_path = log_dir.join("checkpoint");
        let published = match std::fs::read(&cp_path) {
            Ok(note) => {
                let (size, root) = tlog::open_checkpoint(&note, key, origin)?;
                if size > tree.size() {
                    return Err(Error::Log(format!(
                        "the served checkpoint covers {size} entries but {} holds {}: entries are missing",
                        path.display(),
                        tree.size()
                    )));
                }
                if tree.root_at(size)? != root {
                    return Err(Error::Log(format!(
                        "the entries do not reproduce the served checkpoint of size {size}; run `audit verify`"
                    )));
                }
                size
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("reading", &cp_path)(e)),
        };
        let journal = Self {
            state_dir: state_dir.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            origin: origin.to_string(),
            file,
            entries: raw,
            tree,
            published,
        };
        Ok((journal, parsed))
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Whether entries exist that no served checkpoint covers yet (or no
    /// checkpoint was ever written).
    pub fn needs_publish(&self) -> bool {
        self.published < self.tree.size() || !self.log_dir.join("checkpoint").exists()
    }

    /// Appends `entry` durably; returns its index. `entry.index` must be the
    /// next index.
    pub fn append(&mut self, entry: &Entry) -> Result<u64> {
        if entry.index != self.size() {
            return Err(Error::Log(format!(
                "entry numbered {} appended at {}",
                entry.index,
                self.size()
            )));
        }
        let line = serde_json::to_vec(entry).map_err(|e| Error::Log(e.to_string()))?;
        if line.len() > tlog::MAX_ENTRY {
            return Err(Error::Log(format!(
                "entry of {} bytes is too large",
                line.len()
            )));
        }
        let path = self.state_dir.join(ENTRIES);
        let mut framed = line.clone();
        framed.push(b'\n');
        let end = self
            .file
            .seek(SeekFrom::End(0))
            .map_err(Error::io("seeking", &path))?;
        if let Err(e) = self
            .file
            .write_all(&framed)
            .and_then(|()| self.file.sync_data())
        {
            // Leave no partial line behind: it was never acknowledged.
            let _ = self.file.set_len(end);
            return Err(Error::io("appending to", &path)(e));
        }
        self.tree.append(&line)?;
        self.entries.push(line);
        Ok(entry.index)
    }

    /// Writes the tiles the entries since the last checkpoint need and a new
    /// checkpoint signed with `sign` (the log key) as `key`.
    pub fn publish(
        &mut self,
        key: &VerifierKey,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
    ) -> Result<()> {
        for tile in tlog::new_tiles(&self.tree, self.published, &self.entries)? {
            let path = self.log_dir.join(&tile.path);
            match std::fs::read(&path) {
                Ok(existing) if existing == tile.bytes => continue,
                Ok(_) => {
                    return Err(Error::Log(format!(
                        "{} differs from what the entries give; run `audit verify`",
                        path.display()
                    )));
                }
                Err(_) => write_atomic(&path, &tile.bytes, Some(0o644))?,
            }
        }
        let size = self.tree.size();
        let text = tlog::checkpoint_text(&self.origin, size, self.tree.root()?)?;
        let note = tlog::signed_note(&text, key, sign(&text)?)?;
        // The history first: a served checkpoint is always in it.
        let hist = self.state_dir.join(CHECKPOINTS);
        let mut line = serde_json::to_vec(&String::from_utf8_lossy(&note))
            .map_err(|e| Error::Log(e.to_string()))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&hist)
            .map_err(Error::io("opening", &hist))?;
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(Error::io("appending to", &hist))?;
        write_atomic(&self.log_dir.join("checkpoint"), &note, Some(0o644))?;
        self.published = size;
        Ok(())
    }

    /// Writes a change list too long for its entry; returns its SHA-256.
    pub fn write_changes(&self, bytes: &[u8]) -> Result<String> {
        use sha2::Digest as _;
        let sha = hex::encode(sha2::Sha256::digest(bytes));
        let path = self.log_dir.join("changes").join(format!("{sha}.json"));
        if !path.exists() {
            write_atomic(&path, bytes, Some(0o644))?;
        }
        Ok(sha)
    }
}

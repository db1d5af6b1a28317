//! The log's Merkle tree, checkpoints and tiles: our narrow interface over
//! `tlog_tiles` and `signed_note`.
//!
//! - Hashing is RFC 6962's: a leaf is SHA-256(0x00 ‖ entry), a node
//!   SHA-256(0x01 ‖ left ‖ right); the tree is kept as Go's tlog "stored
//!   hashes" (every complete subtree once), in memory, rebuilt from the
//!   entries at start.
//! - A checkpoint is C2SP tlog-checkpoint text (origin, size, base64 root
//!   hash) signed as a C2SP signed note with the log's Ed25519 key, whose
//!   key name is the origin.
//! - Tiles are C2SP tlog-tiles, height 8: `tile/L/N[.p/W]` hold hashes,
//!   `tile/entries/N[.p/W]` hold the entries, each as a big-endian u16 length
//!   and the bytes. (`tlog_tiles` 0.2 names tiles Go-style, `tile/8/L/N` and
//!   `tile/8/data/N`; [`c2sp_path`] maps them.)
//!
//! # Invariants
//! - A tree is only ever appended to; its root at any earlier size stays
//!   computable, so every checkpoint ever signed can be checked again.
//! - Tile files are a function of the entries: rewriting them from the
//!   entries gives the same bytes.

use base64::Engine as _;
use tlog_tiles::{Checkpoint, Hash, HashReader, Tile};

use crate::{Error, Result};

/// The tile height of C2SP tlog-tiles: 256 hashes or entries per full tile.
pub const TILE_HEIGHT: u8 = 8;
/// The largest entry a C2SP entry bundle can carry.
pub const MAX_ENTRY: usize = u16::MAX as usize;

/// An append-only RFC 6962 Merkle tree.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    stored: Vec<Hash>,
    size: u64,
}

impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> std::result::Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                usize::try_from(*i)
                    .ok()
                    .and_then(|i| self.stored.get(i).copied())
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn tlog_err(e: tlog_tiles::Error) -> Error {
    Error::Log(format!("tree: {e}"))
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends an entry; returns its index.
    pub fn append(&mut self, entry: &[u8]) -> Result<u64> {
        let n = self.size;
        let hashes = tlog_tiles::stored_hashes(n, entry, self).map_err(tlog_err)?;
        self.stored.extend(hashes);
        self.size += 1;
        Ok(n)
    }

    /// Appends an entry known only by its leaf hash; returns its index.
    pub fn append_leaf_hash(&mut self, leaf: [u8; 32]) -> Result<u64> {
        let n = self.size;
        let hashes =
            tlog_tiles::stored_hashes_for_record_hash(n, Hash(leaf), self).map_err(tlog_err)?;
        self.stored.extend(hashes);
        self.size += 1;
        Ok(n)
    }

    /// The root hash of the first `n` entries (`n` at most the size).
    pub fn root_at(&self, n: u64) -> Result<[u8; 32]> {
        if n > self.size {
            return Err(Error::Log(format!(
                "no tree of size {n}: the log has {} entries",
                self.size
            )));
        }
        Ok(tlog_tiles::tree_hash(n, self).map_err(tlog_err)?.0)
    }

    /// The root hash of the whole tree.
    pub fn root(&self) -> Result<[u8; 32]> {
        self.root_at(self.size)
    }

    /// The leaf hash of entry `i`.
    pub fn leaf_hash(&self, i: u64) -> Result<[u8; 32]> {
        let idx = tlog_tiles::stored_hash_index(0, i);
        Ok(self.read_hashes(&[idx]).map_err(tlog_err)?[0].0)
    }
}

/// The RFC 6962 leaf hash of an entry.
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    tlog_tiles::record_hash(entry).0
}

/// The C2SP path of a tile (`tile/L/N[.p/W]`, `tile/entries/N[.p/W]`).
pub fn c2sp_path(tile: &Tile) -> String {
    let go = tile.path();
    let rest = go
        .strip_prefix(&format!("tile/{TILE_HEIGHT}/"))
        .unwrap_or(&go);
    match rest.strip_prefix("data/") {
        Some(n) => format!("tile/entries/{n}"),
        None => format!("tile/{rest}"),
    }
}

/// The tile at a C2SP path (`None` if it is not one).
pub fn tile_at(path: &str) -> Option<Tile> {
    let rest = path.strip_prefix("tile/")?;
    let go = match rest.strip_prefix("entries/") {
        Some(n) => format!("tile/{TILE_HEIGHT}/data/{n}"),
        None => format!("tile/{TILE_HEIGHT}/{rest}"),
    };
    Tile::from_path(&go).ok()
}

/// The bytes a tile must hold in `tree` with `entries`.
pub fn tile_bytes(tile: &Tile, tree: &Tree, entries: &[Vec<u8>]) -> Result<Vec<u8>> {
    let start = tile.level_index() << TILE_HEIGHT;
    let span =
        (start + u64::from(tile.width())) << (u32::from(tile.level()) * u32::from(TILE_HEIGHT));
    if span > tree.size() {
        return Err(Error::Log(format!(
            "{} reaches past the tree",
            c2sp_path(tile)
        )));
    }
    if tile.is_data() {
        entry_bundle(tile, entries)
    } else {
        tile.read_data(tree).map_err(tlog_err)
    }
}

/// A tile's bytes and its C2SP path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileFile {
    /// The path below the log directory.
    pub path: String,
    /// The contents.
    pub bytes: Vec<u8>,
}

/// The tiles (hash tiles and entry bundles) to write when the tree grows
/// from `old` to its current size; `entries` are all entries so far.
pub fn new_tiles(tree: &Tree, old: u64, entries: &[Vec<u8>]) -> Result<Vec<TileFile>> {
    let mut out = Vec::new();
    for tile in Tile::new_tiles(TILE_HEIGHT, old, tree.size()) {
        let bytes = tile.read_data(tree).map_err(tlog_err)?;
        out.push(TileFile {
            path: c2sp_path(&tile),
            bytes,
        });
        if tile.level() == 0 {
            let mut data = tile;
            data.set_is_data();
            out.push(TileFile {
                path: c2sp_path(&data),
                bytes: entry_bundle(&data, entries)?,
            });
        }
    }
    Ok(out)
}

/// Every tile of the tree as it is now, full and partial (what `audit
/// verify` compares with the files).
pub fn all_tiles(tree: &Tree, entries: &[Vec<u8>]) -> Result<Vec<TileFile>> {
    new_tiles(tree, 0, entries)
}

fn entry_bundle(tile: &Tile, entries: &[Vec<u8>]) -> Result<Vec<u8>> {
    let start = tile.level_index() << TILE_HEIGHT;
    let mut out = Vec::new();
    for i in start..start + u64::from(tile.width()) {
        let entry = usize::try_from(i)
            .ok()
            .and_then(|i| entries.get(i))
            .ok_or_else(|| Error::Log(format!("entry {i} missing for {}", c2sp_path(tile))))?;
        let len = u16::try_from(entry.len())
            .map_err(|_| Error::Log(format!("entry {i} is larger than {MAX_ENTRY} bytes")))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries.
pub fn parse_bundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return None;
        }
        out.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Some(out)
}

/// The checkpoint text of a tree of `size` entries with root `root`.
pub fn checkpoint_text(origin: &str, size: u64, root: [u8; 32]) -> Result<Vec<u8>> {
    Checkpoint::new(origin, size, Hash(root), "")
        .map(|c| c.to_bytes())
        .map_err(|_| Error::Log(format!("{origin:?} cannot be a checkpoint origin")))
}

/// A verifier key parsed: the name, the note key id, and the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// The key name (the log's origin).
    pub name: String,
    /// The 4-byte key id of signed notes.
    pub id: u32,
    /// The raw Ed25519 public key.
    pub public: [u8; 32],
}

impl VerifierKey {
    /// Parses `NAME+KEYID+BASE64(0x01 ‖ key)` (the signed-note format).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "{text:?} is not an ed25519 signed-note verifier key"
            ))
        };
        signed_note::StandardVerifier::new(text).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let id = u32::from_str_radix(id, 16).map_err(|_| bad())?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| bad())?;
        let public: [u8; 32] = key
            .get(1..)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Self {
            name: name.to_string(),
            id,
            public,
        })
    }
}

/// A signed checkpoint note: `text` signed as `key` with `signature` (made
/// over `text` by the log key).
pub fn signed_note(text: &[u8], key: &VerifierKey, signature: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |e: signed_note::NoteError| Error::Log(format!("checkpoint note: {e}"));
    let sig = signed_note::Signature::new(key.name.clone(), key.id, signature).map_err(bad)?;
    let note = signed_note::Note::new(text, &[sig]).map_err(bad)?;
    Ok(note.to_bytes())
}

/// Opens a signed checkpoint: the note must carry a valid signature of
/// `key`; returns the tree size and root hash.
pub fn open_checkpoint(note: &[u8], key: &str, origin: &str) -> Result<(u64, [u8; 32])> {
    let bad = |what: String| Error::Log(format!("checkpoint: {what}"));
    let verifier =
        signed_note::StandardVerifier::new(key).map_err(|e| bad(format!("verifier key: {e}")))?;
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let note = signed_note::Note::from_bytes(note).map_err(|e| bad(e.to_string()))?;
    note.verify(&list).map_err(|e| bad(e.to_string()))?;
    let cp = Checkpoint::from_bytes(note.text()).map_err(|e| bad(e.to_string()))?;
    if cp.origin() != origin {
        return Err(bad(format!(
            "origin {:?}, expected {origin:?}",
            cp.origin()
        )));
    }
    Ok((cp.size(), cp.hash().0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6962_roots_and_paths() {
        let mut t = Tree::new();
        assert_eq!(
            hex::encode(t.root().unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 6962 test vector: the tree of the first leaf (empty string).
        t.append(b"").unwrap();
        assert_eq!(
            hex::encode(t.root().unwrap()),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let entries: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut t = Tree::new();
        for e in &entries {
            t.append(e).unwrap();
        }
        let paths: Vec<String> = all_tiles(&t, &entries)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            paths,
            [
                "tile/0/000",
                "tile/entries/000",
                "tile/0/001.p/44",
                "tile/entries/001.p/44",
                "tile/1/000.p/1"
            ]
        );
        let bundle = &all_tiles(&t, &entries).unwrap()[3].bytes;
        assert_eq!(parse_bundle(bundle).unwrap(), entries[256..]);
    }
}

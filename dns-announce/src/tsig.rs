//! TSIG keys (RFC 8945) for dynamic updates, read from the files that Knot
//! DNS and BIND make.
//!
//! Accepted formats, one key per file:
//!
//! - Knot's `keymgr -t NAME hmac-sha256` output: the `key:` YAML block
//!   (`- id:`, `algorithm:`, `secret:`), and/or its comment line
//!   `# hmac-sha256:NAME:SECRET` (also accepted without the `#`, as
//!   `knsupdate -y` and `nsupdate -y` take it).
//! - BIND's key clause, as `tsig-keygen` writes it:
//!   `key "NAME" { algorithm hmac-sha256; secret "SECRET"; };`
//!
//! Algorithms: hmac-sha256 (recommended), hmac-sha384, hmac-sha512.
//! hmac-md5 and hmac-sha1 are refused.
//!
//! # Invariants
//! - The secret is never printed, logged or put in an error message; it is
//!   wiped from memory when the [`TsigKey`] is dropped, and `Debug` shows
//!   only the key name and algorithm.
//! - A file holding several keys, or two differing spellings of one key, is
//!   refused rather than guessed at.

use std::path::Path;

use base64::Engine as _;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};
use zeroize::Zeroizing;

use crate::err::{Error, Result};

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The TSIG algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA256, the recommended one.
    HmacSha256,
    /// HMAC-SHA384.
    HmacSha384,
    /// HMAC-SHA512.
    HmacSha512,
}

impl Algorithm {
    /// The algorithm's name as key files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        match s.as_str() {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "hmac-sha384" => Ok(Self::HmacSha384),
            "hmac-sha512" => Ok(Self::HmacSha512),
            "hmac-md5" | "hmac-md5.sig-alg.reg.int" | "hmac-sha1" | "hmac-sha224" => Err(format!(
                "algorithm {s} is too weak or not supported; use hmac-sha256"
            )),
            _ => Err(format!(
                "unknown algorithm {:?}; use hmac-sha256",
                s.chars().take(40).collect::<String>()
            )),
        }
    }

    fn to_hickory(self) -> TsigAlgorithm {
        match self {
            Self::HmacSha256 => TsigAlgorithm::HmacSha256,
            Self::HmacSha384 => TsigAlgorithm::HmacSha384,
            Self::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }
}

/// A TSIG key: name, algorithm and secret.
pub struct TsigKey {
    name: String,
    algorithm: Algorithm,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One key as found in a file, before checking.
#[derive(PartialEq, Eq)]
struct Found {
    name: String,
    algorithm: String,
    secret: Zeroizing<String>,
}

impl Found {
    /// Normalises the spelling, so that two spellings of one key compare equal.
    fn new(name: &str, algorithm: &str, secret: &str) -> Self {
        Self {
            name: name.trim().trim_end_matches('.').to_ascii_lowercase(),
            algorithm: algorithm.trim().trim_end_matches('.').to_ascii_lowercase(),
            secret: Zeroizing::new(secret.trim().to_string()),
        }
    }
}

impl TsigKey {
    /// Reads and parses a key file. Warns (in the log) when the file is
    /// readable by other users.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(Error::io("reading", path))?);
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "the TSIG key file is readable by other users; chmod 600 it");
            }
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::TsigKey {
            path: path.to_path_buf(),
            reason: "not UTF-8 text".into(),
        })?;
        Self::parse(text).map_err(|reason| Error::TsigKey {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses the text of a key file (see the module documentation).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut found = if looks_like_bind(text) {
            parse_bind(text)?
        } else {
            let mut keys = parse_knot_yaml(text)?;
            for line_key in parse_colon_lines(text) {
                if !keys.contains(&line_key) {
                    keys.push(line_key);
                }
            }
            keys
        };
        let key = match found.len() {
            0 => {
                return Err("no TSIG key found: expected the output of `keymgr -t NAME \
                     hmac-sha256`, a `hmac-sha256:NAME:SECRET` line, or a BIND \
                     `key \"NAME\" { algorithm hmac-sha256; secret \"…\"; };` clause"
                    .into());
            }
            1 => found.remove(0),
            n => {
                return Err(format!(
                    "holds {n} different keys (or two spellings of one key that differ); \
                     give a file with exactly one key"
                ));
            }
        };
        Self::from_parts(&key.name, &key.algorithm, &key.secret)
    }

    /// A key from its parts: a DNS name, an algorithm name and the secret in
    /// base64.
    pub fn from_parts(
        name: &str,
        algorithm: &str,
        secret_b64: &str,
    ) -> std::result::Result<Self, String> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err("the key name is empty".into());
        }
        Name::from_ascii(format!("{name}.")).map_err(|_| {
            format!(
                "the key name {:?} is not a DNS name",
                name.chars().take(80).collect::<String>()
            )
        })?;
        let algorithm = Algorithm::parse(algorithm)?;
        let secret = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(secret_b64.trim())
                .map_err(|_| "the secret is not valid base64".to_string())?,
        );
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the secret is {} bytes long; at least {MIN_SECRET_LEN} are required \
                 (make one with `keymgr -t NAME hmac-sha256`)",
                secret.len()
            ));
        }
        Ok(Self {
            name,
            algorithm,
            secret,
        })
    }

    /// The key name, lowercase, without the trailing dot.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A hickory signer for requests, with `fudge` seconds of allowed clock
    /// difference to the server.
    pub fn signer(&self, fudge: u16) -> Result<TSigner> {
        let bad = |reason: String| Error::arg("TSIG key", reason);
        let name = Name::from_ascii(format!("{}.", self.name)).map_err(|e| bad(e.to_string()))?;
        TSigner::new(
            self.secret.as_slice().to_vec(),
            self.algorithm.to_hickory(),
            name,
            fudge,
        )
        .map_err(|e| bad(e.to_string()))
    }
}

/// Strips `#` and `//` comments (outside quotes) and `/* */` comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        if in_quote {
            out.push(c);
            if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                out.push(c);
            }
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}

/// BIND configuration tokens: words, quoted strings (without quotes),
/// and the punctuation `{`, `}`, `;`.
fn tokens(text: &str) -> std::result::Result<Vec<String>, String> {
    let text = strip_comments(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if matches!(c, '{' | '}' | ';') {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err("a quoted string is not closed".into()),
                }
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"') {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn looks_like_bind(text: &str) -> bool {
    tokens(text).is_ok_and(|t| t.first().is_some_and(|w| w == "key") && t.iter().any(|w| w == "{"))
}

/// `key NAME { algorithm ALG; secret "S"; };`, repeated.
fn parse_bind(text: &str) -> std::result::Result<Vec<Found>, String> {
    let toks = tokens(text)?;
    let mut it = toks.iter().map(String::as_str);
    let mut out = Vec::new();
    let syntax = |what: &str| format!("BIND key clause: expected {what}");
    while let Some(word) = it.next() {
        if word != "key" {
            return Err(syntax("`key`"));
        }
        let name = it.next().ok_or_else(|| syntax("a key name"))?;
        if it.next() != Some("{") {
            return Err(syntax("`{` after the key name"));
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match it.next() {
                Some("}") => break,
                Some("algorithm") => {
                    algorithm = Some(it.next().ok_or_else(|| syntax("an algorithm"))?);
                }
                Some("secret") => {
                    secret = Some(it.next().ok_or_else(|| syntax("a secret"))?);
                }
                Some(other) => {
                    return Err(format!(
                        "BIND key clause: unknown statement {:?}",
                        other.chars().take(40).collect::<String>()
                    ));
                }
                None => return Err(syntax("`}`")),
            }
            if it.next() != Some(";") {
                return Err(syntax("`;` after each statement"));
            }
        }
        if it.next() != Some(";") {
            return Err(syntax("`;` after `}`"));
        }
        out.push(Found::new(
            name,
            algorithm.ok_or_else(|| syntax("an `algorithm` statement"))?,
            secret.ok_or_else(|| syntax("a `secret` statement"))?,
        ));
    }
    Ok(out)
}

/// Knot's `key:` section: `- id: NAME`, `algorithm: ALG`, `secret: S`.
fn parse_knot_yaml(text: &str) -> std::result::Result<Vec<Found>, String> {
    let mut out = Vec::new();
    let mut in_section = false;
    let mut current: Option<[Option<String>; 3]> = None;
    let finish = |entry: [Option<String>; 3], out: &mut Vec<Found>| {
        let [name, algorithm, secret] = entry;
        match (name, algorithm, secret) {
            (Some(name), Some(algorithm), Some(secret)) => {
                out.push(Found::new(&name, &algorithm, &secret));
                Ok(())
            }
            _ => Err("Knot key section: each key needs `id`, `algorithm` and `secret`".to_string()),
        }
    };
    for line in text.lines() {
        let content = line.split('#').next().unwrap_or("");
        if content.trim().is_empty() {
            continue;
        }
        let indented = content.starts_with(char::is_whitespace) || content.starts_with('-');
        if !indented {
            if let Some(entry) = current.take() {
                finish(entry, &mut out)?;
            }
            in_section = content.trim_end() == "key:";
            continue;
        }
        if !in_section {
            continue;
        }
        let mut item = content.trim();
        if let Some(rest) = item.strip_prefix('-') {
            if let Some(entry) = current.take() {
                finish(entry, &mut out)?;
            }
            current = Some([None, None, None]);
            item = rest.trim();
        }
        let Some((k, v)) = item.split_once(':') else {
            return Err("Knot key section: expected `name: value` lines".into());
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        let entry = current.get_or_insert([None, None, None]);
        match k.trim() {
            "id" => entry[0] = Some(v),
            "algorithm" => entry[1] = Some(v),
            "secret" => entry[2] = Some(v),
            _ => {}
        }
    }
    if let Some(entry) = current.take() {
        finish(entry, &mut out)?;
    }
    Ok(out)
}

/// Lines `hmac-ALG:NAME:SECRET`, optionally behind `#`.
fn parse_colon_lines(text: &str) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        let mut parts = line.splitn(3, ':');
        let (Some(alg), Some(name), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !alg.to_ascii_lowercase().starts_with("hmac-") || secret.contains(char::is_whitespace) {
            continue;
        }
        let found = Found::new(name, alg, secret);
        if !out.contains(&found) {
            out.push(found);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "4wHudla5+kKDUm76CoXuk0KGvMLEMaiNHteFeHCLTfg=";

    fn knot_output(name: &str, secret: &str) -> String {
        format!(
            "# hmac-sha256:{name}:{secret}\nkey:\n  - id: {name}\n    algorithm: hmac-sha256\n    secret: {secret}\n"
        )
    }

    #[test]
    fn reads_keymgr_output() {
        let key = TsigKey::parse(&knot_output("update-key", SECRET)).unwrap();
        assert_eq!(key.name(), "update-key");
        assert_eq!(key.algorithm(), Algorithm::HmacSha256);
        assert_eq!(key.secret.len(), 32);
    }

    #[test]
    fn reads_only_the_comment_line_or_only_the_yaml() {
        let line = TsigKey::parse(&format!("# hmac-sha256:k1:{SECRET}\n")).unwrap();
        assert_eq!(line.name(), "k1");
        let bare = TsigKey::parse(&format!("hmac-sha512:k2.example.:{SECRET}")).unwrap();
        assert_eq!(
            (bare.name(), bare.algorithm()),
            ("k2.example", Algorithm::HmacSha512)
        );
        let yaml =
            format!("key:\n- id: \"k3\"\n  algorithm: hmac-sha384\n  secret: \"{SECRET}\"\n");
        let key = TsigKey::parse(&yaml).unwrap();
        assert_eq!((key.name(), key.algorithm()), ("k3", Algorithm::HmacSha384));
    }

    #[test]
    fn reads_bind_key_clauses() {
        let bind = format!(
            "// made by tsig-keygen\nkey \"update-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let key = TsigKey::parse(&bind).unwrap();
        assert_eq!(key.name(), "update-key");
        let compact =
            format!("key upd.example. {{ secret \"{SECRET}\"; algorithm HMAC-SHA256; }};");
        assert_eq!(TsigKey::parse(&compact).unwrap().name(), "upd.example");
    }

    #[test]
    fn refuses_weak_missing_and_ambiguous_keys() {
        let md5 = format!("key \"k\" {{ algorithm hmac-md5; secret \"{SECRET}\"; }};");
        assert!(TsigKey::parse(&md5).unwrap_err().contains("hmac-sha256"));
        assert!(TsigKey::parse("").unwrap_err().contains("no TSIG key"));
        let two = format!(
            "{}\n{}",
            knot_output("a", SECRET),
            "# hmac-sha256:b:".to_string() + SECRET
        );
        assert!(
            TsigKey::parse(&two)
                .unwrap_err()
                .contains("2 different keys")
        );
        let short = "# hmac-sha256:k:c2hvcnQ=";
        assert!(TsigKey::parse(short).unwrap_err().contains("at least"));
        let unclosed = "key \"k\" { algorithm hmac-sha256; secret \"abc";
        assert!(TsigKey::parse(unclosed).is_err());
        let no_secret = "key \"k\" { algorithm hmac-sha256; };";
        assert!(TsigKey::parse(no_secret).unwrap_err().contains("secret"));
    }

    #[test]
    fn never_shows_the_secret() {
        let key = TsigKey::parse(&knot_output("k", SECRET)).unwrap();
        assert!(!format!("{key:?}").contains(SECRET));
        let bad = "key \"k\" { algorithm hmac-sha256; secret \"not*base64!\"; };";
        let err = TsigKey::parse(bad).unwrap_err();
        assert!(!err.contains("not*base64"), "{err}");
    }

    #[test]
    fn makes_a_signer() {
        let key = TsigKey::parse(&knot_output("update-key", SECRET)).unwrap();
        assert!(key.signer(300).is_ok());
    }
}

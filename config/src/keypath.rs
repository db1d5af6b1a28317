//! Dotted key paths (`listen.http`, `feed[2].name`) and their spans in the
//! parsed document.
//!
//! Deserialization errors carry a byte span but no key; validation rules know
//! the key but not where it was written. Both are mapped here through the
//! spanned document tree that the parser keeps.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// A key in a table.
    Key(String),
    /// An entry of an array, counted from 0.
    Index(usize),
}

/// A path from the document root to a key or an array entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// Parses a path written by validation rules, such as `feed[2].name`.
    ///
    /// Rules only name keys of the schema, which are bare keys, so no quoting
    /// is needed here.
    pub(crate) fn parse(s: &str) -> Self {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
            if !name.is_empty() {
                segs.push(Seg::Key(name.to_owned()));
            }
            while let Some((index, tail)) = rest.split_once(']') {
                if let Ok(i) = index.parse() {
                    segs.push(Seg::Index(i));
                }
                rest = tail.strip_prefix('[').unwrap_or(tail);
            }
        }
        Self(segs)
    }

    /// This path with `key` appended.
    pub(crate) fn join(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// The path one step up, or `None` at the root.
    fn parent(&self) -> Option<Self> {
        let (_, up) = self.0.split_last()?;
        Some(Self(up.to_vec()))
    }

    /// Whether this is the document root.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The span to point at for this path: the value of a scalar or an array
    /// entry, or the key of a table; `None` when the path is not in the file.
    pub(crate) fn span_in(&self, root: &DeTable<'_>) -> Option<Range<usize>> {
        // `None` stands for the root table.
        let mut cur: Option<&DeValue<'_>> = None;
        let mut key_span = None;
        let mut value_span = None;
        for seg in &self.0 {
            let next = match seg {
                Seg::Key(name) => {
                    let table = match cur {
                        None => root,
                        Some(DeValue::Table(t)) => t,
                        Some(_) => return None,
                    };
                    let (k, v) = table.get_key_value(name.as_str())?;
                    key_span = Some(k.span());
                    v
                }
                Seg::Index(i) => {
                    let Some(DeValue::Array(a)) = cur else {
                        return None;
                    };
                    key_span = None;
                    a.get(*i)?
                }
            };
            value_span = Some(next.span());
            cur = Some(next.get_ref());
        }
        match (cur, key_span) {
            // A table's own span may cover all its keys; its name is the
            // useful place to point at.
            (Some(DeValue::Table(_)), Some(k)) => Some(k),
            _ => value_span,
        }
    }

    /// The span of this path, or else of its closest ancestor in the file.
    pub(crate) fn nearest_span_in(&self, root: &DeTable<'_>) -> Option<Range<usize>> {
        let mut path = Some(self.clone());
        while let Some(p) = path {
            if let Some(span) = p.span_in(root) {
                return Some(span);
            }
            path = p.parent();
        }
        None
    }

    /// The path of the innermost key or array entry whose span encloses
    /// `target`; the root when none does.
    pub(crate) fn enclosing(root: &DeTable<'_>, target: &Range<usize>) -> Self {
        let mut best = Best {
            target: target.clone(),
            found: None,
        };
        walk_table(root, &mut Vec::new(), &mut best);
        best.found
            .map_or_else(Self::default, |(_, path)| Self(path))
    }
}

/// The innermost span found so far that encloses the target.
struct Best {
    target: Range<usize>,
    found: Option<(usize, Vec<Seg>)>,
}

impl Best {
    fn consider(&mut self, span: Range<usize>, path: &[Seg]) {
        let t = &self.target;
        // An empty target (a missing top-level key is reported at 0..0)
        // belongs to a span only if strictly inside it.
        let encloses = if t.is_empty() {
            span.start < t.start && t.start < span.end
        } else {
            span.start <= t.start && t.end <= span.end
        };
        if !encloses {
            return;
        }
        let len = span.end - span.start;
        // Smaller spans are more precise; on a tie the deeper path wins, as
        // an implicit table may share its span with its only key.
        let better = match &self.found {
            None => true,
            Some((best_len, best_path)) => {
                len < *best_len || (len == *best_len && path.len() > best_path.len())
            }
        };
        if better {
            self.found = Some((len, path.to_vec()));
        }
    }
}

fn walk_table(table: &DeTable<'_>, path: &mut Vec<Seg>, best: &mut Best) {
    for (k, v) in table.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        best.consider(k.span(), path);
        best.consider(v.span(), path);
        walk_value(v.get_ref(), path, best);
        path.pop();
    }
}

fn walk_value(value: &DeValue<'_>, path: &mut Vec<Seg>, best: &mut Best) {
    match value {
        DeValue::Table(t) => walk_table(t, path, best),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                best.consider(item.span(), path);
                walk_value(item.get_ref(), path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(i) => write!(f, "[{i}]")?,
                Seg::Key(k) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        // Unknown keys come from the file and may need quotes.
                        write!(f, "\"{}\"", k.escape_default())?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> DeTable<'_> {
        DeTable::parse(text).unwrap().into_inner()
    }

    fn text_at<'t>(text: &'t str, path: &str) -> &'t str {
        let span = KeyPath::parse(path).span_in(&doc(text)).unwrap();
        &text[span]
    }

    #[test]
    fn parse_and_display_round_trip() {
        for p in [
            "listen.http",
            "feed[2].name",
            "tor.fallback[0].orports[1]",
            "transport",
        ] {
            assert_eq!(KeyPath::parse(p).to_string(), p);
        }
        assert_eq!(KeyPath::default().join("a.b").to_string(), "\"a.b\"");
        assert!(KeyPath::parse("").is_root());
    }

    #[test]
    fn spans_point_at_values_and_tables() {
        let text = "top = 1\n[listen]\nhttp = \"x\"\n[[feed]]\nname = \"a\"\n[[feed]]\nname = \"b\"\nlist = [1,\n  2]\n";
        assert_eq!(text_at(text, "top"), "1");
        assert_eq!(text_at(text, "listen.http"), "\"x\"");
        assert_eq!(text_at(text, "feed[1].name"), "\"b\"");
        assert_eq!(text_at(text, "feed[1].list[1]"), "2");
        assert_eq!(text_at(text, "listen"), "listen");
        assert_eq!(KeyPath::parse("listen.https").span_in(&doc(text)), None);
        let near = KeyPath::parse("listen.https")
            .nearest_span_in(&doc(text))
            .unwrap();
        assert_eq!(&text[near], "listen");
        assert_eq!(KeyPath::parse("feed[5].name").span_in(&doc(text)), None);
    }

    #[test]
    fn enclosing_finds_the_innermost_key() {
        let text = "[a]\nb = { c = [1, 2] }\nd.e = 3\n";
        let table = doc(text);
        let at = |needle: &str| {
            let start = text.find(needle).unwrap();
            KeyPath::enclosing(&table, &(start..start + needle.len())).to_string()
        };
        assert_eq!(at("2"), "a.b.c[1]");
        assert_eq!(at("e"), "a.d.e");
        assert_eq!(at("3"), "a.d.e");
        assert_eq!(KeyPath::enclosing(&table, &(0..text.len())).to_string(), "");
        assert_eq!(KeyPath::enclosing(&table, &(0..0)).to_string(), "");
    }
}

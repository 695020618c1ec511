//! Where in the file a validation error is: the path of the value it is about (`pools`,
//! 1, `block_size`), looked up in the parser's own spans (toml_edit, the parser under
//! `toml`), so an entry of an `[[array]]` is found by its index, never by searching
//! the text for a name.

use std::ops::Range;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// One step of a path into the document: a key, or the n-th entry of an array (of
/// tables or of values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// A validation error and the path of the value it is about (empty: the file as a
/// whole).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub message: String,
    pub at: Vec<Seg>,
}

/// An error at `at`; a helper for validation code.
pub fn invalid<T>(at: &[Seg], message: String) -> Result<T, Invalid> {
    Err(Invalid {
        message,
        at: at.to_vec(),
    })
}

/// `at` and one more step.
pub fn then(at: &[Seg], seg: Seg) -> Vec<Seg> {
    let mut path = at.to_vec();
    path.push(seg);
    path
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

enum Node<'a> {
    Table(&'a dyn TableLike),
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn table(&self) -> Option<&'a dyn TableLike> {
        match *self {
            Node::Table(t) => Some(t),
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }
}

/// The span of the deepest part of `path` written in `text`: the key of a field, the
/// header of an `[[array]]` entry, an element of an array of values. A field left to
/// its default has no span of its own: its entry's is given. None when the text does
/// not parse or not even the first step is written.
pub fn span_of(text: &str, path: &[Seg]) -> Option<Range<usize>> {
    let doc = ImDocument::parse(text).ok()?;
    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for seg in path {
        match *seg {
            Seg::Key(k) => {
                let Some((key, item)) = node.table().and_then(|t| t.get_key_value(k)) else {
                    break;
                };
                best = key.span().or(best);
                node = Node::Item(item);
            }
            Seg::Index(i) => {
                let array = match node {
                    Node::Item(item) => {
                        if let Some(tables) = item.as_array_of_tables() {
                            let Some(t) = tables.get(i) else { break };
                            best = t.span().or(best);
                            node = Node::Table(t);
                            continue;
                        }
                        item.as_array()
                    }
                    Node::Value(v) => v.as_array(),
                    Node::Table(_) => None,
                };
                let Some(v) = array.and_then(|a| a.get(i)) else {
                    break;
                };
                best = v.span().or(best);
                node = Node::Value(v);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use Seg::{Index, Key};

    fn at(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
        span_of(text, path).map(|s| line_col(text, s.start))
    }

    #[test]
    fn paths_find_keys_entries_and_elements() {
        let text = "a = 1\n[[p]]\nx = 1\n[[p]]\n  y = [\"u\",\n       \"v\"]\n\
                    [t]\nq = { r = [1, 2] }\n[[t.s]]\nz = 0\n";
        assert_eq!(at(text, &[Key("a")]), Some((1, 1)));
        assert_eq!(at(text, &[Key("p"), Index(1), Key("y")]), Some((5, 3)));
        assert_eq!(
            at(text, &[Key("p"), Index(1), Key("y"), Index(1)]),
            Some((6, 8))
        );
        // Not written: the entry's header.
        assert_eq!(at(text, &[Key("p"), Index(1), Key("x")]), Some((4, 1)));
        assert_eq!(at(text, &[Key("p"), Index(0), Key("x")]), Some((3, 1)));
        assert_eq!(
            at(text, &[Key("t"), Key("q"), Key("r"), Index(1)]),
            Some((8, 15))
        );
        assert_eq!(
            at(text, &[Key("t"), Key("s"), Index(0), Key("z")]),
            Some((10, 1))
        );
        assert_eq!(at(text, &[Key("nothing")]), None);
        // Columns count characters, not bytes.
        let text = "x = \"é\"\ny = [\"é\", 2]\n";
        assert_eq!(at(text, &[Key("y"), Index(1)]), Some((2, 11)));
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
    }
}

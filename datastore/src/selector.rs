//! Calico's label selector syntax (IPPool nodeSelector, BGPPeer nodeSelector).
//!
//! ```text
//! expr    := and ( '||' and )*
//! and     := unary ( '&&' unary )*
//! unary   := '!' unary | '(' expr ')' | term
//! term    := 'all()' | 'has(' key ')'
//!          | key '==' str | key '!=' str
//!          | key 'in' set | key 'not' 'in' set
//!          | key 'contains' str | key 'starts' 'with' str | key 'ends' 'with' str
//! set     := '{' ( str ( ',' str )* )? '}'
//! str     := '…' | "…"          (no escapes, as Calico)
//! key     := [A-Za-z0-9_./-]+   (kubernetes.io/hostname, projectcalico.org/name)
//! ```
//!
//! An empty selector is `all()`, as Calico treats it. `!=` and `not in` match a label
//! that is absent; `==`, `in`, `contains`, `starts with` and `ends with` need it present.
//! `!` binds tighter than `&&`, which binds tighter than `||`.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed selector. `Display` prints a canonical text that parses back to an equal
/// selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    expr: Expr,
}

/// The parsed tree. `And` / `Or` hold at least two operands; a parenthesised group is
/// kept as its own operand (not flattened), so printing and parsing agree exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    All,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Why a selector does not parse: the position (a byte offset into the text) and what
/// was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectorError {}

/// Parentheses and `!` nested deeper than this are refused (no stack overflow).
const MAX_DEPTH: usize = 64;

impl Selector {
    /// Parse Calico's selector syntax.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let tokens = tokenize(text)?;
        if tokens.len() == 1 {
            // Only the end: Calico takes "" (or blanks) for all().
            return Ok(Selector::all());
        }
        let mut p = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let expr = p.or()?;
        let (pos, tok) = p.peek();
        if *tok != Tok::End {
            return Err(expected(pos, "&&, || or the end", tok));
        }
        Ok(Selector { expr })
    }

    /// Whether a resource with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.expr.eval(labels)
    }

    /// The selector matching everything.
    pub fn all() -> Selector {
        Selector { expr: Expr::All }
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector::all()
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

impl Expr {
    fn eval(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k).map(String::as_str);
        match self {
            Expr::All => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => get(k) == Some(v.as_str()),
            Expr::Ne(k, v) => get(k) != Some(v.as_str()),
            Expr::In(k, set) => get(k).is_some_and(|l| set.iter().any(|v| v == l)),
            Expr::NotIn(k, set) => !get(k).is_some_and(|l| set.iter().any(|v| v == l)),
            Expr::Contains(k, v) => get(k).is_some_and(|l| l.contains(v.as_str())),
            Expr::StartsWith(k, v) => get(k).is_some_and(|l| l.starts_with(v.as_str())),
            Expr::EndsWith(k, v) => get(k).is_some_and(|l| l.ends_with(v.as_str())),
            Expr::Not(e) => !e.eval(labels),
            Expr::And(v) => v.iter().all(|e| e.eval(labels)),
            Expr::Or(v) => v.iter().any(|e| e.eval(labels)),
        }
    }
}

/// A string literal, in single quotes unless it holds one.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = if self.0.contains('\'') { '"' } else { '\'' };
        write!(f, "{q}{}{q}", self.0)
    }
}

fn write_set(f: &mut fmt::Formatter<'_>, set: &[String]) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}", Quoted(v))?;
    }
    f.write_str("}")
}

/// Operands joined by `op`, those for which `paren` holds in parentheses.
fn write_joined(
    f: &mut fmt::Formatter<'_>,
    v: &[Expr],
    op: &str,
    paren: fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, e) in v.iter().enumerate() {
        if i > 0 {
            write!(f, " {op} ")?;
        }
        if paren(e) {
            write!(f, "({e})")?;
        } else {
            write!(f, "{e}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", Quoted(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", Quoted(v)),
            Expr::In(k, set) => {
                write!(f, "{k} in ")?;
                write_set(f, set)
            }
            Expr::NotIn(k, set) => {
                write!(f, "{k} not in ")?;
                write_set(f, set)
            }
            Expr::Contains(k, v) => write!(f, "{k} contains {}", Quoted(v)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", Quoted(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", Quoted(v)),
            Expr::Not(e) => match **e {
                Expr::And(_) | Expr::Or(_) => write!(f, "!({e})"),
                _ => write!(f, "!{e}"),
            },
            Expr::And(v) => write_joined(f, v, "&&", |e| matches!(e, Expr::And(_) | Expr::Or(_))),
            Expr::Or(v) => write_joined(f, v, "||", |e| matches!(e, Expr::Or(_))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    EqEq,
    NotEq,
    Bang,
    AndAnd,
    OrOr,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "{s:?}"),
            Tok::Str(s) => write!(f, "the string {}", Quoted(s)),
            Tok::EqEq => f.write_str("=="),
            Tok::NotEq => f.write_str("!="),
            Tok::Bang => f.write_str("!"),
            Tok::AndAnd => f.write_str("&&"),
            Tok::OrOr => f.write_str("||"),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::LBrace => f.write_str("{"),
            Tok::RBrace => f.write_str("}"),
            Tok::Comma => f.write_str(","),
            Tok::End => f.write_str("the end"),
        }
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

fn expected(pos: usize, what: &str, found: &Tok) -> SelectorError {
    SelectorError(format!(
        "selector: at position {pos}: expected {what}, found {found}"
    ))
}

/// The tokens with their byte offsets; the last is always `End`.
fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, SelectorError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        let mut two = |second: char, tok: Tok| {
            if chars.next_if(|&(_, n)| n == second).is_some() {
                Ok(tok)
            } else {
                Err(SelectorError(format!(
                    "selector: at position {pos}: expected {c}{second}, found {c} alone"
                )))
            }
        };
        let tok = match c {
            c if c.is_whitespace() => continue,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            ',' => Tok::Comma,
            '=' => two('=', Tok::EqEq)?,
            '&' => two('&', Tok::AndAnd)?,
            '|' => two('|', Tok::OrOr)?,
            '!' => {
                if chars.next_if(|&(_, n)| n == '=').is_some() {
                    Tok::NotEq
                } else {
                    Tok::Bang
                }
            }
            '\'' | '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, q)) if q == c => break,
                        Some((_, x)) => s.push(x),
                        None => {
                            return Err(SelectorError(format!(
                                "selector: at position {pos}: expected a closing {c} for the string started there, found the end"
                            )))
                        }
                    }
                }
                Tok::Str(s)
            }
            c if is_key_char(c) => {
                let mut s = String::from(c);
                while let Some((_, x)) = chars.next_if(|&(_, x)| is_key_char(x)) {
                    s.push(x);
                }
                Tok::Ident(s)
            }
            other => {
                return Err(SelectorError(format!(
                    "selector: at position {pos}: expected a label, a string or an operator, found {other:?}"
                )))
            }
        };
        out.push((pos, tok));
    }
    out.push((text.len(), Tok::End));
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> (usize, &Tok) {
        let (pos, tok) = &self.tokens[self.at.min(self.tokens.len() - 1)];
        (*pos, tok)
    }

    fn next(&mut self) -> (usize, Tok) {
        let (pos, tok) = self.peek();
        let tok = tok.clone();
        if tok != Tok::End {
            self.at += 1;
        }
        (pos, tok)
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek().1 == tok {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), SelectorError> {
        let (pos, found) = self.next();
        if found == tok {
            Ok(())
        } else {
            Err(expected(pos, what, &found))
        }
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut v = vec![self.and()?];
        while self.eat(&Tok::OrOr) {
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut v = vec![self.unary()?];
        while self.eat(&Tok::AndAnd) {
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let (pos, _) = self.peek();
            return Err(SelectorError(format!(
                "selector: at position {pos}: expected at most {MAX_DEPTH} nested ! and parentheses"
            )));
        }
        let e = match self.peek().1 {
            Tok::Bang => {
                self.at += 1;
                self.unary().map(|e| Expr::Not(Box::new(e)))
            }
            Tok::LParen => {
                self.at += 1;
                self.or().and_then(|e| {
                    self.expect(Tok::RParen, ") or an operator")?;
                    Ok(e)
                })
            }
            _ => self.term(),
        };
        self.depth -= 1;
        e
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            (_, Tok::Str(s)) => Ok(s),
            (pos, t) => Err(expected(pos, "a quoted string", &t)),
        }
    }

    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.expect(Tok::LBrace, "{ opening a set of strings")?;
        let mut v = Vec::new();
        if self.eat(&Tok::RBrace) {
            return Ok(v);
        }
        loop {
            v.push(self.string()?);
            match self.next() {
                (_, Tok::Comma) => {}
                (_, Tok::RBrace) => return Ok(v),
                (pos, t) => return Err(expected(pos, ", or }", &t)),
            }
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), SelectorError> {
        match self.next() {
            (_, Tok::Ident(w)) if w == word => Ok(()),
            (pos, t) => Err(expected(pos, word, &t)),
        }
    }

    fn term(&mut self) -> Result<Expr, SelectorError> {
        let (pos, tok) = self.next();
        let Tok::Ident(key) = tok else {
            return Err(expected(pos, "a label, all(), has(), ! or (", &tok));
        };
        let call = self.peek().1 == &Tok::LParen;
        if call && key == "all" {
            self.at += 1;
            self.expect(Tok::RParen, ") closing all(")?;
            return Ok(Expr::All);
        }
        if call && key == "has" {
            self.at += 1;
            let label = match self.next() {
                (_, Tok::Ident(k)) => k,
                (pos, t) => return Err(expected(pos, "a label inside has()", &t)),
            };
            self.expect(Tok::RParen, ") closing has(")?;
            return Ok(Expr::Has(label));
        }
        let (pos, op) = self.next();
        Ok(match op {
            Tok::EqEq => Expr::Eq(key, self.string()?),
            Tok::NotEq => Expr::Ne(key, self.string()?),
            Tok::Ident(w) => match w.as_str() {
                "in" => Expr::In(key, self.set()?),
                "not" => {
                    self.keyword("in")?;
                    Expr::NotIn(key, self.set()?)
                }
                "contains" => Expr::Contains(key, self.string()?),
                "starts" => {
                    self.keyword("with")?;
                    Expr::StartsWith(key, self.string()?)
                }
                "ends" => {
                    self.keyword("with")?;
                    Expr::EndsWith(key, self.string()?)
                }
                _ => return Err(expected(pos, OPERATORS, &Tok::Ident(w))),
            },
            t => return Err(expected(pos, OPERATORS, &t)),
        })
    }
}

const OPERATORS: &str =
    "an operator after the label (==, !=, in, not in, contains, starts with, ends with)";

#[cfg(test)]
mod tests;

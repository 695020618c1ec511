#!/usr/bin/env python3
"""Check the source tree's structure: no import circles, no oversized files.

What it checks
  1. No circle among the file modules of each crate's src/ (vrouter, control, encap,
     fib). An edge A -> B is A's non-test code naming `crate::B::...`, `super::...`,
     `self::...` or a child module by its bare name (in `use` trees, grouped or not, and
     in paths inside code) resolving to B. Strongly connected components (Tarjan) with
     more than one module are reported with the edges that form them.
  2. No file under vrouter/src or control/src is longer than --max-lines (800) lines,
     not counting test code: `#[cfg(test)]` items such as a trailing `mod tests { ... }`
     (with the comment lines directly above them), files declared `#[cfg(test)] mod x;`
     and files named tests.rs.

Why
  An issue asks that a new maintainer can tell which room a change belongs in. Modules
  that import each other in a circle, and 1,900-line files, hide that: there is no
  order in which to read them and no single place a change obviously goes.

Rules of the module graph
  - A module is a file module: src/foo.rs and src/foo/mod.rs are `foo`, src/io/afxdp.rs
    is `io::afxdp`, src/lib.rs is the crate root (shown as `crate`). Inline modules
    (`mod pb { ... }`) belong to their file's module. src/bin/* are separate crates and
    are left out of the graph (their size is still checked).
  - `pub mod afxdp;` in io/mod.rs is not an edge; neither is a `pub use` of the module's
    own descendants (a facade re-export). Names reached through such a re-export lead to
    the module that defines them: `crate::V4` with `pub use family::V4` in lib.rs is an
    edge to `family`, not to the crate root.
  - A child naming its parent (`super::Io` in io/afxdp.rs) is an edge io::afxdp -> io,
    and a parent using a child's item (`afxdp::PortSpec` in io/mod.rs) is io -> io::afxdp.
  - Code inside `#[cfg(test)]` items and test files is ignored.

Usage
  scripts/check-structure.py [--max-lines N] [--root DIR] [--verbose]
  scripts/check-structure.py --self-test
Exit status: 0 clean, 1 a circle or an oversized file was found (or the self-test
failed), 2 bad usage.

Python 3 standard library only.
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

DEFAULT_MAX_LINES = 800
GRAPH_CRATES = ["vrouter", "control", "encap", "fib", "datastore", "cni"]
SIZE_CRATES = ["vrouter", "control", "datastore", "cni"]

# --------------------------------------------------------------------------------------
# Lexer: Rust source to tokens (identifiers, `::`, single-character punctuation,
# literals), with comments dropped and string / char contents hidden, so that
# `crate::x` inside a comment or a string is never taken for a path.
# --------------------------------------------------------------------------------------


class Tok:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind, text, line):
        self.kind = kind  # "id", "p" (punctuation), "lit", "life"
        self.text = text
        self.line = line

    def __repr__(self):
        return f"{self.text}@{self.line}"


_RAW_STR = re.compile(r'(?:b|c)?r(#*)"')
_IDENT = re.compile(r"[A-Za-z_\u00c0-\uffff][\w\u00c0-\uffff]*")
_NUMBER = re.compile(r"[0-9][\w]*(?:\.[0-9][\w]*)?")


def tokenize(src):
    toks = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c in " \t\r\f\v":
            i += 1
            continue
        nxt = src[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        line += 1
                    i += 1
            continue
        if c in "bcr":
            m = _RAW_STR.match(src, i)
            if m:
                close = '"' + m.group(1)
                j = src.find(close, m.end())
                j = n if j < 0 else j + len(close)
                toks.append(Tok("lit", '""', line))
                line += src.count("\n", i, j)
                i = j
                continue
            if c == "r" and nxt == "#" and i + 2 < n and _IDENT.match(src, i + 2):
                m = _IDENT.match(src, i + 2)
                toks.append(Tok("id", m.group(0), line))
                i = m.end()
                continue
            if c in "bc" and nxt == '"':
                i += 1
                c = '"'
            elif c == "b" and nxt == "'":
                i += 1
                c = "'"
        if c == '"':
            j, start_line = i + 1, line
            while j < n and src[j] != '"':
                if src[j] == "\\":
                    j += 1
                if j < n and src[j] == "\n":
                    line += 1
                j += 1
            toks.append(Tok("lit", '""', start_line))
            i = j + 1
            continue
        if c == "'":
            if nxt == "\\":
                j = src.find("'", i + 3)
                j = n if j < 0 else j + 1
                toks.append(Tok("lit", "''", line))
                i = j
                continue
            if i + 2 < n and src[i + 2] == "'" and nxt != "\n":
                toks.append(Tok("lit", "''", line))
                i += 3
                continue
            m = _IDENT.match(src, i + 1)
            if m:
                toks.append(Tok("life", "'" + m.group(0), line))
                i = m.end()
            else:
                toks.append(Tok("p", "'", line))
                i += 1
            continue
        m = _IDENT.match(src, i)
        if m:
            toks.append(Tok("id", m.group(0), line))
            i = m.end()
            continue
        m = _NUMBER.match(src, i)
        if m:
            toks.append(Tok("lit", m.group(0), line))
            i = m.end()
            continue
        if c == ":" and nxt == ":":
            toks.append(Tok("p", "::", line))
            i += 2
            continue
        toks.append(Tok("p", c, line))
        i += 1
    return toks


# --------------------------------------------------------------------------------------
# Test code: `#[cfg(test)]` items.
# --------------------------------------------------------------------------------------

OPEN, CLOSE = "([{", ")]}"


def _match(toks, i):
    """Index of the bracket closing the one at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        t = toks[j].text
        if toks[j].kind != "p":
            continue
        if t in OPEN:
            depth += 1
        elif t in CLOSE:
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def _split_args(toks):
    args, cur, depth = [], [], 0
    for t in toks:
        if t.kind == "p" and t.text in OPEN:
            depth += 1
        elif t.kind == "p" and t.text in CLOSE:
            depth -= 1
        if depth == 0 and t.kind == "p" and t.text == ",":
            args.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        args.append(cur)
    return args


def _test_only(pred):
    """A cfg predicate that holds only under `test`: `test` or `all(.., test, ..)`."""
    if len(pred) == 1 and pred[0].text == "test":
        return True
    if len(pred) >= 3 and pred[0].text == "all" and pred[1].text == "(":
        return any(_test_only(a) for a in _split_args(pred[2:-1]))
    return False


def _attr_at(toks, i):
    """If toks[i] starts an attribute, return (end index, inner?, cfg(test)?)."""
    if toks[i].text != "#" or toks[i].kind != "p":
        return None
    j = i + 1
    inner = j < len(toks) and toks[j].text == "!"
    if inner:
        j += 1
    if j >= len(toks) or toks[j].text != "[":
        return None
    end = _match(toks, j)
    body = toks[j + 1 : end]
    is_test = (
        len(body) >= 3 and body[0].text == "cfg" and body[1].text == "(" and _test_only(body[2:-1])
    )
    return end, inner, is_test


ITEM_SEMI_ONLY = {"use", "static", "let", "type"}


def _item_end(toks, j):
    """End index of the item / field / statement starting at toks[j]."""
    k = j
    while k < len(toks) and toks[k].text in ("pub", "unsafe", "async", "default"):
        k += 1
        if k < len(toks) and toks[k].text == "(" and toks[k - 1].text == "pub":
            k = _match(toks, k) + 1
    kw = toks[k].text if k < len(toks) else ""
    nxt = [t.text for t in toks[k + 1 : k + 3]]
    semi_only = kw in ITEM_SEMI_ONLY or (kw == "const" and "fn" not in nxt)
    item_kw = kw in {
        "fn", "struct", "enum", "union", "trait", "impl", "mod", "type", "const", "static",
        "use", "extern", "macro_rules",
    }
    depth = 0
    for idx in range(j, len(toks)):
        t = toks[idx]
        if t.kind != "p":
            continue
        if t.text in OPEN:
            depth += 1
        elif t.text in CLOSE:
            depth -= 1
            if depth < 0:
                return idx - 1
            if depth == 0 and t.text == "}" and not semi_only:
                if idx + 1 < len(toks) and toks[idx + 1].text == ";":
                    return idx + 1
                return idx
        elif depth == 0 and t.text == ";":
            return idx
        elif depth == 0 and t.text == "," and not item_kw:
            return idx
    return len(toks) - 1


def find_test_code(toks):
    """(whole file is test?, [(first token, last token)] of test items, {test child mods})."""
    spans, test_mods = [], set()
    i = 0
    while i < len(toks):
        a = _attr_at(toks, i)
        if not a:
            i += 1
            continue
        end, inner, is_test = a
        if is_test and inner:
            return True, [(0, len(toks) - 1)], test_mods
        if not is_test:
            i = end + 1
            continue
        j = end + 1
        while j < len(toks):  # further attributes on the same item
            b = _attr_at(toks, j)
            if not b:
                break
            j = b[0] + 1
        if j >= len(toks):
            break
        k = j
        while k < len(toks) and toks[k].text == "pub":
            k += 1
            if k < len(toks) and toks[k].text == "(":
                k = _match(toks, k) + 1
        if k + 2 < len(toks) and toks[k].text == "mod" and toks[k + 2].text == ";":
            test_mods.add(toks[k + 1].text)
        last = _item_end(toks, j)
        spans.append((i, last))
        i = last + 1
    return False, spans, test_mods


# --------------------------------------------------------------------------------------
# Paths named by a file: `use` trees and paths in code.
# --------------------------------------------------------------------------------------


class Ref:
    """One path a file names: segments as written, where, and how."""

    __slots__ = ("segs", "line", "inline", "kind", "alias", "glob", "public", "top")

    def __init__(self, segs, line, inline, kind, alias=None, glob=False, public=False):
        self.segs = segs
        self.line = line
        self.inline = inline  # inline module stack at the reference
        self.kind = kind  # "use" or "path"
        self.alias = alias  # name a `use` binds
        self.glob = glob
        self.public = public  # `pub use` (any visibility)
        self.top = not inline


def _parse_use_tree(toks, i, prefix, out):
    """Parse a use tree at toks[i]; append (segs, line, alias, glob) leaves to out."""
    segs = list(prefix)
    if i < len(toks) and toks[i].text == "::":
        i += 1
    while i < len(toks):
        t = toks[i]
        if t.text == "{":
            i += 1
            while i < len(toks) and toks[i].text != "}":
                i = _parse_use_tree(toks, i, segs, out)
                if i < len(toks) and toks[i].text == ",":
                    i += 1
                elif i < len(toks) and toks[i].text != "}":
                    i += 1  # something unexpected; move on
            return i + 1
        if t.text == "*":
            out.append((segs, t.line, None, True))
            return i + 1
        if t.kind == "id":
            segs = segs + [t.text]
            line = t.line
            i += 1
            if i < len(toks) and toks[i].text == "::":
                i += 1
                continue
            alias = segs[-1]
            if i + 1 < len(toks) and toks[i].text == "as":
                alias = toks[i + 1].text
                i += 2
            if segs[-1] == "self":
                segs = segs[:-1]
                if alias == "self":
                    alias = segs[-1] if segs else None
            out.append((segs, line, alias, False))
            return i
        return i
    return i


def collect_refs(toks, is_test_tok):
    refs = []
    inline = []  # [(name, depth at its `{`)]
    depth = 0
    i, n = 0, len(toks)
    while i < n:
        if is_test_tok[i]:
            i += 1
            continue
        t = toks[i]
        if t.kind == "p":
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1
                if inline and inline[-1][1] == depth + 1:
                    inline.pop()
            i += 1
            continue
        if t.kind != "id":
            i += 1
            continue
        if t.text == "mod" and i + 2 < n and toks[i + 1].kind == "id" and toks[i + 2].text == "{":
            inline.append((toks[i + 1].text, depth + 1))
            depth += 1
            i += 3
            continue
        if t.text == "use":
            public = False
            k = i - 1
            if k >= 0 and toks[k].text == ")":
                d = 0
                while k >= 0:
                    if toks[k].text == ")":
                        d += 1
                    elif toks[k].text == "(":
                        d -= 1
                        if d == 0:
                            break
                    k -= 1
                k -= 1
            if k >= 0 and toks[k].text == "pub":
                public = True
            leaves = []
            j = _parse_use_tree(toks, i + 1, [], leaves)
            names = [x[0] for x in inline]
            for segs, line, alias, glob in leaves:
                if segs:
                    refs.append(Ref(segs, line, names, "use", alias, glob, public))
            while j < n and toks[j].text != ";":
                j += 1
            i = j + 1
            continue
        # A path in code: ident (:: ident)*, starting here.
        prev = toks[i - 1] if i > 0 else None
        if i + 1 < n and toks[i + 1].text == "::" and not (
            prev is not None and prev.text in ("::", ".")
        ):
            segs, line, j = [t.text], t.line, i + 1
            while j + 1 < n and toks[j].text == "::" and toks[j + 1].kind == "id":
                segs.append(toks[j + 1].text)
                j += 2
            if prev is not None and prev.text == "$" and segs[0] == "crate":
                segs[0] = "crate"
            refs.append(Ref(segs, line, [x[0] for x in inline], "path"))
            i = j
            continue
        i += 1
    return refs


_DEF_KWS = {"fn", "struct", "enum", "union", "trait", "type", "const", "static", "mod"}


def defined_names(toks, is_test_tok):
    """Names of items defined at the top level of a file (outside test code)."""
    names, depth = set(), 0
    for i, t in enumerate(toks):
        if is_test_tok[i]:
            continue
        if t.kind == "p":
            if t.text in "{([":
                depth += 1
            elif t.text in "})]":
                depth -= 1
            continue
        if depth == 0 and t.kind == "id" and i + 1 < len(toks):
            nx = toks[i + 1]
            if t.text in _DEF_KWS and nx.kind == "id" and nx.text != "fn":
                names.add(nx.text)
            elif t.text == "macro_rules" and i + 2 < len(toks):
                names.add(toks[i + 2].text)
    return names


# --------------------------------------------------------------------------------------
# One crate: files, modules, edges.
# --------------------------------------------------------------------------------------


class FileInfo:
    def __init__(self, path, rel, mod):
        self.path = path
        self.rel = rel  # path shown in reports
        self.mod = mod  # tuple of segments; () is the crate root; None for src/bin/*
        self.src = path.read_text(encoding="utf-8", errors="replace")
        self.lines = self.src.splitlines()
        self.toks = tokenize(self.src)
        whole, spans, self.test_mods = find_test_code(self.toks)
        self.is_test_file = whole or path.name == "tests.rs"
        self.is_test_tok = [whole] * len(self.toks)
        self.test_lines = set()
        for a, b in spans:
            for k in range(a, b + 1):
                self.is_test_tok[k] = True
            first, last = self.toks[a].line, self.toks[b].line
            while first > 1 and self.lines[first - 2].strip().startswith("//"):
                first -= 1  # the comments that introduce the test code
            self.test_lines.update(range(first, last + 1))
        # Blank lines between test items, or after the last one, are test code too.
        above = False
        for n in range(1, len(self.lines) + 1):
            if self.lines[n - 1].strip():
                above = n in self.test_lines
                continue
            if above:
                k = n + 1
                while k <= len(self.lines) and not self.lines[k - 1].strip():
                    k += 1
                if k > len(self.lines) or k in self.test_lines:
                    self.test_lines.add(n)

    def code_lines(self):
        if self.is_test_file:
            return 0
        return sum(1 for n in range(1, len(self.lines) + 1) if n not in self.test_lines)


def module_of(src_dir, path):
    rel = path.relative_to(src_dir).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "bin" or parts == ["main"] and (src_dir / "lib.rs").exists():
        return None
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def show(mod):
    return "::".join(mod) if mod else "crate"


class Crate:
    def __init__(self, name, src_dir, shown_root):
        self.name = name
        self.src_dir = src_dir
        self.files = []
        for p in sorted(src_dir.rglob("*.rs")):
            rel = os.path.relpath(p, shown_root)
            self.files.append(FileInfo(p, rel, module_of(src_dir, p)))
        # Modules declared `#[cfg(test)] mod x;` are test code, with all below them.
        test_roots = set()
        for f in self.files:
            if f.mod is not None:
                test_roots.update(f.mod + (m,) for m in f.test_mods)
        for f in self.files:
            if f.mod is not None and any(f.mod[: len(r)] == r for r in test_roots):
                f.is_test_file = True
        self.mods = {f.mod: f for f in self.files if f.mod is not None and not f.is_test_file}

    # ---- name resolution ----

    def _absolute(self, ref, fmod, aliases):
        """Absolute path of a reference, or None if it names nothing in this crate."""
        here = list(fmod) + list(ref.inline)
        segs = ref.segs
        first = segs[0]
        if first == "crate":
            return segs[1:]
        if first == "self":
            return here + segs[1:]
        if first == "super":
            base, k = here, 0
            while k < len(segs) and segs[k] == "super":
                if not base:
                    return None
                base, k = base[:-1], k + 1
            return base + segs[k:]
        if not ref.inline and (tuple(fmod) + (first,)) in self.mods:
            return list(fmod) + segs
        if first in aliases:
            return list(aliases[first]) + segs[1:]
        return None

    def _target(self, abs_path, depth=0):
        """The file module that defines what abs_path names, following re-exports."""
        k = len(abs_path)
        while k > 0 and tuple(abs_path[:k]) not in self.mods:
            k -= 1
        mod = tuple(abs_path[:k])
        rest = abs_path[k:]
        if not rest or depth > 16:
            return mod
        name = rest[0]
        if name in self.defs[mod]:
            return mod
        if name in self.reexports[mod]:
            return self._target(list(self.reexports[mod][name]) + rest[1:], depth + 1)
        for g in self.globs[mod]:  # `pub use child::*`
            if g in self.mods and (
                name in self.defs[g] or name in self.reexports[g] or g + (name,) in self.mods
            ):
                return self._target(list(g) + rest, depth + 1)
        return mod

    def graph(self):
        """{module: {module: [(file, line, kind, text)]}} over non-test file modules."""
        self.defs = {m: defined_names(f.toks, f.is_test_tok) for m, f in self.mods.items()}
        refs = {m: collect_refs(f.toks, f.is_test_tok) for m, f in self.mods.items()}
        # Aliases (`use crate::io;` makes `io::x` a path) and re-exports, per module.
        self.aliases, self.reexports, self.globs = {}, {}, {}
        for m, rs in refs.items():
            al, rx, gl = {}, {}, []
            for r in rs:
                if r.kind != "use":
                    continue
                a = self._absolute(r, m, {})
                if a is None:
                    continue
                if r.glob:
                    if r.public and r.top:
                        gl.append(tuple(a))
                    continue
                if tuple(a) in self.mods and r.alias:
                    al[r.alias] = tuple(a)
                if r.public and r.top and r.alias:
                    rx[r.alias] = tuple(a)
            self.aliases[m], self.reexports[m], self.globs[m] = al, rx, gl
        g = {m: {} for m in self.mods}
        for m, rs in refs.items():
            f = self.mods[m]
            for r in rs:
                a = self._absolute(r, m, self.aliases[m])
                if a is None:
                    continue
                t = self._target(a)
                if t == m or t not in g:
                    continue
                if r.kind == "use" and r.public and r.top and t[: len(m)] == m:
                    continue  # facade: `pub use child::X` is not a dependency
                text = f.lines[r.line - 1].strip() if r.line <= len(f.lines) else ""
                g[m].setdefault(t, []).append((f.rel, r.line, r.kind, text))
        return g


# --------------------------------------------------------------------------------------
# Graph algorithms.
# --------------------------------------------------------------------------------------


def tarjan(nodes, succ):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(max(1000, 10 * len(nodes) + 100))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def _shortest(succ, members, src, dst):
    prev, frontier = {src: None}, [src]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(succ.get(v, ())):
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
        if dst in prev:
            break
    if dst not in prev:
        return None
    path, v = [], dst
    while v is not None:
        path.append(v)
        v = prev[v]
    return path[::-1]


def cycles_of(comp, succ):
    """The shortest circle through each edge of a component, without repeats."""
    members, seen, out = set(comp), set(), []
    for u in comp:
        for v in sorted(succ.get(u, ())):
            if v not in members:
                continue
            back = _shortest(succ, members, v, u)
            if back is None:
                continue
            cyc = [u] + back[:-1]
            r = cyc.index(min(cyc))
            key = tuple(cyc[r:] + cyc[:r])
            if key not in seen:
                seen.add(key)
                out.append(list(key))
    out.sort(key=lambda c: (len(c), [show(x) for x in c]))
    return out


# --------------------------------------------------------------------------------------
# The check.
# --------------------------------------------------------------------------------------


def check(root, graph_crates, size_crates, max_lines):
    """Returns (circles, oversized, sizes): circles as [(crate, comp, cycles, edges)]."""
    root = Path(root)
    circles, crates = [], {}
    for name in graph_crates:
        src = root / name / "src"
        if not src.is_dir():
            raise SystemExit(f"check-structure: no such directory {src}")
        crates[name] = c = Crate(name, src, root)
        g = c.graph()
        succ = {m: set(ts) for m, ts in g.items()}
        for comp in tarjan(list(g), succ):
            if len(comp) < 2:
                continue
            edges = []
            for u in comp:
                for v in sorted(succ[u]):
                    if v in comp:
                        sites = g[u][v]
                        uses = [s for s in sites if s[2] == "use"]
                        edges.append((u, v, (uses or sites)[0], len(sites)))
            circles.append((name, comp, cycles_of(comp, succ), edges))
    oversized, sizes = [], []
    for name in size_crates:
        c = crates.get(name)
        if c is None:
            src = root / name / "src"
            if not src.is_dir():
                raise SystemExit(f"check-structure: no such directory {src}")
            c = Crate(name, src, root)
        for f in c.files:
            n = f.code_lines()
            sizes.append((f.rel, n, len(f.lines), f.is_test_file))
            if not f.is_test_file and n > max_lines:
                oversized.append((f.rel, n, len(f.lines)))
    oversized.sort(key=lambda x: -x[1])
    return circles, oversized, sizes


def report(circles, oversized, sizes, max_lines, verbose, out=sys.stdout):
    w = out.write
    w("== Import circles among file modules ==\n")
    if not circles:
        w("none\n")
    for k, (crate, comp, cycles, edges) in enumerate(circles, 1):
        w(f"\n[{crate}] circle {k}: {len(comp)} modules: {', '.join(show(m) for m in comp)}\n")
        w("  circles (shortest through each edge):\n")
        limit = 20
        for cyc in cycles[:limit]:
            w("    " + " -> ".join(show(m) for m in cyc + [cyc[0]]) + "\n")
        if len(cycles) > limit:
            w(f"    ... and {len(cycles) - limit} more\n")
        w("  edges inside the circle (one place that makes each; n = places in all):\n")
        width = max(len(f"{show(u)} -> {show(v)}") for u, v, _, _ in edges)
        for u, v, (rel, line, _kind, text), count in edges:
            e = f"{show(u)} -> {show(v)}"
            if len(text) > 80:
                text = text[:77] + "..."
            w(f"    {e:<{width}}  {rel}:{line}  (n={count})  {text}\n")
    w(f"\n== Files over {max_lines} lines, not counting test code ==\n")
    if not oversized:
        w("none\n")
    for rel, n, total in oversized:
        w(f"  {rel}: {n} lines ({total} with tests)\n")
    if verbose:
        w("\n== All files checked for size ==\n")
        for rel, n, total, is_test in sorted(sizes):
            what = "test file" if is_test else f"{n} lines ({total} with tests)"
            w(f"  {rel}: {what}\n")
    bad = bool(circles or oversized)
    w(
        f"\n{'FAIL' if bad else 'OK'}: {len(circles)} circle(s), "
        f"{len(oversized)} file(s) over {max_lines} lines\n"
    )
    return bad


# --------------------------------------------------------------------------------------
# Self-test.
# --------------------------------------------------------------------------------------

_SELF_TEST_TREES = {
    # A circle a -> b -> c -> a through a plain use, a grouped use and an inline path;
    # io/afxdp naming super::Io is an edge but io only declares it (no circle); x and y
    # name each other only from test code; strings and comments name crate::a.
    "circle/src/lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod io;\npub mod x;\npub mod y;\n",
    "circle/src/a.rs": "use crate::b::B;\npub struct A;\n",
    "circle/src/b.rs": "use crate::{c::C, io::Io};\npub struct B;\n",
    "circle/src/c.rs": "pub struct C;\npub fn f() {\n    let _ = crate::a::A;\n}\n",
    "circle/src/io/mod.rs": "pub mod afxdp;\npub trait Io {}\n",
    "circle/src/io/afxdp.rs": "use super::Io;\n/* crate::c::C */\n"
    "const S: &str = \"crate::c::C\";\nfn g<'a>(x: &'a u8) -> char { 'c' }\n",
    "circle/src/x.rs": "use crate::y::Y;\npub struct X;\n",
    "circle/src/y.rs": "pub struct Y;\n#[cfg(test)]\nmod tests {\n    use crate::x::X;\n}\n",
    # A clean tree: a facade re-export in lib.rs and a child naming the root's type and
    # a re-exported name; io's parent-child pair; a file over the limit only with tests;
    # a test file declared `#[cfg(test)] mod tests;` that is long and names its parent.
    "clean/src/lib.rs": "mod table;\npub mod family;\npub mod pipe;\n"
    "pub use family::V4;\npub use table::Fib;\npub struct NextHopId(pub u32);\n",
    "clean/src/family.rs": "pub struct V4;\n",
    "clean/src/table.rs": "use crate::NextHopId;\npub type Fib = (crate::V4, NextHopId);\n",
    "clean/src/pipe.rs": "pub fn p() {}\n"
    + "// filler\n" * 7
    + "\n// the tests\n#[cfg(test)]\nmod tests;\n",
    "clean/src/pipe/tests.rs": "use super::*;\nuse crate::table::Fib;\n" + "// t\n" * 30,
    # Over the limit (10) without tests: 12 lines.
    "big/src/lib.rs": "pub mod long;\npub mod short;\n",
    "big/src/long.rs": "pub fn l() {}\n" * 12,
    "big/src/short.rs": "pub fn s() {}\n" * 5
    + "\n/// the tests\n#[cfg(test)]\nmod tests {\n"
    + "    #[test]\n    fn t() {}\n" * 10
    + "}\n\n#[cfg(test)]\nmod more_tests {\n    use crate::long::l;\n}\n\n",
}


def self_test():
    failures = []

    def expect(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    with tempfile.TemporaryDirectory() as d:
        for rel, text in _SELF_TEST_TREES.items():
            p = Path(d) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

        circles, oversized, _ = check(d, ["circle"], [], 10)
        expect("circle: components", [c[1] for c in circles], [[("a",), ("b",), ("c",)]])
        if circles:
            expect("circle: cycles", circles[0][2], [[("a",), ("b",), ("c",)]])
            lines = {(u, v): (site[0], site[1]) for u, v, site, _ in circles[0][3]}
            expect(
                "circle: edge sites",
                lines,
                {
                    (("a",), ("b",)): ("circle/src/a.rs", 1),
                    (("b",), ("c",)): ("circle/src/b.rs", 1),
                    (("c",), ("a",)): ("circle/src/c.rs", 3),
                },
            )
        g = Crate("circle", Path(d) / "circle" / "src", Path(d)).graph()
        expect("circle: io::afxdp -> io", ("io",) in g[("io", "afxdp")], True)
        expect("circle: io declares afxdp, no edge", g[("io",)], {})
        expect("circle: comment/string ignored", sorted(g[("io", "afxdp")]), [("io",)])
        expect("circle: test code ignored", g[("y",)], {})

        circles, oversized, sizes = check(d, ["clean", "big"], ["clean", "big"], 10)
        expect("clean: no circles", circles, [])
        expect("clean+big: oversized", [(r, n) for r, n, _ in oversized], [("big/src/long.rs", 12)])
        sz = {r: (n, t) for r, n, _, t in sizes}
        expect("short.rs counted without tests", sz.get("big/src/short.rs"), (6, False))
        expect("pipe/tests.rs is a test file", sz.get("clean/src/pipe/tests.rs"), (0, True))
        expect("pipe.rs without its mod tests;", sz.get("clean/src/pipe.rs"), (9, False))
        g = Crate("clean", Path(d) / "clean" / "src", Path(d)).graph()
        expect("clean: table -> root and family", sorted(g[("table",)]), [(), ("family",)])
        expect("clean: facade re-exports are no edges", g[()], {})

    if failures:
        print("self-test FAILED:")
        for f in failures:
            print("  " + f)
        return 1
    print("self-test passed")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Check for import circles among modules and files over a line limit."
    )
    ap.add_argument(
        "--max-lines",
        type=int,
        default=DEFAULT_MAX_LINES,
        metavar="N",
        help=f"largest allowed file, not counting test code (default {DEFAULT_MAX_LINES})",
    )
    ap.add_argument(
        "--root",
        default=str(Path(__file__).resolve().parent.parent),
        help="workspace root (default: the directory above scripts/)",
    )
    ap.add_argument("--verbose", action="store_true", help="also list every file's size")
    ap.add_argument("--self-test", action="store_true", help="run the checker's own tests")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    circles, oversized, sizes = check(args.root, GRAPH_CRATES, SIZE_CRATES, args.max_lines)
    return 1 if report(circles, oversized, sizes, args.max_lines, args.verbose) else 0


if __name__ == "__main__":
    sys.exit(main())

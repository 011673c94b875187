"""Deterministic generators of real-looking text, for tests and the sample corpus.

Nothing is downloaded. The raw material is text every Python installation carries:

* docstrings of a fixed, sorted list of standard-library modules, read with :mod:`ast` from
  the installed source files (modules are never imported, so there are no side effects);
* README texts (the description body of ``*.dist-info/METADATA``) and license files
  (``LICENSE*``, ``COPYING*``, ``NOTICE*`` under ``*.dist-info``) of the environment's
  ``site-packages``, visited in sorted path order.

Every public function takes ``n`` (number of documents) and ``seed``; the same installed
files and the same seed give the same output. Randomness comes only from
``numpy.random.default_rng(seed)``.

Clean generators: :func:`prose_paragraphs`, :func:`domain_texts` / :func:`domain_records`
(domains in :data:`DOMAINS`). Low-quality generators: :func:`boilerplate`, :func:`spam`,
:func:`shuffled`. Mutations for near-duplicates: :func:`near_duplicate`,
:func:`wrap_with_boilerplate`.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import sysconfig
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DOMAINS: tuple[str, ...] = ("code_docs", "legal", "prose", "readme")
"""Domains understood by :func:`domain_texts`."""

NEAR_DUP_KINDS: tuple[str, ...] = ("edit", "rewrap", "boilerplate")
"""Mutation kinds understood by :func:`near_duplicate`."""

# Fixed list of well-documented pure-Python stdlib modules/packages. Missing ones (removed in
# newer Pythons, or trimmed distributions) are skipped.
_STDLIB_MODULES: tuple[str, ...] = tuple(
    sorted(
        {
            "_pydecimal", "_pyio", "argparse", "ast", "asyncio", "base64", "bdb", "bisect",
            "calendar", "cmd", "code", "codecs", "collections", "colorsys", "concurrent",
            "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "difflib",
            "doctest", "email", "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib",
            "functools", "getopt", "gettext", "glob", "graphlib", "gzip", "heapq", "hmac", "html",
            "http", "imaplib", "importlib", "inspect", "ipaddress", "json", "locale", "logging",
            "lzma", "mailbox", "mimetypes", "multiprocessing", "netrc", "numbers", "operator",
            "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil", "platform",
            "plistlib", "poplib", "posixpath", "pprint", "pydoc", "queue", "quopri", "random",
            "re", "reprlib", "runpy", "sched", "secrets", "selectors", "shelve", "shlex", "shutil",
            "smtplib", "socket", "socketserver", "sqlite3", "ssl", "statistics", "string",
            "subprocess", "symtable", "sysconfig", "tabnanny", "tarfile", "tempfile", "textwrap",
            "threading", "timeit", "tokenize", "tomllib", "trace", "traceback", "tracemalloc",
            "turtle", "types", "typing", "unittest", "urllib", "uuid", "venv", "warnings", "wave",
            "weakref", "webbrowser", "wsgiref", "xml", "xmlrpc", "zipapp", "zipfile", "zipimport",
            "zoneinfo",
        }
    )
)

_LICENSE_RE = re.compile(r"^(licen[cs]e|copying|notice|authors)", re.IGNORECASE)
_RST_ROLE_RE = re.compile(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_BACKTICK_RE = re.compile(r"`+([^`]*)`+")
_WS_RE = re.compile(r"\s+")
_PROSE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:'\"-()?!0123456789")

Record = tuple[str, str]
"""``(source, text)``; source is e.g. ``"stdlib:json.decoder"`` or
``"site-packages:numpy/LICENSE.txt"``."""


# ----------------------------------------------------------------------------- raw sources


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _site_packages_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    dirs = {Path(paths["purelib"]), Path(paths["platlib"])}
    return sorted(d for d in dirs if d.is_dir())


def _stdlib_files() -> list[tuple[str, Path]]:
    """``(dotted module name, path)`` for every source file of the fixed module list."""
    root = _stdlib_dir()
    out: list[tuple[str, Path]] = []
    for name in _STDLIB_MODULES:
        single = root / f"{name}.py"
        pkg = root / name
        if single.is_file():
            out.append((name, single))
        elif (pkg / "__init__.py").is_file():
            for p in sorted(pkg.rglob("*.py")):
                rel = p.relative_to(root).with_suffix("").parts
                if any(part in ("test", "tests", "idle_test") for part in rel):
                    continue
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out.append((".".join(rel), p))
    return out


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        return f"({bases})" if bases else ""
    args = ast.unparse(node.args)
    return f"({args})"


_CODE_LINES = 40


@functools.lru_cache(maxsize=1)
def _docstrings() -> tuple[tuple[str, str, str, str], ...]:
    """``(module, header, docstring, code)`` for public modules, classes and functions;
    ``code`` is the source of the class/function (first lines, dedented), empty for modules."""
    out: list[tuple[str, str, str, str]] = []
    for module, path in _stdlib_files():
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        lines = src.splitlines()
        doc = ast.get_docstring(tree)
        if doc:
            out.append((module, module, doc, ""))

        def visit(body: list[ast.stmt], prefix: str) -> None:
            for node in body:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                if node.name.startswith("_"):
                    continue
                qual = f"{prefix}.{node.name}"
                d = ast.get_docstring(node)
                if d:
                    first = min([node.lineno, *(x.lineno for x in node.decorator_list)]) - 1
                    last = min(node.end_lineno or node.lineno, first + _CODE_LINES)
                    code = textwrap.dedent("\n".join(lines[first:last])).strip("\n")
                    out.append((module, qual + _signature(node), d, code))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, qual)

        visit(tree.body, module)
    return tuple(out)


def _read_text(p: Path) -> str | None:
    try:
        return p.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (UnicodeDecodeError, OSError):
        return None


def _dist_name(dist_info: Path) -> str:
    return dist_info.name[: -len(".dist-info")].split("-")[0]


@functools.lru_cache(maxsize=1)
def _dist_infos() -> tuple[Path, ...]:
    out: list[Path] = []
    for d in _site_packages_dirs():
        # curate's own metadata embeds this repository's README, which changes with every
        # commit; leave it out so the corpus depends on third-party files only.
        out.extend(p for p in d.glob("*.dist-info") if p.is_dir() and _dist_name(p) != "curate")
    return tuple(sorted(set(out), key=lambda p: (p.name, str(p))))


@functools.lru_cache(maxsize=1)
def _license_records() -> tuple[Record, ...]:
    out: list[Record] = []
    for info in _dist_infos():
        for p in sorted(info.rglob("*")):
            if not p.is_file() or not _LICENSE_RE.match(p.name):
                continue
            text = _read_text(p)
            if text and len(text.strip()) >= 200:
                rel = p.relative_to(info)
                if rel.parts[0] == "licenses":
                    rel = Path(*rel.parts[1:])
                out.append((f"site-packages:{_dist_name(info)}/{rel.as_posix()}", text.strip()))
    # Python's own license, if the installation carries it.
    for cand in (_stdlib_dir() / "LICENSE.txt", Path(sys.base_prefix) / "LICENSE.txt"):
        text = _read_text(cand) if cand.is_file() else None
        if text:
            out.append(("python:LICENSE.txt", text.strip()))
            break
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _readme_records() -> tuple[Record, ...]:
    out: list[Record] = []
    for info in _dist_infos():
        text = _read_text(info / "METADATA")
        if not text:
            continue
        _head, _sep, body = text.partition("\n\n")
        body = body.strip()
        if len(body) >= 200:
            out.append((f"site-packages:{_dist_name(info)}/METADATA", body))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _dist_names() -> tuple[str, ...]:
    names = sorted({_dist_name(i).replace("_", "-").lower() for i in _dist_infos()})
    return tuple(names) or ("pip", "setuptools", "wheel", "numpy", "pyarrow")


# ----------------------------------------------------------------------------- splitting


def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def _clean_prose(par: str) -> str | None:
    """A docstring paragraph as one line of plain prose, or None if it is not prose."""
    lines = par.split("\n")
    if any(line[:1].isspace() for line in lines):  # indented: code, lists, tables
        return None
    if ">>>" in par or "::" in par or par.lstrip()[:1] in "-*+|=.:#0123456789":
        return None
    s = _RST_ROLE_RE.sub(r"\1", par)
    s = _BACKTICK_RE.sub(r"\1", s)
    s = _WS_RE.sub(" ", s).strip()
    if len(s) < 60 or not s[0].isupper() or not s.endswith("."):
        return None
    if sum(c in _PROSE_CHARS for c in s) < 0.985 * len(s):
        return None
    if s.count(" ") < 8:
        return None
    return s


def _chunk(paragraphs: Sequence[str], hi: int, sep: str = "\n\n") -> list[str]:
    """Greedy-group paragraphs into chunks of at most ``hi`` characters (a longer single
    paragraph becomes its own chunk)."""
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for p in paragraphs:
        if cur and size + len(sep) + len(p) > hi:
            out.append(sep.join(cur))
            cur, size = [], 0
        cur.append(p)
        size += len(p) + (len(sep) if size else 0)
    if cur:
        out.append(sep.join(cur))
    return out


def _truncate(text: str, hi: int) -> str:
    """Cut ``text`` to at most ``hi`` characters, at a sentence or paragraph end if possible."""
    if len(text) <= hi:
        return text
    cut = text[:hi]
    for mark in ("\n\n", ". ", "\n", " "):
        i = cut.rfind(mark)
        if i > hi // 2:
            return cut[: i + (1 if mark == ". " else 0)].rstrip()
    return cut


# ----------------------------------------------------------------------------- pools


class _Pool:
    """Blocks (ready documents, with sources) plus units (sentences or paragraphs, in source
    order) used to compose further documents once the blocks run out.

    A composed document is a sequence of short runs of consecutive units starting at random
    positions, so it reads locally coherent while two composed documents rarely share more
    than a sentence or two. ``para`` (min, max) regroups the units into paragraphs of that many
    units; otherwise units are joined with ``sep``.
    """

    def __init__(
        self,
        blocks: list[Record],
        units: list[Record],
        lo: int,
        hi: int,
        sep: str,
        run: tuple[int, int] = (1, 3),
        para: tuple[int, int] | None = None,
    ):
        if not blocks or not units:
            raise RuntimeError("curate.testing.textgen: no source text found in this Python installation")
        self.blocks, self.units, self.lo, self.hi, self.sep = blocks, units, lo, hi, sep
        self.run, self.para = run, para

    def _compose(self, rng: np.random.Generator) -> Record:
        parts: list[str] = []
        size = 0
        first = ""
        while size < self.lo or len(parts) < 2:
            start = int(rng.integers(len(self.units)))
            run = int(rng.integers(self.run[0], self.run[1] + 1))
            for src, u in self.units[start : start + run]:
                first = first or src
                parts.append(u)
                size += len(u) + len(self.sep)
        if self.para:
            pars, i = [], 0
            while i < len(parts):
                k = int(rng.integers(self.para[0], self.para[1] + 1))
                pars.append(" ".join(parts[i : i + k]))
                i += k
            text = "\n\n".join(pars)
        else:
            text = self.sep.join(parts)
        return first, _truncate(text, self.hi)

    def draw(self, n: int, rng: np.random.Generator) -> list[Record]:
        out: list[Record] = []
        order = rng.permutation(len(self.blocks))
        for i in order[:n]:
            out.append(self.blocks[int(i)])
        seen = {t for _s, t in out}
        attempts = 0
        while len(out) < n:
            src, text = self._compose(rng)
            attempts += 1
            if text in seen and attempts < 20 * n:  # avoid exact repeats while we can
                continue
            seen.add(text)
            out.append((src, text))
        return out


def _group_consecutive(units: Sequence[Record], lo: int, hi: int, sep: str) -> list[Record]:
    """Disjoint blocks of consecutive units from the same source, each >= lo chars when the
    source has enough text (short tails join the previous block), truncated to hi."""
    out: list[Record] = []
    cur: list[str] = []
    cur_src = None
    size = 0

    def flush() -> None:
        if cur and size >= lo:
            out.append((cur_src or "", _truncate(sep.join(cur), hi)))

    for src, u in units:
        if src != cur_src:
            flush()
            cur, cur_src, size = [], src, 0
        cur.append(u)
        size += len(u) + len(sep)
        if size >= lo:
            flush()
            cur, size = [], 0
    flush()
    return out


@functools.lru_cache(maxsize=1)
def _prose_units() -> tuple[Record, ...]:
    out: list[Record] = []
    for module, _header, doc, _code in _docstrings():
        for par in _paragraphs(doc):
            s = _clean_prose(par)
            if s:
                out.append((f"stdlib:{module}", s))
    return tuple(out)


_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@functools.lru_cache(maxsize=1)
def _prose_sentences() -> tuple[Record, ...]:
    return tuple((src, s) for src, p in _prose_units() for s in _SENT_RE.split(p) if s)


@functools.lru_cache(maxsize=None)
def _pool(kind: str) -> _Pool:
    if kind == "paragraphs":
        units, sents = list(_prose_units()), list(_prose_sentences())
        # no exact repeats (first occurrence wins): tests count planted duplicates in these
        blocks, seen = [], set()
        for src, t in _group_consecutive(units, 300, 2500, " "):
            if t not in seen:
                seen.add(t)
                blocks.append((src, t))
        return _Pool(blocks, sents, 300, 2500, " ")
    if kind == "prose":
        units, sents = list(_prose_units()), list(_prose_sentences())
        blocks = _group_consecutive(units, 1200, 5000, "\n\n")
        return _Pool(blocks, sents, 1200, 5000, "\n\n", run=(2, 4), para=(3, 7))
    if kind == "code_docs":
        entries: list[Record] = []
        for module, header, _doc, code in _docstrings():
            if header == module:  # module docstrings are mostly prose; they feed `prose`
                continue
            # documented source: signature, docstring, first lines of the body
            entries.append((f"stdlib:{module}", f"# {module}\n{_truncate(code, 2500)}"))
        return _Pool(_group_consecutive(entries, 300, 2500, "\n\n\n"), entries, 300, 2500, "\n\n\n")
    if kind == "legal":
        blocks: list[Record] = []
        units = []
        for src, text in _license_records():
            pars = _paragraphs(text)
            blocks.extend((src, c) for c in _chunk(pars, 12000))
            units.extend((src, p) for p in pars if len(p) >= 40)
        return _Pool(blocks, units, 600, 6000, "\n\n")
    if kind == "readme":
        blocks, units = [], []
        for src, text in _readme_records():
            pars = _paragraphs(text)
            blocks.extend((src, c) for c in _chunk(pars, 6000) if len(c) >= 200)
            units.extend((src, p) for p in pars if len(p) >= 40)
        return _Pool(blocks, units, 600, 6000, "\n\n")
    raise ValueError(f"unknown domain {kind!r}; expected one of {', '.join(DOMAINS)}")


# ----------------------------------------------------------------------------- clean text


def prose_paragraphs(n: int, seed: int) -> list[str]:
    """``n`` well-formed prose paragraphs (one paragraph each, several sentences,
    ~300-2500 characters) made from standard-library docstring prose."""
    return [t for _s, t in prose_records(n, seed)]


def prose_records(n: int, seed: int) -> list[Record]:
    """:func:`prose_paragraphs` as ``(source, text)`` pairs (same texts, same order)."""
    return _pool("paragraphs").draw(n, np.random.default_rng(seed))


def domain_records(domain: str, n: int, seed: int) -> list[Record]:
    """``n`` ``(source, text)`` documents of one domain (see :func:`domain_texts`)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    return _pool(domain).draw(n, np.random.default_rng(seed))


def domain_texts(domain: str, n: int, seed: int) -> list[str]:
    """``n`` documents of one domain, each with its own vocabulary:

    * ``code_docs``: API reference pages (signatures + docstrings) of stdlib modules;
    * ``legal``: license texts from ``site-packages`` (Apache, MIT, BSD, ...);
    * ``readme``: package READMEs (Markdown/reST) from ``*.dist-info/METADATA``;
    * ``prose``: longer multi-paragraph plain prose from docstring sentences.

    The first documents are whole source units in a seeded order; once those run out,
    further documents are seeded compositions of random paragraphs of the same domain.
    """
    return [t for _s, t in domain_records(domain, n, seed)]


# ----------------------------------------------------------------------------- junk text

_NAV = (
    "Home", "About", "About us", "Contact", "Contact us", "Blog", "News", "Careers", "Press",
    "Privacy Policy", "Terms of Service", "Terms & Conditions", "Sitemap", "Log in", "Sign up",
    "Register", "FAQ", "Help", "Support", "Shop", "Cart", "Checkout", "My Account", "Pricing",
    "Products", "Services", "Solutions", "Partners", "Events", "Downloads", "Resources",
    "Community", "Forum", "Newsletter", "Advertise", "Jobs", "Imprint", "Accessibility",
)
_COOKIE = (
    "We use cookies to improve your experience on our website. By continuing to browse, "
    "you agree to our use of cookies.",
    "This website uses cookies to ensure you get the best experience. Learn more",
    "We and our partners use cookies and similar technologies to personalise content and ads, "
    "to provide social media features and to analyse our traffic.",
    "Cookie settings | Accept all cookies | Reject non-essential cookies",
    "By clicking \"Accept\", you consent to the storing of cookies on your device.",
)
_DEBRIS = (
    "Skip to main content", "Skip to navigation", "Back to top", "Loading...", "Search...",
    "Share on Facebook", "Share on Twitter", "Share on LinkedIn", "Pin it", "Email this page",
    "Follow us on Instagram", "Subscribe to our newsletter", "Enter your email address",
    "Sign up for updates", "Read more", "Continue reading", "Previous | Next",
    "Powered by WordPress", "Theme by ThemeForest", "Print this page", "Leave a comment",
    "0 comments", "Show more", "Load more posts", "All categories", "Tags:", "Archives",
    "Related posts", "Popular posts", "Recent comments", "Categories", "Menu", "Close",
    "Accept", "Decline", "Manage preferences", "Toggle navigation", "You are here:",
)
_TITLES = (
    "Getting started with {p}", "{p} release notes", "How to install {p}", "{p} tutorial",
    "Top 10 tips for {p}", "Why we switched to {p}", "{p} vs the alternatives",
    "Announcing {p} support", "{p} documentation", "Download {p}",
)
_SPAM_KW = (
    "cheap watches", "replica handbags", "casino bonus", "payday loans", "weight loss pills",
    "crypto signals", "seo services", "free followers", "discount software", "online pharmacy",
    "best vpn", "cheap flights", "free spins", "forex robot", "backlinks", "essay writing",
    "cheap hosting", "bitcoin doubler", "diet tea", "luxury replica", "instant loans",
)
_SPAM_TPL = (
    "Buy cheap {k} online!", "Best price {k}.", "{k} {k} {k}", "Discount {k} free shipping.",
    "Order {k} now, cheap {k} best {k} sale!!!", "{K} | {K} | {K}", "Top {k} 2024 best {k}.",
    "Click here for {k}.", "100% guaranteed {k}, no prescription {k}.", "{k}, {k}, {k}, {k}",
    "Lowest price {k} deals {k} coupon {k}.", "FREE {K} TODAY!!!", "Visit our {k} store.",
)


def _pick(rng: np.random.Generator, items: Sequence[str], k: int = 1) -> list[str]:
    idx = rng.choice(len(items), size=min(k, len(items)), replace=False)
    return [items[int(i)] for i in idx]


def _site(rng: np.random.Generator) -> str:
    p = _pick(rng, _dist_names())[0]
    suffix = _pick(rng, ("Hub", "Daily", "Blog", "News", "Online", "Central", "Labs", "Inc."))[0]
    return f"{p.title()} {suffix}"


def _nav_line(rng: np.random.Generator) -> str:
    return " | ".join(_pick(rng, _NAV, int(rng.integers(4, 10))))


def _copyright(rng: np.random.Generator) -> str:
    year = int(rng.integers(2003, 2025))
    return _pick(
        rng,
        (
            f"Copyright © {year} {_site(rng)}. All rights reserved.",
            f"© {year}-{year + int(rng.integers(1, 6))} {_site(rng)}. All Rights Reserved.",
            f"(c) {year} {_site(rng)} | Privacy | Terms",
        ),
    )[0]


def _boilerplate_doc(rng: np.random.Generator) -> str:
    parts: list[str] = []
    for _ in range(int(rng.integers(3, 8))):
        kind = int(rng.integers(6))
        if kind == 0:
            parts.append(_nav_line(rng))
        elif kind == 1:
            parts.append(_pick(rng, _COOKIE)[0])
        elif kind == 2:
            parts.append(_copyright(rng))
        elif kind == 3:  # vertical menu
            parts.append("\n".join(_pick(rng, _NAV, int(rng.integers(4, 12)))))
        elif kind == 4:  # link list
            head = _pick(rng, ("Related posts:", "Popular:", "See also:", "Recent articles"))[0]
            links = [
                "- " + _pick(rng, _TITLES)[0].format(p=_pick(rng, _dist_names())[0])
                for _ in range(int(rng.integers(3, 8)))
            ]
            parts.append("\n".join([head, *links]))
        else:
            parts.append("\n".join(_pick(rng, _DEBRIS, int(rng.integers(2, 7)))))
    return "\n\n".join(parts)


def boilerplate(n: int, seed: int) -> list[str]:
    """``n`` documents of web boilerplate / navigation debris: nav bars
    (``Home | About | Contact``), cookie banners, copyright lines, menus and link lists."""
    rng = np.random.default_rng(seed)
    return [_boilerplate_doc(rng) for _ in range(n)]


def spam(n: int, seed: int) -> list[str]:
    """``n`` keyword-spam documents (repeated keywords, ``buy cheap ... best price ...``),
    roughly 200-1500 characters each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        kws = _pick(rng, _SPAM_KW, int(rng.integers(1, 4)))
        target = int(rng.integers(200, 1500))
        parts: list[str] = []
        size = 0
        while size < target:
            k = kws[int(rng.integers(len(kws)))]
            s = _pick(rng, _SPAM_TPL)[0].format(k=k, K=k.upper())
            parts.append(s)
            size += len(s) + 1
        out.append(" ".join(parts))
    return out


def shuffled(n: int, seed: int) -> list[str]:
    """``n`` prose paragraphs (as :func:`prose_paragraphs`) with their words shuffled:
    the right vocabulary, no syntax."""
    rng = np.random.default_rng(seed)
    out = []
    for text in prose_paragraphs(n, seed):
        words = text.split()
        out.append(" ".join(words[int(i)] for i in rng.permutation(len(words))))
    return out


# ----------------------------------------------------------------------------- near-duplicates


def wrap_with_boilerplate(text: str, seed: int) -> str:
    """``text`` with a web header (nav bar) and footer (copyright, share links) added."""
    rng = np.random.default_rng(seed)
    head = _nav_line(rng)
    foot = "\n".join([*_pick(rng, _DEBRIS, int(rng.integers(1, 3))), _copyright(rng)])
    return f"{head}\n\n{text}\n\n{foot}"


def _edit(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    n_edits = max(1, len(words) // 120)
    for _ in range(n_edits):
        if len(words) < 2:
            break
        i = int(rng.integers(len(words)))
        op = int(rng.integers(3))
        if op == 0:
            del words[i]
        elif op == 1:
            words.insert(i, words[int(rng.integers(len(words)))])
        else:
            words[i] = words[i].upper() if words[i].islower() else words[i].lower()
    return " ".join(words)


def _rewrap(text: str, rng: np.random.Generator) -> str:
    width = int(rng.integers(50, 100))
    return "\n\n".join(
        textwrap.fill(_WS_RE.sub(" ", p), width, break_long_words=False, break_on_hyphens=False)
        for p in _paragraphs(text)
    )


def near_duplicate(text: str, seed: int, kind: str | None = None) -> str:
    """A realistic near-copy of ``text``.

    ``kind`` is one of :data:`NEAR_DUP_KINDS` (chosen from ``seed`` if None):
    ``edit`` (a few words deleted/duplicated/re-cased, about one per 120 words),
    ``rewrap`` (paragraphs re-filled at another line width; same words),
    ``boilerplate`` (a web header and footer added). For documents of a few hundred words
    the word-5-gram Jaccard similarity to the original stays above ~0.8.
    """
    rng = np.random.default_rng(seed)
    if kind is None:
        kind = NEAR_DUP_KINDS[int(rng.integers(len(NEAR_DUP_KINDS)))]
    if kind == "edit":
        return _edit(text, rng)
    if kind == "rewrap":
        return _rewrap(text, rng)
    if kind == "boilerplate":
        return wrap_with_boilerplate(text, int(rng.integers(2**31)))
    raise ValueError(f"unknown near-duplicate kind {kind!r}; expected one of {', '.join(NEAR_DUP_KINDS)}")

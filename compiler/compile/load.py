"""Phase 1: read `projects/*.yaml` into plain data, keeping every node's line and column.

Parsing uses ruamel.yaml's C-accelerated composer: we build the data ourselves from the node
tree, which lets us reject duplicate keys, custom tags, merge keys and alias bombs with precise
positions, and keep the node tree to place later diagnostics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.cyaml import CParser
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver, implicit_resolvers
from ruamel.yaml.tag import Tag

from compiler.compile.diagnostics import Diagnostic, dotted_path
from compiler.compile.parallel import map_split

PROJECTS_DIR = "projects"
DEFAULTS_FILE = "_defaults.yaml"
MAX_FILE_BYTES = 1024 * 1024
# A project file has a few dozen nodes; anything expanding past this is an alias bomb or a mistake.
MAX_EXPANDED_NODES = 10_000
# Deeper than this is refused before composing: libyaml's composer recurses (a RecursionError at a few
# hundred levels, a crash of the interpreter at tens of thousands); a project needs about five.
MAX_DEPTH = 64

_STANDARD_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _STANDARD_TAG + "merge"
_STR_TAG = _STANDARD_TAG + "str"
# The YAML 1.2 core schema; anything else (!!python/..., !!binary, !!set, !custom) is refused.
_ALLOWED_TAGS = {_STANDARD_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")}
_TIMESTAMP_TAG = _STANDARD_TAG + "timestamp"


@dataclass(frozen=True)
class SourceFile:
    """One parsed YAML file: relative path, plain data, and its text (for positions)."""

    path: str
    data: Any
    text: str = field(repr=False, compare=False)

    @cached_property
    def node(self) -> Node:
        """The node tree, composed again on demand: only files with a problem need positions."""
        return _Loader(self.text).documents()[0]

    def __getstate__(self) -> dict:  # pickled between processes: the text suffices
        return {k: v for k, v in self.__dict__.items() if k != "node"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def position(self, path: tuple = (), *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the value at `path` (of its key with key=True).

        Falls back to the nearest existing ancestor when the path does not exist (a missing
        required key is reported where its parent mapping starts)."""
        node: Node = self.node
        place = node
        for index, part in enumerate(path):
            child = _child(node, part)
            if child is None:
                break
            key_node, value_node = child
            last = index == len(path) - 1
            place = key_node if key and last and key_node is not None else value_node
            node = value_node
        return place.start_mark.line + 1, place.start_mark.column + 1


@dataclass(frozen=True)
class LoadedRepo:
    root: Path
    projects: tuple[SourceFile, ...]
    defaults: SourceFile | None
    diagnostics: tuple[Diagnostic, ...]


def load_repo(root: Path) -> LoadedRepo:
    """Read every project file and `_defaults.yaml` under `root/projects`."""
    folder = root / PROJECTS_DIR
    diagnostics: list[Diagnostic] = []
    wanted: list[tuple[Path, str]] = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        relative = f"{PROJECTS_DIR}/{path.name}"
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".yml":  # an error: it would merge green and deploy nothing
            diagnostics.append(
                Diagnostic(relative, 0, 0, "", "project files must end in .yaml; this one would be ignored",
                           f"rename it: git mv {relative} {PROJECTS_DIR}/{path.stem}.yaml")
            )
            continue
        if path.suffix != ".yaml":
            continue
        if path.name.startswith("_") and path.name != DEFAULTS_FILE:
            diagnostics.append(
                Diagnostic(relative, 0, 0, "", "ignored: only _defaults.yaml may start with '_'",
                           "rename the file or move it out of projects/", severity="warning")
            )
            continue
        wanted.append((path, relative))
    projects: list[SourceFile] = []
    defaults: SourceFile | None = None
    for (path, _), (source, problems) in zip(wanted, map_split(_load_one, wanted)):
        diagnostics.extend(problems)
        if source is None:
            continue
        if path.name == DEFAULTS_FILE:
            defaults = source
        else:
            projects.append(source)
    return LoadedRepo(root, tuple(projects), defaults, tuple(diagnostics))


def _load_one(item: tuple[Path, str]) -> tuple[SourceFile | None, list[Diagnostic]]:
    problems: list[Diagnostic] = []
    return _load_file(item[0], item[1], problems), problems


def _load_file(path: Path, relative: str, out: list[Diagnostic]) -> SourceFile | None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        out.append(Diagnostic(relative, 0, 0, "", f"file is {size} bytes, over the 1 MiB limit",
                              "a project file is a few hundred bytes; check that this is the right file"))
        return None
    raw = path.read_bytes()
    text = _decode(raw, relative, out)
    if text is None:
        return None
    deep = _too_deep(text)
    if deep is not None:
        out.append(Diagnostic(relative, deep.line + 1, deep.column + 1, "",
                              f"the YAML is nested more than {MAX_DEPTH} levels deep here",
                              "a project file needs a few levels; flatten the structure"))
        return None
    loader = _Loader(text)
    try:
        documents = loader.documents()
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "invalid YAML"
        tab = _tab_near(text, line)
        if tab:
            out.append(Diagnostic(relative, tab[0], tab[1], "", "a tab character is used for indentation; "
                                  "YAML indents with spaces only",
                                  "replace the tab with spaces (set your editor to insert spaces in .yaml files)"))
            return None
        out.append(Diagnostic(relative, line, column, "", f"YAML syntax error: {problem}", _syntax_hint(text, line)))
        return None
    except YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        out.append(Diagnostic(relative, 0, 0, "", f"YAML error: {exc}", "check the file's YAML syntax"))
        return None
    documents = [d for d in documents if d is not None]
    if not documents:
        out.append(Diagnostic(relative, 1, 1, "", "file is empty",
                              "write the project's fields, or delete the file"))
        return None
    if len(documents) > 1:
        second = documents[1].start_mark
        out.append(Diagnostic(relative, second.line + 1, second.column + 1, "",
                              f"file holds {len(documents)} YAML documents; one project per file",
                              "remove the extra `---` document or move it to its own file"))
        return None
    node = documents[0]
    builder = _Builder(relative, loader)
    data = builder.build(node, may_alias="&" in text)  # no anchor, no alias: skip the bomb check
    if builder.diagnostics:
        out.extend(builder.diagnostics)
        return None
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
        out.append(Diagnostic(relative, node.start_mark.line + 1, node.start_mark.column + 1, "",
                              f"expected a mapping of fields at the top level, got {kind}",
                              "start the file with `name: <project-name>`"))
        return None
    source = SourceFile(relative, data, text)
    source.__dict__["node"] = node  # already composed: keep it for this process's diagnostics
    return source


def parse_artifact(text: str, relative: str) -> Any:
    """A compiled artifact (prefect.yaml, blocks/*.yaml) as plain data, with the same C parser and
    builder as project files (ruamel's `YAML(typ="safe")` costs ~0.5 s on 1,000 deployments).
    Artifacts are chapctl's own output: any problem is reported as one line."""
    from compiler.errors import UserError

    loader = _Loader(text)
    try:
        documents = [d for d in loader.documents() if d is not None]
    except YAMLError as exc:
        raise UserError(f"{relative} is not valid YAML ({str(exc).splitlines()[0]}); run `chapctl compile`") from None
    if not documents:
        return None
    builder = _Builder(relative, loader)
    data = builder.build(documents[0], may_alias=False)
    if builder.diagnostics:
        first = builder.diagnostics[0]
        raise UserError(f"{relative}:{first.line}:{first.column}: {first.message}; run `chapctl compile`")
    return data


def _tab_near(text: str, line: int) -> tuple[int, int] | None:
    """(line, column) of a tab in the indentation of the line the parser stopped at, or of the
    line before it (libyaml reports some tab errors at the start of the next token)."""
    lines = text.splitlines()
    for number in (line, line - 1):
        if 1 <= number <= len(lines):
            indent = lines[number - 1][: len(lines[number - 1]) - len(lines[number - 1].lstrip(" \t"))]
            if "\t" in indent:
                return number, indent.index("\t") + 1
    return None


def _decode(raw: bytes, relative: str, out: list[Diagnostic]) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        out.append(Diagnostic(relative, line, column, "",
                              f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                              "save the file as UTF-8"))
        return None


class _Yaml12Resolver(VersionedResolver):
    """ruamel's resolver, YAML 1.2 only, with its implicit-type table built once per process.

    The stock resolver rebuilds and re-derives the table for every scalar (about half of all
    parse time for small files); project files never need YAML 1.1, so one table serves."""

    _table: dict | None = None

    @staticmethod
    def _implicit() -> dict:
        # Stored on this class by name: ruamel subclasses the resolver for every document.
        cls = _Yaml12Resolver
        if cls._table is None:
            by_first: dict = {}
            for versions, tag, regexp, first in implicit_resolvers:
                if (1, 2) in versions:
                    for char in first or [None]:
                        by_first.setdefault(char, []).append((tag, regexp))
            anywhere = by_first.get(None, [])
            cls._table = {k: tuple(v) + tuple(anywhere) for k, v in by_first.items() if k is not None}
            cls._table[None] = tuple(anywhere)
        return cls._table

    def resolve(self, kind, value, implicit):  # noqa: ANN001 - ruamel's signature
        if kind is ScalarNode and implicit[0]:
            table = self._implicit()
            for tag, regexp in table.get(value[:1], table[None]) if value else table.get("", table[None]):
                if regexp.match(value):
                    return Tag(suffix=tag)
            return self.DEFAULT_SCALAR_TAG
        return super().resolve(kind, value, implicit)


# `key: *…`, `key: &…`, `key: !…`: YAML reads the value as an alias, an anchor or a tag, not as text
_INDICATORS = {"*": "alias", "&": "anchor", "!": "tag", "%": "directive", "@": "reserved character",
               "`": "reserved character"}
_INDICATOR_VALUE = re.compile(r"^\s*(?:- )?([\w.-]+):\s+([" + re.escape("".join(_INDICATORS)) + "])")


def _syntax_hint(text: str, line: int) -> str:
    lines = text.splitlines()
    m = _INDICATOR_VALUE.match(lines[line - 1]) if 0 < line <= len(lines) else None
    if m:
        key, mark = m.groups()
        example = '"*/5 * * * *"' if key == "cron" else f'"{mark}…"'
        return (f"a value starting with {mark!r} is read as a YAML {_INDICATORS[mark]}: quote it, "
                f"e.g. {key}: {example}")
    return "check indentation, colons and quoting around this place"



def _too_deep(text: str) -> Any:
    """The mark where the nesting passes MAX_DEPTH, or None. Read from libyaml's events, which it
    produces without recursing; only for a text that could be that deep at all (enough brackets,
    dashes or indentation), so an ordinary file is parsed once."""
    could = text.count("[") + text.count("{") + text.count("- ") + text.count(": ")
    if could <= MAX_DEPTH:
        return None
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    parser = CParser(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return None  # the parse proper reports it, with its position
    finally:
        parser.dispose()
    return None


class _Loader(CParser, SafeConstructor, _Yaml12Resolver):
    """libyaml's C parser and composer with our resolver: what `YAML(typ="safe").compose_all`
    assembles, minus the new loader class it builds for every document."""

    def __init__(self, text: str) -> None:
        CParser.__init__(self, text)
        self._parser = self._composer = self
        SafeConstructor.__init__(self, loader=self)
        self.allow_duplicate_keys = False
        _Yaml12Resolver.__init__(self, loadumper=self)

    def documents(self) -> list[Node]:
        try:
            documents = []
            while self.check_node():
                documents.append(self.get_node())
            return documents
        finally:
            self.dispose()


class _Builder:
    """Turns a node tree into plain Python data, checking what ruamel lets through."""

    def __init__(self, relative: str, constructor: SafeConstructor):
        self.relative = relative
        self.constructor = constructor
        self.diagnostics: list[Diagnostic] = []
        self.built: dict[int, Any] = {}

    def build(self, node: Node, may_alias: bool = True) -> Any:
        if may_alias and not self._within_budget(node):
            return None
        return self._build(node, ())

    def _error(self, node: Node, path: tuple, message: str, hint: str) -> None:
        mark = node.start_mark
        self.diagnostics.append(
            Diagnostic(self.relative, mark.line + 1, mark.column + 1, dotted_path(path), message, hint)
        )

    def _within_budget(self, root: Node) -> bool:
        """Expanded size with memo by node identity: linear in the unique nodes even for a
        billion-laughs document, and cycles (recursive aliases) are caught."""
        sizes: dict[int, int] = {}
        visiting: set[int] = set()

        def size(node: Node) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in visiting:
                raise _Recursive(node)
            visiting.add(key)
            total = 1
            if isinstance(node, MappingNode):
                for k, v in node.value:
                    total += size(k) + size(v)
                    if total > MAX_EXPANDED_NODES:
                        break
            elif isinstance(node, SequenceNode):
                for item in node.value:
                    total += size(item)
                    if total > MAX_EXPANDED_NODES:
                        break
            visiting.discard(key)
            sizes[key] = total
            return total

        try:
            total = size(root)
        except _Recursive as exc:
            self._error(exc.node, (), "recursive YAML alias (a structure that contains itself)",
                        "remove the anchor/alias pair")
            return False
        except RecursionError:
            self._error(root, (), "document is nested too deeply", "flatten the structure")
            return False
        if total > MAX_EXPANDED_NODES:
            self._error(root, (), f"document expands to more than {MAX_EXPANDED_NODES} nodes through "
                        "YAML aliases", "write the values out instead of repeating aliases")
            return False
        return True

    def _build(self, node: Node, path: tuple) -> Any:
        tag = _tag(node)
        if tag not in _ALLOWED_TAGS:
            shown = tag.replace(_STANDARD_TAG, "!!")
            self._error(node, path, f"YAML tag {shown!r} is not allowed", "remove the tag; write plain values")
            return None
        if isinstance(node, ScalarNode):
            if tag == _STR_TAG or tag == _TIMESTAMP_TAG:
                return node.value  # dates stay ISO text; the model parses and checks them
            return self.constructor.construct_object(node)
        key = id(node)
        if key in self.built:  # an alias to a node already built: share, don't rebuild
            return self.built[key]
        if isinstance(node, SequenceNode):
            result: Any = [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
        else:
            result = self._build_mapping(node, path)
        self.built[key] = result
        return result

    def _build_mapping(self, node: MappingNode, path: tuple) -> dict:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            if _tag(key_node) == _MERGE_TAG:
                self._error(key_node, path, "YAML merge keys (`<<`) are not supported",
                            "write the fields out; shared values belong in projects/_defaults.yaml")
                continue
            if not isinstance(key_node, ScalarNode):
                self._error(key_node, path, "a mapping key must be a plain value", "use a simple name as key")
                continue
            key = self._build(key_node, path)
            if not isinstance(key, str):
                key = str(key_node.value)
            if key in first_seen:
                earlier = first_seen[key].start_mark.line + 1
                self._error(key_node, (*path, key), f"duplicate key {key!r} (first given on line {earlier})",
                            "keep one of the two; YAML would silently use the last")
                continue
            first_seen[key] = key_node
            result[key] = self._build(value_node, (*path, key))
        return result


def _tag(node: Node) -> str:
    # `node.tag` re-derives the string on every access; resolved tags carry it in `suffix`.
    ctag = node.ctag
    return ctag.suffix if ctag.handle is None else str(ctag)


class _Recursive(Exception):
    def __init__(self, node: Node):
        self.node = node


def _child(node: Node, part: Any) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                return key_node, value_node
        return None
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None

"""Pipeline specs: the declarative DAG a job runs.

A spec (YAML or JSON) has named ``inputs``, ``nodes`` (``id``, ``stage``, ``params``,
``inputs``) and named ``outputs`` (node -> path). :func:`validate_spec` checks it before
anything runs and reports *every* problem at once, each naming its node.
"""

from __future__ import annotations

import difflib
import glob as globlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curate import schema
from curate.registry import get_stage_class, stage_names


class Problem(BaseModel):
    """One validation problem: where it is and what is wrong."""

    node: str | None = Field(None, description="Node (or input/output name) the problem belongs to")
    field: str | None = Field(None, description="Parameter or key that is wrong")
    message: str

    def __str__(self) -> str:
        where = f"node '{self.node}'" if self.node else "spec"
        if self.field:
            where += f", {self.field}"
        return f"{where}: {self.message}"


class SpecError(ValueError):
    """A spec is invalid. ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("invalid pipeline spec:\n" + "\n".join(f"  - {p}" for p in problems))


class InputSpec(BaseModel):
    """A named corpus input: Parquet files (a path, a directory or a glob; local or s3://)."""

    model_config = ConfigDict(extra="forbid")
    path: str | list[str] = Field(description="Parquet file, directory or glob (local or s3://); or a list")
    text_column: str = Field(schema.TEXT, description="Column holding the document text")
    domain: str | None = Field(None, description="Domain label written to the `domain` column of every row")
    id_column: str = Field(schema.ID, description="Column with document ids; assigned at ingest when absent")


class NodeSpec(BaseModel):
    """A DAG node: a stage with parameters and the ids of its inputs."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Unique node id")
    stage: str = Field(description="Registered stage name (see `curate stages`)")
    params: dict[str, Any] = Field(default_factory=dict, description="Stage parameters")
    inputs: list[str] = Field(description="Input names or node ids feeding this node")

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_input(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class OutputSpec(BaseModel):
    """A named output: which node's kept rows go where."""

    model_config = ConfigDict(extra="forbid")
    node: str = Field(description="Node id whose kept rows are written")
    path: str = Field(description="Output directory (Parquet part files)")


class Settings(BaseModel):
    """Job-wide settings."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(4096, ge=1, description="Rows per batch handed to stages")
    rows_per_shard: int = Field(
        200_000, ge=1, description="Large files are split into shards of about this many rows (by row group)"
    )
    on_bad_shard: Literal["fail", "skip"] = Field(
        "fail", description="A file that is not Parquet, is truncated or lacks the text column: fail or skip"
    )
    max_doc_bytes: int = Field(10_000_000, ge=1, description="Documents larger than this are rejected (too_long)")
    on_duplicate_ids: Literal["warn", "fail"] = Field(
        "warn", description="What to do when an input carries duplicate ids"
    )
    shuffle_partitions: int = Field(16, ge=1, description="Partitions for hash shuffles in barrier fits")


class PipelineSpec(BaseModel):
    """A whole pipeline: inputs, a DAG of stage nodes and named outputs."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("pipeline", description="Pipeline name")
    description: str | None = Field(None, description="Free text")
    seed: int = Field(0, description="Seed every random choice derives from")
    job_dir: str | None = Field(None, description="Job directory (default runs/<name>)")
    settings: Settings = Field(default_factory=Settings)
    inputs: dict[str, InputSpec]
    nodes: list[NodeSpec] = Field(default_factory=list)
    outputs: dict[str, OutputSpec] = Field(default_factory=dict)

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: set = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key '{key_node.value}'", key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_spec_text(text: str, source: str = "<spec>") -> dict:
    """Parse YAML or JSON text into a dict, with one clear error (and line) if it is bad."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        msg = getattr(e, "problem", None) or str(e)
        raise SpecError([Problem(message=f"{source}: invalid YAML/JSON{where}: {msg}")]) from None
    if not isinstance(data, dict):
        raise SpecError([Problem(message=f"{source}: a spec must be a mapping, got {type(data).__name__}")])
    return data


def load_spec(spec: dict | str | Path | PipelineSpec) -> dict:
    """Accept a dict, a PipelineSpec, a path to a YAML/JSON file or spec text."""
    if isinstance(spec, PipelineSpec):
        return spec.model_dump(mode="json")
    if isinstance(spec, dict):
        return spec
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml", ".json"))):
        p = Path(spec)
        if not p.is_file():
            raise SpecError([Problem(message=f"spec file not found: {p}" if not p.exists() else f"not a file: {p}")])
        return load_spec_text(p.read_text(), source=str(p))
    return load_spec_text(str(spec))


def _loc(err: dict) -> str:
    return ".".join(str(x) for x in err.get("loc", ()) if x != "__root__")


def stage_suggestion(name: str) -> str:
    """'; did you mean x, y?' for an unknown stage name (or the list of stages)."""
    names = stage_names()
    close = difflib.get_close_matches(name, names, n=3)
    return f"; did you mean {', '.join(close)}?" if close else f"; known stages: {', '.join(names)}"


def param_suggestion(stage_cls: type, key: str) -> str:
    """'; did you mean `x`?' for an unknown parameter ``key`` of a stage (or its list of
    parameters when nothing is close)."""
    known = [f.alias or name for name, f in stage_cls.Params.model_fields.items()]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    return f"; {stage_cls.name} takes {', '.join(known)}" if known else f"; {stage_cls.name} takes no parameters"


def _param_message(stage_cls: type, err: dict) -> str:
    loc = err.get("loc", ())
    if err.get("type") == "extra_forbidden" and len(loc) == 1 and isinstance(loc[0], str):
        return f"unknown parameter '{loc[0]}'" + param_suggestion(stage_cls, loc[0])
    return err["msg"]


def build_stage(node: NodeSpec, seed: int = 0, text_column: str = schema.TEXT):
    """Instantiate the stage of a node, bound to it (seed mixed with the node id)."""
    cls = get_stage_class(node.stage)
    return cls(node.params).bind(node.id, derive_seed(seed, node.id), text_column)


def derive_seed(seed: int, node_id: str) -> int:
    """A per-node seed: stable mix of the spec seed and the node id (never Python hash())."""
    import xxhash

    return xxhash.xxh3_64_intdigest(node_id.encode(), seed=seed & 0xFFFFFFFFFFFFFFFF) & 0x7FFFFFFFFFFFFFFF


def resolve_input_files(path: str | list[str]) -> list[str]:
    """Expand a path / directory / glob (or a list of them) into sorted Parquet files."""
    paths = path if isinstance(path, list) else [path]
    out: list[str] = []
    for p in paths:
        if p.startswith("s3://") or "://" in p:
            import fsspec

            fs, _, _ = fsspec.get_fs_token_paths(p)
            proto = p.split("://", 1)[0]
            if any(c in p for c in "*?["):
                found = fs.glob(p)
            elif fs.isdir(p):
                found = [f for f in fs.find(p) if f.endswith(".parquet")]
            else:
                found = [p]
            out.extend(f if "://" in f else f"{proto}://{f}" for f in found)
            continue
        if any(c in p for c in "*?["):
            out.extend(f for f in globlib.glob(p, recursive=True) if Path(f).is_file())
        elif Path(p).is_dir():
            out.extend(str(f) for f in Path(p).rglob("*.parquet"))
        else:
            out.append(p)
    return sorted(dict.fromkeys(out))


def input_root(path: str) -> str:
    """The fixed (non-glob) directory prefix of an input path; ids use paths relative to it."""
    if "://" in path:
        proto, rest = path.split("://", 1)
        return f"{proto}://{_root(rest)}"
    return _root(path)


def _root(p: str) -> str:
    parts = p.split("/")
    fixed = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    root = "/".join(fixed)
    if len(fixed) == len(parts) and not Path(root).is_dir():
        root = "/".join(fixed[:-1])
    return root


def _schema_columns(inp: InputSpec) -> set[str] | None:
    """Columns of the first local file of an input (None when unknown: remote, missing)."""
    import pyarrow.parquet as pq

    paths = inp.path if isinstance(inp.path, list) else [inp.path]
    if any("://" in p for p in paths):
        return None
    try:
        files = resolve_input_files(inp.path)
        if not files:
            return None
        return set(pq.read_schema(files[0]).names)
    except Exception:
        return None


def validate_spec(spec: dict | str | Path | PipelineSpec, *, check_inputs: bool = True) -> PipelineSpec:
    """Validate a spec; raise :class:`SpecError` listing every problem, by node.

    Checks: spec structure, unknown stages, stage parameters (each stage's pydantic
    model), dangling references, cycles, outputs of unknown nodes, and columns a stage
    requires that no upstream node (or input file) provides.
    """
    data = load_spec(spec)
    problems: list[Problem] = []
    try:
        ps = PipelineSpec.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = err.get("loc", ())
            node = None
            if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
                nodes = data.get("nodes") or []
                if loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
                    node = nodes[loc[1]].get("id")
            elif len(loc) >= 2 and loc[0] in ("inputs", "outputs"):
                node = str(loc[1])
            problems.append(Problem(node=node, field=_loc(err), message=err["msg"]))
        raise SpecError(problems) from None

    names = stage_names()
    ids: dict[str, NodeSpec] = {}
    for n in ps.nodes:
        if n.id in ids or n.id in ps.inputs:
            problems.append(Problem(node=n.id, message="duplicate id (node ids and input names must be unique)"))
        ids[n.id] = n
    known = set(ids) | set(ps.inputs)

    stages: dict[str, Any] = {}
    for n in ps.nodes:
        if n.stage not in names:
            problems.append(Problem(node=n.id, field="stage", message=f"unknown stage '{n.stage}'"
                                    + stage_suggestion(n.stage)))
            continue
        cls = get_stage_class(n.stage)
        try:
            stages[n.id] = cls(n.params).bind(n.id, derive_seed(ps.seed, n.id))
        except ValidationError as e:
            for err in e.errors():
                problems.append(Problem(node=n.id, field=f"params.{_loc(err)}", message=_param_message(cls, err)))
        except ValueError as e:
            problems.append(Problem(node=n.id, field="params", message=str(e)))
        if not n.inputs:
            problems.append(Problem(node=n.id, field="inputs", message="a node needs at least one input"))
        for i in n.inputs:
            if i not in known:
                problems.append(Problem(node=n.id, field="inputs", message=f"unknown input or node '{i}'"))
            if i == n.id:
                problems.append(Problem(node=n.id, field="inputs", message="a node cannot read itself"))
        if n.id in stages:
            st = stages[n.id]
            for x in st.extra_inputs():
                if x not in known:
                    problems.append(Problem(node=n.id, field="params", message=f"references unknown node '{x}'"))
            if st.kind == "map" and len(n.inputs) > 1 and not st.joins_inputs:
                problems.append(
                    Problem(node=n.id, field="inputs", message="a map stage takes one input; join branches with `union`")
                )

    for name, out in ps.outputs.items():
        if out.node not in known:
            problems.append(Problem(node=name, field="node", message=f"output of unknown node '{out.node}'"))
    problems += _name_problems(ps) + _output_path_problems(ps, check_inputs)

    # Cycles (over data inputs and extra inputs such as a DSIR target node).
    edges = {n.id: [i for i in n.inputs if i in ids] for n in ps.nodes}
    for nid, st in stages.items():
        edges[nid] += [x for x in st.extra_inputs() if x in ids]
    cyc = _find_cycle(edges)
    if cyc:
        problems.append(Problem(node=cyc[0], message="cycle: " + " -> ".join(cyc)))

    # Required columns, propagated through the DAG (nodes on a cycle are skipped).
    if True:
        provided: dict[str, set[str] | None] = {}
        for name, inp in ps.inputs.items():
            cols = _schema_columns(inp) if check_inputs else None
            if cols is not None:
                cols = cols | {schema.ID, schema.TEXT}
                if inp.domain:
                    cols.add(schema.DOMAIN)
                if inp.text_column not in cols - {schema.TEXT} and inp.text_column != schema.TEXT:
                    problems.append(
                        Problem(node=name, field="text_column", message=f"column '{inp.text_column}' not in input files")
                    )
            provided[name] = cols
        text_cols = {name: inp.text_column for name, inp in ps.inputs.items()}
        for nid in _topo(edges):
            n = ids[nid]
            ups = [provided.get(i) for i in n.inputs]
            st = stages.get(nid)
            cols: set[str] | None
            if any(u is None for u in ups):
                cols = None
            else:
                joins = st is not None and st.joins_inputs
                cols = set.intersection(*ups) if joins and ups else set().union(*ups)
            if st is not None and cols is not None:
                missing = st.required_columns() - cols
                for c in sorted(missing):
                    problems.append(
                        Problem(node=nid, field="inputs", message=f"requires column '{c}' that no upstream node provides")
                    )
            if cols is not None and st is not None:
                cols = cols | st.provided_columns()
            provided[nid] = cols
            # A join sees one text column: every branch must use the same one.
            data_ins = st.data_inputs(n.inputs) if st is not None and st.kind == "barrier" else n.inputs
            tcs = {text_cols[i] for i in data_ins if i in text_cols}
            text_cols[nid] = sorted(tcs)[0] if tcs else schema.TEXT
            if len(tcs) > 1:
                problems.append(Problem(node=nid, field="inputs", message=(
                    f"joins inputs with different text columns ({', '.join(sorted(tcs))}); "
                    "give every input the same text_column")))

    if problems:
        raise SpecError(problems)
    return ps


def spec_warnings(ps: PipelineSpec) -> list[str]:
    """Each node's parameter warnings (valid, but likely a mistake), as ``node 'id': ...``."""
    out = []
    for n in ps.nodes:
        try:
            params = get_stage_class(n.stage).Params.model_validate(n.params)
        except (KeyError, ValueError):
            continue  # validate_spec reports it
        out += [f"node '{n.id}': {w}" for w in params.spec_warnings()]
    return out


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _name_problems(ps: PipelineSpec) -> list[Problem]:
    """Node ids and input names become directory names in the job directory."""
    out = []
    for name in list(ps.inputs) + [n.id for n in ps.nodes]:
        if not _SAFE_NAME.match(name):
            out.append(Problem(node=name, field="id", message="use letters, digits, '_', '-' and '.' only "
                               "(not starting with '.' or '-'): ids name directories in the job directory"))
    return out


def _output_path_problems(ps: PipelineSpec, check_inputs: bool) -> list[Problem]:
    """Outputs must not share a directory or overwrite (or be re-read as) input files."""
    out: list[Problem] = []
    seen: dict[Path, str] = {}
    for name, o in ps.outputs.items():
        if "://" in o.path:
            continue
        d = Path(o.path).resolve()
        other = seen.get(d)
        if other is not None and ps.outputs[other].node != o.node:
            out.append(Problem(node=name, field="path", message=f"same path as output '{other}' (its part files would be overwritten)"))
        seen.setdefault(d, name)
        if not check_inputs:
            continue
        for iname, inp in ps.inputs.items():
            paths = inp.path if isinstance(inp.path, list) else [inp.path]
            if any("://" in p for p in paths):
                continue
            files = [Path(f).resolve() for f in resolve_input_files(inp.path)]
            inside_dir_input = any(Path(p).is_dir() and d.is_relative_to(Path(p).resolve()) for p in paths)
            if inside_dir_input or any(f.parent == d for f in files):
                out.append(Problem(node=name, field="path", message=(
                    f"output directory {d} overlaps input '{iname}': a run would overwrite or delete its files "
                    "or read its own output back")))
    return out


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in edges.get(u, []):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if state.get(v) is None:
                r = visit(v)
                if r:
                    return r
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(edges):
        if state.get(u) is None:
            r = visit(u)
            if r:
                return r
    return None


def _topo(edges: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()

    def visit(u: str) -> None:
        if u in seen:
            return
        seen.add(u)
        for v in edges.get(u, []):
            visit(v)
        out.append(u)

    for u in edges:
        visit(u)
    return out


def spec_to_json(ps: PipelineSpec) -> str:
    return json.dumps(ps.model_dump(mode="json"), indent=2, sort_keys=True)

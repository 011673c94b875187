"""DAG planning: fuse map chains into steps and place barriers explicitly.

A *step* reads one or more sources (an input's files, or earlier steps' part files),
optionally applies a barrier's fitted state, runs a fused chain of map stages and
materializes one node's kept rows as Parquet parts. A node is materialized when it is
read by a barrier or a join, has more or fewer than one consumer, or is a named output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from curate.spec import PipelineSpec, build_stage


@dataclass
class Step:
    """One unit of execution: sources -> [barrier apply] -> fused maps -> materialized node."""

    id: str
    output: str
    sources: list[str]
    source_kind: str  # "input" (read an input's files) or "nodes" (read materialized parts)
    barrier: str | None = None
    chain: list[str] = field(default_factory=list)
    uses_model: bool = False
    depends_on: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> list[str]:
        return ([self.barrier] if self.barrier else []) + self.chain


@dataclass
class Plan:
    steps: list[Step]
    materialized: list[str]
    consumers: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {"steps": [asdict(s) | {"nodes": s.nodes} for s in self.steps], "materialized": self.materialized}


def make_plan(spec: PipelineSpec) -> Plan:
    """Plan a validated spec (see module docstring for the rules)."""
    nodes = {n.id: n for n in spec.nodes}
    stages = {n.id: build_stage(n, spec.seed) for n in spec.nodes}
    consumers: dict[str, list[str]] = {k: [] for k in list(spec.inputs) + list(nodes)}
    for n in spec.nodes:
        for i in n.inputs:
            consumers[i].append(n.id)
        for x in stages[n.id].extra_inputs():
            consumers[x].append(n.id)
    outputs = {o.node for o in spec.outputs.values()}

    def needs_mat(x: str) -> bool:
        cons = consumers[x]
        if x in outputs or len(cons) != 1:
            return True
        c = cons[0]
        return stages[c].kind == "barrier" or len(nodes[c].inputs) > 1 or x in stages[c].extra_inputs()

    materialized = [x for x in list(spec.inputs) + list(nodes) if needs_mat(x)]
    # An input with no consumer and no output is only ingested when it is materialized;
    # inputs are always ingested once (its rejects are recorded) if they are consumed.
    steps: dict[str, Step] = {}
    for x in materialized:
        if x in spec.inputs and not consumers[x] and x not in outputs:
            continue
        chain: list[str] = []
        cur = x
        while True:
            if cur in spec.inputs:
                step = Step(id=x, output=x, sources=[cur], source_kind="input", chain=chain)
                break
            st = stages[cur]
            node = nodes[cur]
            if st.kind == "barrier":
                step = Step(
                    id=x, output=x, sources=st.data_inputs(node.inputs), source_kind="nodes", barrier=cur, chain=chain
                )
                step.depends_on = list(dict.fromkeys(node.inputs + st.extra_inputs()))
                break
            chain.insert(0, cur)
            if len(node.inputs) > 1:
                step = Step(id=x, output=x, sources=list(node.inputs), source_kind="nodes", chain=chain)
                break
            up = node.inputs[0]
            if up in materialized:
                step = Step(id=x, output=x, sources=[up], source_kind="nodes", chain=chain)
                break
            cur = up
        if step.source_kind == "nodes" and not step.depends_on:
            step.depends_on = list(step.sources)
        step.uses_model = any(stages[n].uses_model for n in step.nodes)
        steps[x] = step

    order: list[Step] = []
    seen: set[str] = set()

    def visit(s: Step) -> None:
        if s.id in seen:
            return
        seen.add(s.id)
        for d in s.depends_on:
            if d in steps:
                visit(steps[d])
        order.append(s)

    for s in steps.values():
        visit(s)
    return Plan(steps=order, materialized=materialized, consumers=consumers)

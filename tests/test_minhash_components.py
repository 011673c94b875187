"""Distributed connected components agree with scipy on random graphs."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_cc

from curate.components import connected_components, write_edges
from curate.fit import FitContext, LocalTaskRunner


def _ctx(tmp_path):
    return FitContext(runner=LocalTaskRunner(), state_dir=tmp_path / "state", scratch_dir=tmp_path / "scratch",
                      seed=1, node_id="cc")


def _labels(files):
    node, root = [], []
    for f in files:
        t = pq.read_table(f)
        node.append(t.column("node").to_numpy())
        root.append(t.column("root").to_numpy())
    return np.concatenate(node), np.concatenate(root)


@pytest.mark.parametrize("seed,n,m,nfiles,parts", [(0, 300, 250, 3, 4), (1, 800, 760, 3, 5), (2, 500, 50, 1, 2),
                                                   (3, 600, 1800, 3, 3)])
def test_cc_matches_scipy(tmp_path, seed, n, m, nfiles, parts):
    rng = np.random.default_rng(seed)
    # sparse random ids (like 64-bit doc hashes), including negative int64 values
    ids = rng.choice(np.arange(-10**12, 10**12, 7919), size=n, replace=False)
    ia, ib = rng.integers(0, n, m), rng.integers(0, n, m)
    files = []
    for k, idx in enumerate(np.array_split(np.arange(m), nfiles)):
        files.append(write_edges(tmp_path / f"e{k}.parquet", ids[ia[idx]], ids[ib[idx]]))
    out, stats = connected_components(_ctx(tmp_path), files, parts)
    node, root = _labels(out)
    _ncomp, lab = scipy_cc(coo_matrix((np.ones(m), (ia, ib)), shape=(n, n)), directed=False)
    present = np.unique(np.r_[ia, ib])
    # every node of an edge labelled exactly once (self-loop-only nodes are their own component)
    loops_only = np.setdiff1d(present, np.unique(np.r_[ia[ia != ib], ib[ia != ib]]))
    expect_nodes = np.setdiff1d(present, loops_only)
    assert len(node) == len(np.unique(node)) == len(expect_nodes)
    assert set(node.tolist()) == set(ids[expect_nodes].tolist())
    # same partition as scipy, and the root is the component minimum
    for comp in np.unique(lab[expect_nodes]):
        members = ids[expect_nodes[lab[expect_nodes] == comp]]
        roots = {int(r) for nd, r in zip(node, root) if int(nd) in set(members.tolist())}
        assert roots == {int(members.min())}
    assert stats["rounds"] >= 1


def test_cc_independent_of_file_split(tmp_path):
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 400, 600), rng.integers(0, 400, 600)
    f1 = [write_edges(tmp_path / "one.parquet", a, b)]
    f2 = [write_edges(tmp_path / f"s{k}.parquet", a[k::3], b[k::3]) for k in range(3)]
    n1, r1 = _labels(connected_components(_ctx(tmp_path / "x"), f1, 3)[0])
    n2, r2 = _labels(connected_components(_ctx(tmp_path / "y"), f2, 5)[0])
    o1, o2 = np.argsort(n1), np.argsort(n2)
    assert np.array_equal(n1[o1], n2[o2]) and np.array_equal(r1[o1], r2[o2])


def test_cc_long_chain_converges(tmp_path):
    n = 1000
    perm = np.random.default_rng(0).permutation(n)
    files = [write_edges(tmp_path / "c.parquet", perm[:-1], perm[1:])]
    out, stats = connected_components(_ctx(tmp_path), files, 4)
    node, root = _labels(out)
    assert len(node) == n and set(root.tolist()) == {0}
    assert stats["rounds"] < 40


def test_cc_empty(tmp_path):
    out, stats = connected_components(_ctx(tmp_path), [], 2)
    assert out == [] and stats["rounds"] == 0

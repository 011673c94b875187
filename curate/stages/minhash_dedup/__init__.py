"""MinHash near-duplicate removal as a barrier stage (``minhash_dedup``).

The fit runs entirely through distributed primitives (nothing pulls the corpus to the
driver), one module per phase:

1. :mod:`.signatures` (``ctx.map_files``): per part file, MinHash signatures cut into
   band keys and the distinct-shingle count (no shingle set is written).
2. :mod:`.lsh` (``ctx.shuffle`` by band key, a few bands per pass): every bucket links
   its minimum member to each other member (candidate edges).
3. connected components of the candidate edges (:mod:`curate.components`, large-star /
   small-star rounds).
4. :mod:`.keep` (two shuffles): members meet their metadata and, when verifying (the
   default, :mod:`.verification`), their input text and their component's candidate edges;
   then each component recomputes its members' shingle sets, keeps the edges whose exact
   Jaccard is ``>= verify_jaccard``, splits into verified clusters and chooses its kept
   document(s); every removed document truly matches the one kept for it when verifying,
   and indexed documents always win.

:mod:`.index` reads and appends the persisted index (``against_index`` /
``write_index``); :mod:`.decisions` holds the fitted decisions that ``process`` looks
rows up in; :mod:`.layout` is what the phases share (node ids, column names, typed
shuffle sources, the shingle-set encoding); :mod:`.stage` is the stage itself.

Documents without any word (empty or whitespace/punctuation only) have no shingle and
no signature: they are never near-duplicates and always pass (``dup_cluster`` = own
id, size 1). A document with fewer than ``ngram`` words has a single shingle made of
all its words, so identical short documents are duplicates of each other.
"""

from curate.stages.minhash_dedup.decisions import DecisionTable
from curate.stages.minhash_dedup.index import (
    INDEX_FORMAT,
    INDEX_FORMAT_VERSION,
    READABLE_INDEX_VERSIONS,
    read_index_manifest,
)
from curate.stages.minhash_dedup.params import MinHashDedupParams, parse_keep
from curate.stages.minhash_dedup.stage import REASON, MinHashDedup

__all__ = [
    "INDEX_FORMAT",
    "INDEX_FORMAT_VERSION",
    "READABLE_INDEX_VERSIONS",
    "REASON",
    "DecisionTable",
    "MinHashDedup",
    "MinHashDedupParams",
    "parse_keep",
    "read_index_manifest",
]

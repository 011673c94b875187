"""DSIR kernels: hashed n-gram features, importance weights, KL diagnostics, Gumbel top-k.

DSIR is *Data Selection for Language Models via Importance Resampling* (Xie, Santurkar, Ma
and Liang, 2023, arXiv:2302.03169). Behaviour follows the authors' ``data-selection`` 1.0.3
package (``HashedNgramDSIR``), re-implemented from its description (see the README section
"DSIR and perplexity"):

* text is lower-cased (Python ``str.lower``) and split with the WordPunct rule
  ``\\w+|[^\\w\\s]+`` (maximal runs of word characters, or of characters that are neither
  word nor space) -- no NLTK needed;
* every unigram and every k-gram (k = 2..n, tokens joined by one space) goes to bucket
  ``int(sha256(utf8).hexdigest(), 16) % num_buckets``; all orders share one bucket space;
* ``log w(x) = f(x) . (log(p_target + 1e-8) - log(p_raw + 1e-8))`` with raw counts f(x).

Modules, one job each:

* :mod:`.wordpunct` -- WordPunct character classes and the pure-Python tokenizer;
* :mod:`.sha256_kernel` -- SHA-256 reduced mod the bucket count, in numba;
* :mod:`.ngram_kernel` -- the numba batch kernel: tokenize, hash and count or score, with
  a per-thread n-gram -> bucket cache;
* :mod:`.featurizer` -- :class:`~.featurizer.HashedNgramFeaturizer` over Arrow batches and
  the pure-Python reference features it is tested against;
* :mod:`.weights` -- target and raw distributions and the per-bucket log importance ratio;
* :mod:`.kl` -- the KL-reduction diagnostic of the paper;
* :mod:`.gumbel_topk` -- seeded Gumbel keys and the (key, tie) order of top-k selection.

The ``dsir_resample`` stage (:mod:`curate.stages.dsir_resample`) wires these into a fit.
"""

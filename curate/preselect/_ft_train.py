"""Child process that runs ``fasttext.train_supervised`` (see :func:`train_supervised_isolated`).

Usage: ``python _ft_train.py ARGS.json`` (a plain script: it imports only fastText) where the JSON holds
``{"output": path, "kwargs": {...train_supervised keyword arguments...}}``. Exit code 3
with a one-line message on stderr when fastText fails.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    import fasttext

    try:
        model = fasttext.train_supervised(**spec["kwargs"])
    except (RuntimeError, ValueError) as e:
        sys.stderr.write(f"{e}\n")
        return 3
    model.save_model(spec["output"])
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess
    sys.exit(main(sys.argv))

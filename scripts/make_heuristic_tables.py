"""Regenerate curate/data/heuristic_classes.json (the code point flags of the heuristic
signal kernels). Needs the `regex` package (maintenance only):

    python scripts/make_heuristic_tables.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.text.heuristics.charclass import _DATA, generate_class_runs


def main() -> None:
    data = generate_class_runs()
    body = ",\n".join(json.dumps(r) for r in data["runs"])
    head = {k: v for k, v in data.items() if k != "runs"}
    text = json.dumps(head)[:-1] + ',\n "runs": [\n' + body + "\n]}\n"
    _DATA.write_text(text)
    print(f"wrote {_DATA} ({len(data['runs'])} runs)")


if __name__ == "__main__":
    main()

"""Write every ```yaml block of README.md into a directory, one file each, and print one line
per block: its kind (workflow or pre-commit) and its path, for .ci/run's linters.

Usage: python .ci/readme_yaml.py OUTDIR [README]
A block that is neither a whole workflow (with `jobs:`) nor a whole pre-commit configuration
(with `repos:`) is an error: a fragment cannot be linted honestly.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(readme: str) -> list[tuple[str, str]]:
    """(kind, text) of every yaml block, in order."""
    found = []
    for match in BLOCK.finditer(readme):
        text = match.group(1)
        if re.search(r"^jobs:", text, re.MULTILINE):
            found.append(("workflow", text))
        elif re.search(r"^repos:", text, re.MULTILINE):
            found.append(("pre-commit", text))
        else:
            line = readme[: match.start()].count("\n") + 1
            raise SystemExit(f"README.md:{line}: a yaml block that is neither a whole workflow "
                             "nor a whole pre-commit configuration")  # fmt: skip
    return found


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    readme = Path(argv[2] if len(argv) > 2 else "README.md").read_text(encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    for n, (kind, text) in enumerate(blocks(readme), 1):
        path = out / (f"readme-{n}.yml" if kind == "workflow" else f"readme-{n}-pre-commit.yaml")
        path.write_text(text, encoding="utf-8")
        print(kind, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

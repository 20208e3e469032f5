"""Print the requirements pyproject.toml declares, [project] dependencies and then those of the named extras, one a
line (a pip requirements file).

The images install these in a layer of their own, before the code is copied, so that an edit of components/ or
pipelines/ reinstalls nothing but the project itself (`pip install --no-deps .`); only an edit of pyproject.toml or
of requirements.lock reinstalls the dependencies. What to install comes from here (the CPU image takes no extra),
the version of each, transitive ones included, from the lock (`make lock`), given as constraints:

    python docker/requirements.py pyproject.toml gpu > requirements.txt
    pip install -c requirements.lock -r requirements.txt

Standard library only: it runs in the bare base image (Python >= 3.11, tomllib).
"""
from __future__ import annotations

import sys

import tomllib


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    """The dependencies of `pyproject` (a path) and of its `extras`, in the order they are declared."""
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = sorted(set(extras) - set(optional))
    if unknown:
        raise SystemExit(f"{pyproject} has no extra {', '.join(unknown)} (it has: {', '.join(sorted(optional))})")
    found = list(project.get("dependencies", []))
    for extra in extras:
        found += [r for r in optional[extra] if r not in found]
    return found


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(f"usage: {sys.argv[0]} PYPROJECT [EXTRA ...]")
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))

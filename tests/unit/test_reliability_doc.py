"""RELIABILITY.md names, in each row, the test that tries the fault or attack: every one it names exists, so that
`make test` runs it."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_row_names_tests_that_exist():
    rows = [line for line in (REPO / "RELIABILITY.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| fault |") and not line.startswith("| attack")]
    assert len(rows) >= 30
    named = 0
    for row in rows:
        refs = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", row.split(" | ")[1])
        assert refs, f"this row names no test: {row[:80]}"
        for path, name in refs:
            source = (REPO / path).read_text(encoding="utf-8")
            assert not name or re.search(rf"^def {name}\(", source, re.M), f"{path} has no test {name}"
            named += 1
    assert named >= len(rows)
    assert "FIG_" not in (REPO / "RELIABILITY.md").read_text(encoding="utf-8")

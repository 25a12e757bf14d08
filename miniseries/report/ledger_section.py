"""The report's raise-the-line section: the ledger `miniseries ablate options` wrote into the
project (PROJECT/raise-the-line.json), as one table with what it is and the scale caution."""

import json
from pathlib import Path

from miniseries.report.render import Section


def ledger_sections(project: Path) -> list[Section]:
    """The raise-the-line ledger, where `miniseries ablate options` wrote one in this project."""
    path = Path(project) / "raise-the-line.json"
    if not path.exists():
        return []
    from miniseries.study.ledger import CAUTION, ledger_table  # the fits: only when there is one

    result = json.loads(path.read_text())
    s = Section("ledger", "Raise the line: what each recipe change is worth")
    s.p(
        "Each change against the base on the same isoFLOP design (`miniseries ablate options`): "
        "worth = base's compute over the compute the change needs for base's optimal loss, 90% "
        "confidence intervals of the fitted laws (paired bootstrap), at the compared range's "
        "start, middle and end; Δa, Δb under total params. docs/raise-the-line.md says how it is "
        "decided."
    )
    s.table(*ledger_table(result))
    s.p(CAUTION)
    return [s]

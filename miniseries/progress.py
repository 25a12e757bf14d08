"""The one progress bar every long job shows (corpus build, tokenizer, training, sweeps, CORE).

A rich bar on stderr with the description, the bar, done/total and the time; extra columns (loss,
FLOPs, ETA) are passed by the caller. It draws nothing when disabled or when stderr is not a
terminal, so tests and log files stay clean.
"""

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


def progress_bar(
    enabled: bool = True,
    *columns: ProgressColumn | str,
    transient: bool = False,
    auto_refresh: bool = True,
) -> Progress:
    """A rich ``Progress``: description, bar, done/total, then ``columns`` (default: elapsed time).

    ``auto_refresh=False`` for processes that fork workers (no refresh thread to inherit);
    ``transient=True`` to clear the bar when it stops.
    """
    extra = columns or (TimeElapsedColumn(),)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        transient=transient,
        auto_refresh=auto_refresh,
        console=Console(stderr=True),
        disable=not (enabled and sys.stderr.isatty()),
    )

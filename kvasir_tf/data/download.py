"""Download helper for the public Kvasir v2 archive (about 2.3 GB); never used by tests.

Simula publishes no checksum for kvasir-dataset-v2.zip, so none is hard-coded: the
download is verified as a complete, readable zip holding the 8 class folders, and a
user who has a trusted SHA-256 can pass it (``--sha256``) to have it checked as well.
"""
import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from kvasir_tf.data.classes import KVASIR_V2_CLASSES, KVASIR_V2_DIRNAME
from kvasir_tf.errors import DataError

KVASIR_V2_URL = "https://datasets.simula.no/downloads/kvasir/kvasir-dataset-v2.zip"
# No published checksum (see module docstring); None means "verify zip integrity only".
KVASIR_V2_SHA256 = None
ARCHIVE_NAME = "kvasir-dataset-v2.zip"
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, part: Path, progress: bool):
    """Download into ``part``, resuming from its current size when the server allows it."""
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        resp = urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # already complete
            return
        raise DataError(f"download of {url} failed (HTTP {exc.code} {exc.reason}); try again later "
                        f"or download it by hand and pass the zip with --archive") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot reach {url} ({reason}); check the internet connection, or download "
                        f"the zip elsewhere and pass it with --archive") from None
    with resp:
        resumed = start and getattr(resp, "status", 200) == 206
        mode = "ab" if resumed else "wb"
        total = resp.headers.get("Content-Length")
        total = int(total) + (start if resumed else 0) if total else None
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, initial=start if resumed else 0, unit="B", unit_scale=True,
                       desc=ARCHIVE_NAME)
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    f.write(block)
                    if bar:
                        bar.update(len(block))
        except OSError as exc:
            raise DataError(f"download of {url} interrupted ({exc}); run the same command again "
                            f"to resume from {part}") from None
        finally:
            if bar:
                bar.close()


def verify_archive(archive: Path, sha256=None) -> None:
    """Raise DataError unless ``archive`` is a complete zip with the Kvasir v2 classes."""
    if sha256:
        got = _sha256(archive)
        if got.lower() != sha256.lower():
            raise DataError(f"{archive}: SHA-256 {got} does not match the expected {sha256}; "
                            "delete it and download again")
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: not a complete zip archive ({exc}); delete it and download "
                        "again") from None
    tops = {n.split("/")[1] for n in names if n.startswith(KVASIR_V2_DIRNAME + "/") and n.count("/") >= 2}
    missing = [c for c in KVASIR_V2_CLASSES if c not in tops]
    if missing:
        raise DataError(f"{archive}: does not look like the Kvasir v2 archive (missing "
                        f"{KVASIR_V2_DIRNAME}/{missing[0]}/ and {len(missing) - 1} more); check the URL")


def download_kvasir_v2(dest, url: str = KVASIR_V2_URL, sha256=KVASIR_V2_SHA256, *, extract=True,
                       progress=True) -> Path:
    """Download (resumable), verify and unpack Kvasir v2 into ``dest``.

    Returns ``dest/kvasir-dataset-v2`` (or the verified zip with ``extract=False``).
    An interrupted download leaves ``<zip>.part``; running again resumes it.
    """
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / KVASIR_V2_DIRNAME
    if extract and target.is_dir() and any(target.iterdir()):
        return target
    archive = dest / ARCHIVE_NAME
    if not archive.is_file():
        part = archive.with_name(ARCHIVE_NAME + ".part")
        _fetch(url, part, progress)
        part.replace(archive)
    verify_archive(archive, sha256)
    if not extract:
        return archive
    tmp = dest / (KVASIR_V2_DIRNAME + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: extraction failed ({exc}); check free disk space (~2.5 GB) "
                        "and run again") from None
    (tmp / KVASIR_V2_DIRNAME).replace(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target

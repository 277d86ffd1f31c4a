"""fetch: download a dataset's official file with torchvision, or say plainly why not and what to do instead."""

from __future__ import annotations

from pathlib import Path


def fetch(*, url: str, md5: str, data_dir: Path, filename: str, extract: bool, download: bool, not_found: str) -> None:
    """For data not found in data_dir: raise FileNotFoundError(not_found) without `download`, else fetch url there.

    The file is checked against md5 and saved as data_dir/filename (data_dir is created); extract=True unpacks the
    archive into data_dir as well. The caller looks for the data again afterwards.
    """
    if not download:
        raise FileNotFoundError(not_found)
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / filename
    try:
        if extract:
            download_and_extract_archive(url, download_root=str(data_dir), filename=filename, md5=md5)
        else:
            download_url(url, root=str(data_dir), filename=filename, md5=md5)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; torchvision raises RuntimeError on a bad md5
        target.unlink(missing_ok=True)  # no partial archive is left to be mistaken for the data
        raise ConnectionError(
            f"could not download {url} ({type(e).__name__}: {e}). Fetch that file by hand and put it at "
            f"{target} (md5 {md5}), or pass data_dir= a folder that already holds the data, with download=False."
        ) from e

"""fetch: download a dataset's official file with torchvision (or refuse, with the dataset's own message)."""

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
    if extract:
        download_and_extract_archive(url, download_root=str(data_dir), filename=filename, md5=md5)
    else:
        download_url(url, root=str(data_dir), filename=filename, md5=md5)

"""Where galppl finds the real SDSS extracts (never downloaded, never copied into the repo).

The extracts described in ``PROVENANCE.md`` live next to the repository, in
``<repo>/../shared/data/sdss``. A user's fresh clone has no such folder, so everything
that needs it asks :func:`sdss_data_dir` and copes with ``None``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GALPPL_SDSS_DATA"

# galppl/data/paths.py -> parents[2] is the repository root (the folder holding galppl/).
_REPO_ROOT = Path(__file__).resolve().parents[2]


def sdss_data_dir() -> Path | None:
    """The folder holding the real SDSS extracts, or ``None`` when it is absent.

    Looks at the environment variable ``GALPPL_SDSS_DATA`` first (set it to point at a
    copy elsewhere); otherwise at ``<repo root>/../shared/data/sdss``. A path that is
    named but is not an existing directory counts as absent.
    """
    named = os.environ.get(ENV_VAR)
    folder = Path(named).expanduser() if named else _REPO_ROOT.parent / "shared" / "data" / "sdss"
    folder = folder.resolve()
    return folder if folder.is_dir() else None

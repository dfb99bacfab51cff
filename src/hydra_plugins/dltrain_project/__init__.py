"""Hydra search path plugin: the user's configs (``--config-dir``, ``DLTRAIN_CONFIG_PATH``,
``./configs``) go in front of dl-train's built-in configs, so a new option joins its
group and one with a built-in name replaces it (``dltrain/config/project.py``).

It acts only for dl-train's own apps (the search path's primary entry is dl-train's
config folder): other Hydra apps in the same environment are left alone. Hydra imports
this on every start, so it imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin


class DltrainProjectSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        try:
            from dltrain.config.paths import CONFIG_DIR
            from dltrain.config.project import PROVIDER, user_config_dirs
        except ImportError:  # another dltrain on the path (an older checkout) without them
            return

        builtin = Path(CONFIG_DIR).resolve()
        main = [e for e in search_path.get_path() if e.provider == "main"]
        if not main or Path(main[0].path).resolve() != builtin:
            return
        for folder in user_config_dirs():
            if folder != builtin:
                main_entry = SearchPathQuery(provider="main")
                search_path.prepend(PROVIDER, f"file://{folder}", anchor=main_entry)

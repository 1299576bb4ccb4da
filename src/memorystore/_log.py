"""The ``memorystore`` logger, switched on by ``DEBUG=memorystore`` like node's ``debug``.

``DEBUG`` is read once, at import: a comma- or space-separated list of
names, where ``*`` matches anything (``*``, ``memory*``) and a leading ``-``
excludes (``*,-memorystore``).  When it selects ``memorystore`` the logger
gets a stderr handler and the DEBUG level; otherwise nothing is configured
and the logger follows the application's logging setup.

The store logs counts and reasons only, never a session id or session
contents, and never on the per-request paths (get/set/touch/destroy), so
logging costs nothing when it is off.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping

__all__ = ["LOGGER_NAME", "configure_from_env", "debug_selected", "logger"]

LOGGER_NAME = "memorystore"
logger = logging.getLogger(LOGGER_NAME)

_HANDLER_MARK = "_memorystore_debug_handler"


def _pattern(name: str) -> re.Pattern[str]:
    # node debug's wildcard: '*' matches any run of characters.
    return re.compile("^" + ".*".join(re.escape(part) for part in name.split("*")) + "$")


def debug_selected(spec: str | None, name: str = LOGGER_NAME) -> bool:
    """Whether a ``DEBUG`` value selects ``name`` (node ``debug`` rules: ``*`` and ``-skip``)."""
    if not spec:
        return False
    selected = False
    for word in re.split(r"[\s,]+", spec):
        if not word:
            continue
        if word.startswith("-"):
            if _pattern(word[1:]).match(name):
                return False
        elif _pattern(word).match(name):
            selected = True
    return selected


def configure_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Turn on DEBUG output to stderr when ``DEBUG`` selects memorystore; return whether it did.

    Idempotent: the stderr handler is added at most once.
    """
    env = os.environ if environ is None else environ
    if not debug_selected(env.get("DEBUG")):
        return False
    if not any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return True


configure_from_env()

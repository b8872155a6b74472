"""Import kserve without letting it read our command line.

``kserve.model_server`` parses ``sys.argv`` with argparse at import time (its own flags, with prefix
matching); ``twin serve``'s options must never be mistaken for them.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_kserve() -> ModuleType:
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve
    finally:
        sys.argv = saved
    return kserve

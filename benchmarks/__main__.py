"""``python -m benchmarks <name> [args]`` runs ``benchmarks/<name>.py``'s ``main(argv)``."""

import importlib
import pkgutil
import sys
from pathlib import Path


def _available():
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = _available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m benchmarks <name> [--help]\n\nbenchmarks: " + ", ".join(names))
        return 0
    if argv[0] not in names:
        print(f"unknown benchmark {argv[0]!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{argv[0]}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())

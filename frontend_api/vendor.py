"""Copy the front-end files the API serves from npm packages into the package (at build).

    python -m frontend_api.vendor        (the Makefile runs it after `npm install`)

Swagger UI (npm `swagger-ui-dist`, pinned in package.json) is served at /docs from
`frontend_api/static/vendor/swagger-ui/`, so the docs work with no network.  The folder is
generated, not committed; when it is missing the app serves the same files straight from
`node_modules/` of a source checkout.  This module must never download anything.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Final

PACKAGE_DIR: Final = Path(__file__).resolve().parent
STATIC_DIR: Final = PACKAGE_DIR / "static"
VENDOR_DIR: Final = STATIC_DIR / "vendor"
NODE_MODULES: Final = PACKAGE_DIR.parent / "node_modules"

SWAGGER_FILES: Final = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def swagger_dir() -> Path | None:
    """Where the Swagger UI files are: the vendored copy, else node_modules, else None."""
    for candidate in (VENDOR_DIR / "swagger-ui", NODE_MODULES / "swagger-ui-dist"):
        if all((candidate / name).is_file() for name in SWAGGER_FILES):
            return candidate
    return None


def vendor(node_modules: Path = NODE_MODULES, dest: Path = VENDOR_DIR) -> list[Path]:
    """Copy the served files out of `node_modules`; the paths written."""
    source = node_modules / "swagger-ui-dist"
    target = dest / "swagger-ui"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SWAGGER_FILES:
        if not (source / name).is_file():
            raise FileNotFoundError(f"{source / name} is missing: run `npm install` first")
        shutil.copyfile(source / name, target / name)
        written.append(target / name)
    return written


def main() -> int:
    try:
        written = vendor()
    except FileNotFoundError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"vendored {len(written)} files into {VENDOR_DIR}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m monai_mlip.label init DIR``: create a MONAI Label app folder (see :mod:`monai_mlip.label.app_folder`)."""

from __future__ import annotations

import argparse
import sys

from monai_mlip.label.app_folder import create_app_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_mlip.label", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser(
        "init", help="create an app folder (its main.py); the server keeps model/ and logs/ there"
    )
    init.add_argument("folder", help="the app folder to pass as --app to monailabel's start_server")
    args = parser.parse_args(argv)
    folder = create_app_folder(args.folder)
    print(f"created {folder / 'main.py'}: start the server with --app {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

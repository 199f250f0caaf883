"""The ``pybuild`` console entry point: answers a no-op rebuild from its memo before anything heavy
is imported (see ``builder.build.memo``), else runs the command line."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if "build" in args[:3] or (args and args[0] in ("-t", "--tag", "-q")):
        from .build.memo import fast_build

        probe = args if "build" in args[:3] else ["build"] + args
        code = fast_build(probe)
        if code is not None:
            sys.exit(code)
    if "run" in args[:4] and "--help" not in args and "-h" not in args[:args.index("run")]:
        from .runtime.fastrun import fast_run

        code = fast_run(args)
        if code is not None:
            sys.stdout.flush()
            sys.exit(code)
    from .cli import run

    run()


if __name__ == "__main__":
    main()

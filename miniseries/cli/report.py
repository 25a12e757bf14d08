"""`miniseries report`: report.md + a self-contained report.html (+ figures) from a project."""

import argparse

HELP = """\
Reads PROJECT/miniseries.db and writes PROJECT/report.md, PROJECT/report.html (one file: figures
embedded, no external assets) and the figures in PROJECT/report/*.png. Sections: headline, runs,
scaling laws (under every parameter convention), held-out prediction, crossing detector, training
curves, LR sweep and transfer, CORE per task, calibration and extrapolation, predictions vs
outcomes. A section whose runs don't exist yet names the command that makes them.

  miniseries report --project runs/demo
  miniseries report --project runs/demo --convention matrices --bootstrap 200"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write report.md and a self-contained report.html for a project",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--project", default=".", help="project directory (default: .)")
    p.add_argument("--out", metavar="DIR", help="write the report here instead of PROJECT")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="B",
        help="bootstrap resamples (default 1000)",
    )
    p.add_argument(
        "--convention",
        help="params the headline counts: total | kaplan | matrices (default: the preset's)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from miniseries.errors import UserError
    from miniseries.report.project_report import write_report

    try:
        report = write_report(args.project, args.out, args.bootstrap, args.convention)
    except OSError as e:
        where = args.out or args.project
        raise UserError(
            f"cannot write the report into {where} ({e.strerror}: {e.filename}); "
            "give a writable folder with --out"
        ) from None
    print(f"wrote {report.md_path}")
    print(f"wrote {report.html_path}")
    for line in report.headline:
        print("  " + line.replace("**", ""))
    return 0

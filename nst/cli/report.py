"""`nst report`: build the comparison report (HTML and Markdown) from study results and the
methods comparison (results/<study>/, results/methods/; either is enough)."""

from __future__ import annotations

import argparse

from nst.report.page import DEFAULT_MLFLOW_URL, RECONSTRUCTION_SIZE, RECONSTRUCTION_STEPS

HELP = "build reports/ (index.html, README.md, one page per study) from results/"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--results",
        default="results",
        help="folder of study outputs (results/<study>/) and/or the methods comparison "
        "(results/methods/, `nst methods`)",
    )
    p.add_argument("--out", default="reports", help="folder to write the report into")
    p.add_argument(
        "--mlflow-url-template",
        default=DEFAULT_MLFLOW_URL,
        help="link of a trial's MLflow run; fields {run_id} {experiment_id} {experiment}; "
        "'' for no links (default: %(default)s)",
    )
    p.add_argument(
        "--optuna-dashboard-url",
        default=None,
        help="link of a study in optuna-dashboard, fields {study} {study_id}, "
        "e.g. http://127.0.0.1:8080/dashboard/studies/{study_id}",
    )
    p.add_argument(
        "--reconstruction-size",
        type=int,
        default=RECONSTRUCTION_SIZE,
        help="long side of the layer reconstructions, px (default %(default)s)",
    )
    p.add_argument(
        "--reconstruction-steps",
        type=int,
        default=RECONSTRUCTION_STEPS,
        help="steps per layer reconstruction (0: skip; default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from nst.report.build import build_report

    written = build_report(
        args.results,
        args.out,
        mlflow_url_template=args.mlflow_url_template or None,
        optuna_dashboard_url=args.optuna_dashboard_url,
        reconstruction_size=args.reconstruction_size,
        reconstruction_steps=args.reconstruction_steps,
    )
    pages = sorted(p.name for p in written if p.suffix == ".html")
    print(
        f"wrote {len(written)} files to {args.out}: {', '.join(pages)} (open {args.out}/index.html)"
    )
    return 0

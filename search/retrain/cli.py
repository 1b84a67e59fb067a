"""`fracture-tune retrain`: train the search's winner for the full schedule, test it once, register it.

The flags come from ``RetrainOptions`` (``types.py``), where each option is defined once; an option with a
``command_value`` is offered as no flag, the command passes that value. The handler calls
``fracture_tune.retrain`` with them (a line per epoch while it trains) and prints the report's headline.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.search.retrain.types import Option, RetrainOptions, option_spec

if TYPE_CHECKING:
    from fracture_tune.classifier.evaluation import MetricInterval


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``retrain`` subcommand."""
    parser = subparsers.add_parser(
        "retrain", help="train the best trial for the full schedule, test it once, register it"
    )
    add_option_flags(parser)
    parser.set_defaults(handler=run_retrain_command)


def option_flag(name: str) -> str:
    """The command line's spelling of ``RetrainOptions``' field ``name`` ("": the command sets it itself)."""
    spec = option_spec(name)
    if spec.command_value is not None:
        return ""
    if spec.flag:
        return spec.flag
    default = RetrainOptions.__dataclass_fields__[name].default
    dashed = name.replace("_", "-")
    return f"--no-{dashed}" if default is True else f"--{dashed}"


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``RetrainOptions`` field, its value stored under the field's name."""
    sources = parser.add_mutually_exclusive_group(required=True)
    hints = typing.get_type_hints(RetrainOptions)
    for field in dataclasses.fields(RetrainOptions):
        spec: Option = field.metadata["option"]
        if spec.command_value is not None:
            continue
        target = sources if spec.source else parser
        flag = option_flag(field.name)
        if field.default is True:
            target.add_argument(flag, dest=field.name, action="store_false", help=f"do not: {spec.help}")
            continue
        target.add_argument(
            flag,
            dest=field.name,
            type=_value_type(hints[field.name]),
            default=field.default,
            choices=spec.choices,
            metavar=spec.metavar,
            help=_help_text(spec, field.default),
        )


def options_from_args(args: argparse.Namespace) -> RetrainOptions:
    """The parsed flags as ``RetrainOptions``, with the values the command sets itself."""
    values = {}
    for field in dataclasses.fields(RetrainOptions):
        fixed = option_spec(field.name).command_value
        values[field.name] = getattr(args, field.name) if fixed is None else fixed
    return RetrainOptions(**values)


def options_table() -> str:
    """The options as a markdown table (``docs/model.md`` holds a copy a test keeps in step)."""
    rows = ["| Flag | `retrain(...)` keyword | Default | What it does |", "|---|---|---|---|"]
    for field in dataclasses.fields(RetrainOptions):
        spec = option_spec(field.name)
        default = "—" if field.default is None else f"`{field.default!r}`"
        if spec.config_key:
            default = f"the search's `{spec.config_key}`"
        choices = f" (one of {', '.join(f'`{choice}`' for choice in spec.choices)})" if spec.choices else ""
        flag = option_flag(field.name)
        flag = f"`{flag}`" if flag else f"— (the command: `{spec.command_value!r}`)"
        rows.append(f"| {flag} | `{field.name}` | {default} | {spec.help}{choices} |")
    return "\n".join(rows)


def _value_type(hint: Any) -> type:
    """What argparse makes of a flag's text: the first of int, float, Path in the field's type, else str."""
    members = typing.get_args(hint) or (hint,)
    return next((kind for kind in (int, float, Path) if kind in members), str)


def _help_text(spec: Option, default: Any) -> str:
    if spec.config_key:
        return f"{spec.help} (default: the search's {spec.config_key})"
    if default is None or "default" in spec.help:
        return spec.help
    return f"{spec.help} (default {default})"


def run_retrain_command(args: argparse.Namespace) -> int:
    from fracture_tune.classifier.evaluation import METRIC_NAMES, MetricInterval
    from fracture_tune.search.retrain.retrain import run_retrain

    result = run_retrain(options_from_args(args))
    report = result.report
    optimized, baseline = report.optimized, report.baseline
    print(f"\nretrained {report.source}: test split of {optimized.test_size} images, 95 % CIs")
    print(f"{'metric':<18} {'optimized':<24} {'seed base CNN' if baseline else ''}")
    for name in METRIC_NAMES:
        base = _interval_text(baseline.test[name]) if baseline else ""
        print(f"{name:<18} {_interval_text(optimized.test[name]):<24} {base}")
    threshold = optimized.threshold
    print(
        f"threshold {threshold.value:.4f} (validation sensitivity >= {threshold.target_sensitivity}): "
        f"test sensitivity {_interval_text(threshold.test['sensitivity'])}, "
        f"specificity {_interval_text(threshold.test['specificity'])}"
    )
    if report.rerank:
        entries = ", ".join(f"{entry['trial_id']} {entry['mean']:.4f}" for entry in report.rerank["entries"])
        print(
            f"re-ranked {len(report.rerank['entries'])} finalists by mean {report.rerank['metric']} over "
            f"fresh seeds: {entries}; winner {report.rerank['winner']}"
        )
    if report.ensemble:
        single = report.ensemble["single_best"]["test"]["auroc"]
        difference = report.ensemble["auroc_minus_single_best"]
        print(
            f"ensemble of {len(report.ensemble['members'])}: single best model's test auroc "
            f"{_interval_text(MetricInterval(**single))}; ensemble - single best "
            f"{difference['value']:+.4f} [{difference['lower']:+.4f}, {difference['upper']:+.4f}] (paired)"
        )
    if report.reproduction.get("warning"):
        print(f"warning: {report.reproduction['warning']}")
    if report.registry:
        registry = report.registry
        print(f"registered {registry.uri}; champion: {registry.champion} ({registry.decision})")
        if not registry.champion:
            print(registry.not_champion_note())
    print(f"report: {result.out_dir / 'report.md'}")
    return 0


def _interval_text(interval: MetricInterval) -> str:
    return f"{interval.value:.3f} [{interval.lower:.3f}, {interval.upper:.3f}]"

"""`gke-inference`: render and check whole environments offline (no cloud account, no Pulumi CLI)."""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml

from infra.config import ConfigError
from infra.tooling import diff as diff_mod
from infra.tooling import policy_runner, render, report
from infra.tooling import stacks as stacks_mod
from infra.tooling.plan import Capture, Captured, StackFile, run
from infra.versions import KUBERNETES_MINOR

if TYPE_CHECKING:
    from infra.admission import CRDIndex

EXIT_OK, EXIT_CHECKS, EXIT_CONFIG = 0, 1, 2
"""1: a rendered manifest fails its schema or a mandatory policy is violated."""
REPO_ROOT = Path(__file__).resolve().parents[2]


def _stacks_dir(option: Path | None) -> Path:
    if option is not None:
        return option
    here = Path.cwd() / "stacks"
    return here if here.is_dir() else REPO_ROOT / "stacks"


def _stack_files(stacks: tuple[str, ...], stack_files: tuple[Path, ...], stacks_dir: Path) -> list[Path]:
    paths = [stacks_dir / f"Pulumi.{s}.yaml" for s in stacks] + list(stack_files)
    if not paths:
        paths = sorted(stacks_dir.glob("Pulumi.*.yaml"))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise click.UsageError("no such stack file: " + ", ".join(str(p) for p in missing))
    return paths


def check_policies(
    stack_path: Path, stack_file: StackFile, capture: Capture, beside: list[Captured] | None = None
) -> dict[str, object]:
    """Run the policy pack over the capture (and `beside` it, the other layer's saved plan: policies that join a
    workload to its pool see both layers); the summary's `policies` block."""
    from policies.registry import POLICIES  # the pack imports the catalog and sizing; only `plan` needs it

    config_path = stacks_mod.policy_config_path(stack_path, capture.config.environment, _stacks_dir(None))
    config = policy_runner.load_config(config_path) if config_path else {}
    violations = policy_runner.run([*capture.resources, *(beside or [])], POLICIES, config, stack_file.engine_config())
    return {
        "ran": True,
        "config": config_path.name if config_path else None,
        "mandatory": sum(v.mandatory for v in violations),
        "violations": [v.as_json() for v in violations],
    }


def against_base(stack: str, out: Path, base: Path) -> bool:
    """Compare out/STACK with base/STACK (a previous plan of the stack) into out/STACK/diff.md; print what `up` would
    refuse or break. False when there is such a problem."""
    if not (base / stack / "summary.json").is_file():
        click.echo(f"  no base plan of {stack} in {base}: every resource would be created")
        return True
    comparison = diff_mod.compare(base / stack, out / stack)
    (out / stack / "diff.md").write_text(comparison.report)
    click.echo(f"  against {base / stack}: {comparison.counts} -> {out / stack / 'diff.md'}")
    for problem in comparison.problems:
        click.echo(f"{stack}: pulumi up would fail: {problem}", err=True)
    return not comparison.problems


def plan_one(path: Path, out: Path, crds: CRDIndex | None = None, base: Path | None = None, layer: str | None = None) -> int:
    """Plan one stack file into out/STACK; returns its exit code. With `crds`, every rendered custom
    resource must also pass offline admission against them; with `base`, the plan is compared with the previous
    plan of the stack there (a protected replacement, a colliding replacement or a refused update fails it)."""
    try:
        stack_file = StackFile.read(path)
        saved, beside = None, None
        if layer == "serving":
            outputs = out / stack_file.stack / "platform" / "outputs.json"
            if not outputs.is_file():
                click.echo(f"{path}: no saved platform plan at {outputs}: plan the platform layer first", err=True)
                return EXIT_CONFIG
            saved = json.loads(outputs.read_text())
            platform = json.loads((outputs.parent / "resources.json").read_text())
            beside = [Captured.from_json(r) for r in platform]
        capture = run(stack_file, layer=layer, platform_outputs=saved)
        policies = check_policies(path, stack_file, capture, beside)
    except (ConfigError, ValueError) as error:
        click.echo(f"{path}: invalid configuration\n{error}", err=True)
        return EXIT_CONFIG
    secrets = stacks_mod.secrets_check(stack_file.secrets_provider, stack_file.encrypted_key, capture.config.environment)
    summary = render.write(capture, out, policies, secrets)
    click.echo(report.terminal(summary))
    click.echo(f"  -> {out / capture.stack}")
    invalid = summary["manifests"]["schema_problems"]
    for problem in invalid:
        click.echo(f"{capture.stack}: manifest fails the Kubernetes {KUBERNETES_MINOR} schema: {problem}", err=True)
    refused = []
    if crds is not None:
        from infra.admission import check_all  # CEL is loaded only when a plan is checked against CRDs

        refused = check_all(render.kubernetes_objects([r.as_json() for r in capture.resources])[0], crds)
    for refusal in refused:
        click.echo(f"{capture.stack}: custom resource fails admission: {refusal}", err=True)
    # Like a mandatory policy (exit 1, the plan still written): the values are valid, CI just could not decrypt them.
    unencrypted = secrets["enforcement"] == "mandatory"
    if unencrypted:
        click.echo(f"{capture.stack}: {capture.config.environment} needs a KMS secrets provider: {secrets['problem']}", err=True)
    deployable = base is None or against_base(capture.stack, out, base)
    failed = invalid or refused or policies["mandatory"] or unencrypted or not deployable
    return EXIT_CHECKS if failed else EXIT_OK


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Plan, check and compare gke-inference environments offline."""


@main.command()
@click.argument("stacks", nargs=-1)
@click.option(
    "--stack-file", "stack_files", multiple=True, type=click.Path(path_type=Path), help="A Pulumi.<stack>.yaml file (repeatable)."
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("out"), show_default=True, help="Folder for DIR/STACK/ results."
)
@click.option(
    "--stacks-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where Pulumi.<stack>.yaml files live (default: ./stacks).",
)
@click.option(
    "--crds",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Check rendered custom resources against the CRDs (and whole-object JSON Schemas) in DIR.",
)
@click.option(
    "--layer",
    type=click.Choice(["platform", "serving"]),
    default=None,
    help="Plan one stack only (default: both); serving reads the platform plan saved in OUT/STACK/platform.",
)
@click.option(
    "--base",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A previous plan's DIR (DIR/STACK): what `pulumi up` will create, update, replace or delete, into STACK/diff.md.",
)
def plan(
    stacks: tuple[str, ...],
    stack_files: tuple[Path, ...],
    out: Path,
    stacks_dir: Path | None,
    crds: Path | None,
    layer: str | None,
    base: Path | None,
) -> None:
    """Run the program under Pulumi's mock runtime for STACKS (default: every stack) and write the results.

    Exit 0 when every stack is valid, 2 when a stack's configuration is invalid (nothing is written
    for it), 1 when a mandatory policy is violated, a staging or prod stack file names no gcpkms:// secrets provider, (with --crds) a custom resource fails admission, or (with
    --base) `pulumi up` would refuse or break a change from the base plan.
    """
    index = None
    if crds is not None:
        from infra.admission import load_crds

        index = load_crds(crds)
    codes = [plan_one(p, out, index, base, layer) for p in _stack_files(stacks, stack_files, _stacks_dir(stacks_dir))]
    sys.exit(max(codes))


@main.command()
@click.option("--stacks-dir", type=click.Path(path_type=Path), default=None)
@click.option("--environment", type=click.Choice(stacks_mod.ENVIRONMENTS), default=None, help="Only this environment's stacks.")
@click.option("--github-output", is_flag=True, help="`all=JSON` and one `<environment>=JSON` line each, for $GITHUB_OUTPUT.")
def stacks(stacks_dir: Path | None, environment: str | None, github_output: bool) -> None:
    """Print every stack as JSON, in promotion order: [{stack, environment, policy_config}], the CI matrix.

    policy_config is the file `plan` checks the stack with (null: the pack's declared levels). Exit 2 when a stack
    file names no known environment."""
    try:
        entries = stacks_mod.listing(_stacks_dir(stacks_dir))
    except (ValueError, yaml.YAMLError) as error:
        click.echo(f"invalid stack file: {error}", err=True)
        sys.exit(EXIT_CONFIG)
    if environment is not None:
        entries = [e for e in entries if e.environment == environment]
    click.echo(stacks_mod.github_output(entries) if github_output else stacks_mod.as_json(entries))


@main.command()
@click.argument("a")
@click.argument("b")
@click.option("--stacks-dir", type=click.Path(path_type=Path), default=None)
def diff(a: str, b: str, stacks_dir: Path | None) -> None:
    """Compare two environments (stack names) or two plan folders, as Markdown: each resource's action.

    Exit 1 when two plans of one stack hold a change `pulumi up` would refuse or break (a protected resource
    replaced or deleted, a replacement colliding with its own name, an update the API refuses)."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for side in (a, b):
            path = Path(side)
            if (path / "summary.json").is_file():
                folders.append(path)
                continue
            stack_path = _stack_files((side,), (), _stacks_dir(stacks_dir))[0]
            try:
                capture = run(StackFile.read(stack_path))
            except ConfigError as error:
                click.echo(f"{stack_path}: invalid configuration\n{error}", err=True)
                sys.exit(EXIT_CONFIG)
            render.write(capture, Path(tmp))
            folders.append(Path(tmp) / capture.stack)
        comparison = diff_mod.compare(folders[0], folders[1])
        click.echo(comparison.report, nl=False)
        if comparison.problems:
            sys.exit(EXIT_CHECKS)


@main.command()
@click.argument("stack")
@click.option("--stacks-dir", type=click.Path(path_type=Path), default=None)
def migration(stack: str, stacks_dir: Path | None) -> None:
    """Print the `pulumi state move` commands that split STACK's single-stack state into its two stacks."""
    from infra.tooling import migration as migration_mod

    capture = run(StackFile.read(_stack_files((stack,), (), _stacks_dir(stacks_dir))[0]))
    click.echo("\n".join(migration_mod.commands(capture.stack, capture.resources)))


@main.command()
@click.argument("stack")
@click.option("--stacks-dir", type=click.Path(path_type=Path), default=None)
def quota(stack: str, stacks_dir: Path | None) -> None:
    """Print the accelerator quota and reservations STACK needs before its first `pulumi up`."""
    from infra.tooling import quota as quota_mod

    cfg = StackFile.read(_stack_files((stack,), (), _stacks_dir(stacks_dir))[0]).load()
    for line, amount in quota_mod.needs(cfg).items():
        click.echo(f"{line}: {amount}")
    for name in quota_mod.reservations(cfg):
        click.echo(f"reservation {name} in {cfg.project} (its zones hold the pool's slices)")


@main.command()
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("head", type=click.Path(path_type=Path))
def changed(base: Path, head: Path) -> None:
    """Print the stacks (platform, serving) whose plan differs between two plan folders of one environment."""
    click.echo(" ".join(diff_mod.changed_layers(base, head)))


@main.command()
@click.argument("stack")
@click.option(
    "--trace",
    "trace_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV of arrival time, prompt and output tokens (Azure LLM trace layout, or arrival_s,prompt_tokens,output_tokens).",
)
@click.option("--workload", default=None, help="Only this workload (default: every autoscaled one).")
@click.option("--hours", type=float, default=24.0, show_default=True, help="Length of each built-in trace.")
@click.option(
    "--recommend-hours", type=float, default=4.0, show_default=True, help="Trace length for the settings search (0: skip)."
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("out"), show_default=True)
@click.option("--stacks-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--calibrate",
    "results",
    type=click.Path(path_type=Path),
    default=None,
    help="Instead of simulating: fit the workload's engine factors on its accelerator to a load test's JSON (inference-perf "
    "report or `vllm bench serve` result; a file or a folder) and write them to the catalog's calibrated.yaml.",
)
def simulate(
    stack: str,
    trace_file: Path | None,
    workload: str | None,
    hours: float,
    recommend_hours: float,
    out: Path,
    stacks_dir: Path | None,
    results: Path | None,
) -> None:
    """What-if of every autoscaled workload's rendered HPA on traffic traces: TTFT, SLO share, replica-hours, cost.

    Writes out/STACK/simulation.md (table, recommendations, a chart per workload and trace) and prints the table.
    """
    from infra.simulate import cli as sim_cli  # the simulator loads only for this command
    from infra.simulate.parallel import workers

    stack_path = _stack_files((stack,), (), _stacks_dir(stacks_dir))[0]
    if results is not None:
        sys.exit(sim_cli.calibrate(_capture(stack_path), results, workload))
    with workers() or nullcontext() as pool:  # started before the plan: their imports overlap it
        code = sim_cli.simulate(_capture(stack_path), trace_file, workload, hours, recommend_hours, out, pool)
    sys.exit(code)


def _capture(stack_path: Path) -> Capture:
    """The stack's plan, or exit 2 on an invalid configuration."""
    try:
        return run(StackFile.read(stack_path))
    except ConfigError as error:
        click.echo(f"{stack_path}: invalid configuration\n{error}", err=True)
        sys.exit(EXIT_CONFIG)


if __name__ == "__main__":
    main()

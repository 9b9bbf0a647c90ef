"""The `ledgerflow` command's own surface: its version and the choices `--help` shows."""

from importlib.metadata import version

from typer.testing import CliRunner

from ledgerflow.cli import app


def test_version_prints_the_installed_version() -> None:
    """`ledgerflow --version` prints the distribution's version and exits 0."""
    result = CliRunner().invoke(app, ["--version"], prog_name="ledgerflow")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"ledgerflow {version('ledgerflow')}"


def test_bench_help_lists_the_scenarios_and_refuses_others() -> None:
    """`bench --help` names the scenarios; another one is a usage error that names them."""
    runner = CliRunner()
    shown = runner.invoke(app, ["bench", "--help"], prog_name="ledgerflow", env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "single, batch, cross, mixed, hot, atomic" in shown.output
    sideways = ["bench", "--scenarios", "single,sideways"]
    refused = runner.invoke(app, sideways, env={"COLUMNS": "200"})
    assert refused.exit_code == 2
    assert (
        "choose from single, batch, cross, mixed, hot, atomic, hold, hold-cross, or all"
        in refused.output
    )
    shards = runner.invoke(app, ["bench", "--shards", "1,0"], env={"COLUMNS": "200"})
    assert shards.exit_code == 2
    assert "each shard count between 1 and 16" in shards.output

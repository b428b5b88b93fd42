"""The documentation's code runs, and its tables are drawn from their data.

* Every ```python block of README.md and docs/**/*.md is executed on its own (a fresh namespace,
  the working directory a temporary folder). A block that would be slow at its written size is
  preceded by a marker naming textual substitutions the test makes first, e.g.
  ``<!-- docs-test: {"steps=20_000": "steps=2"} -->`` (the block is never skipped).
* Every ```bash block's commands are checked: ``inr-gon ...``, ``torchrun ... -m inr_gon.cli ...``,
  ``python examples/*.py ...`` and ``torchrun ... examples/*.py ...`` are parsed by the real
  argument parser; ``python
  benchmarks/X.py --opt`` must name an existing script that declares each option it is given.
* ``examples/tutorial_gon.py`` runs, and the checks it prints hold.
* ``benchmarks/report.py --check`` finds no table that differs from its JSON, and changing a
  JSON value changes the page drawn from it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(?:<!-- docs-test: (\{.*?\}) -->\n)?```(python|bash)\n(.*?)```", re.S)
EXAMPLES = {"fit_mnist_siren.py": "image", "fit_sdf_shapes.py": "sdf", "superres_mnist.py": "superres"}


def blocks(kind: str):
    out = []
    for page in PAGES:
        for i, m in enumerate(BLOCK.finditer(page.read_text())):
            if m.group(2) == kind:
                subs = json.loads(m.group(1)) if m.group(1) else {}
                out.append(pytest.param(page, m.group(3), subs, id=f"{page.relative_to(ROOT)}#{i}"))
    return out


@pytest.mark.parametrize("page,code,subs", blocks("python"))
def test_python_blocks_run(page, code, subs, tmp_path, monkeypatch):
    for old, new in subs.items():
        assert old in code, f"{page.name}: the docs-test marker replaces {old!r}, which the block lacks"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INR_GON_OFFLINE", "1")
    exec(compile(code, f"{page.name}:python block", "exec", dont_inherit=True), {"__name__": "__docs__"})


def commands(code: str) -> list[list[str]]:
    """The command lines of a shell block (continuations joined, comments and ``&&`` chains split,
    leading ``VAR=value`` assignments dropped)."""
    text = code.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            argv = shlex.split(part)
            while argv and re.match(r"^[A-Z_]+=", argv[0]):
                argv = argv[1:]
            if argv:
                out.append(argv)
    return out


def check_command(argv: list[str]) -> None:
    from inr_gon.cli import _with_task, build_parser

    def parse(args):
        try:
            build_parser().parse_args(_with_task(args))
        except SystemExit as e:  # --help exits 0; a bad option exits 2
            assert e.code == 0, f"not a valid command: inr-gon {' '.join(args)}"

    if argv[0] == "inr-gon":
        parse(argv[1:])
    elif argv[0] == "torchrun":  # torchrun [--its-options] (-m inr_gon.cli | examples/X.py) args
        rest = argv[1:]
        while rest and rest[0].startswith("--"):
            rest = rest[1:]
        if rest[:2] == ["-m", "inr_gon.cli"]:
            parse(rest[2:])
        else:
            check_command(["python", *rest])
    elif argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].startswith("examples/"):
        script = ROOT / argv[1]
        assert script.is_file(), f"no such example: {argv[1]}"
        if script.name in EXAMPLES:
            parse(["train", EXAMPLES[script.name], *argv[2:]])
    elif argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].startswith("benchmarks/"):
        script = ROOT / argv[1]
        assert script.is_file(), f"no such benchmark: {argv[1]}"
        source = script.read_text()
        for opt in argv[2:]:
            if opt.startswith("--"):
                flag = opt.split("=")[0]
                assert f'"{flag}"' in source, f"{argv[1]} declares no option {flag}"
    elif argv[0] == "bash" and len(argv) > 1:
        assert (ROOT / argv[1]).is_file(), f"no such script: {argv[1]}"


@pytest.mark.parametrize("page,code,subs", blocks("bash"))
def test_shell_blocks_are_valid_commands(page, code, subs):
    for argv in commands(code):
        check_command(argv)


def test_the_checker_catches_a_bad_option():
    """Control: a wrong option and a missing script are caught."""
    with pytest.raises(AssertionError):
        check_command(["inr-gon", "train", "image", "--no-such-option", "1"])
    with pytest.raises(AssertionError):
        check_command(["python", "benchmarks/report.py", "--no-such-option"])
    with pytest.raises(AssertionError):
        check_command(["python", "examples/no_such_example.py"])
    check_command(["inr-gon", "train", "sdf", "--mesh-resolution", "32"])


def test_tables_match_their_data():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import report
    finally:
        sys.path.pop(0)
    assert report.main(["--check"]) == 0, "run: python benchmarks/report.py"


def test_a_changed_json_value_changes_the_page(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import report
    finally:
        sys.path.pop(0)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    before = (tmp_path / "README.md").read_text()
    assert report.main(["--check", "--root", str(tmp_path)]) == 0
    rel = tmp_path / "docs" / "figures" / "mnist_metrics.json"
    data = json.loads(rel.read_text())
    data["test_psnr"] = 31.25
    rel.write_text(json.dumps(data))
    assert report.main(["--check", "--root", str(tmp_path)]) == 1
    assert report.main(["--root", str(tmp_path)]) == 0
    after = (tmp_path / "README.md").read_text()
    assert "31.25 dB" in after and "31.25 dB" not in before


def test_the_tutorial_runs_and_its_checks_hold(capsys):
    import runpy

    ns = runpy.run_path(str(ROOT / "examples" / "tutorial_gon.py"), run_name="__tutorial__")
    assert float((ns["z_gn"][0] - ns["z_ref"]).abs().max()) < 1e-4
    assert ns["mse_plain"] < 0.1 * float(ns["x"].var())  # it learned
    assert ns["big"].shape == (4, 1, 128, 128) and ns["mesh"].is_watertight


# the default runs behind the reported figures and the command whose config they used
RUN_CONFIGS = [
    ("mnist_metrics.json", "mnist_config.json"),
    ("fashion_metrics.json", "fashion_config.json"),
    ("sdf_metrics.json", "sdf_config.json"),
    ("sdf_baseline_default_run.json", "sdf_config.json"),
    ("sdf_metrics_real_meshes.json", "sdf_metrics_real_meshes_config.json"),
    ("superres_metrics.json", "superres_config.json"),
    ("sdf_split.json", "sdf_split_gon_config.json"),
    ("sdf_split.json", "sdf_split_autodecoder_config.json"),
    ("sdf_partial_metrics.json", "sdf_partial_config.json"),
    ("sdf_view_metrics.json", "sdf_view_config.json"),
    ("sdf_completion_meshes_metrics.json", "sdf_completion_meshes_config.json"),
]


@pytest.mark.parametrize("metrics,config", RUN_CONFIGS)
def test_each_reported_run_has_its_config_beside_its_json(metrics, config):
    """The config beside a reported run's JSON is a whole, valid config of its task: ``inr-gon
    train TASK --config FILE`` repeats the run."""
    import torch

    from inr_gon.training.tasks import TASKS

    figures = ROOT / "docs" / "figures"
    assert (figures / metrics).is_file()
    saved = json.loads((figures / config).read_text())
    cls = TASKS[saved.pop("task")].config_class
    saved.pop("command", None)
    cfg = cls.from_dict(saved, strict=True, saved=False)
    assert cfg.resolved(torch.device("cpu")) == cfg  # every value resolved

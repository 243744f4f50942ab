"""mini-DreamBench: the --quick study end to end (results, resume, report, grid), its bootstrap, prompt
set, subject photos, methods, stored-result checks, and evaluate_dreambooth.py's world-judges scoring
(the same scores as the study's for the same adapter and seeds)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dash_diffusion.errors import DashError
from dash_diffusion.eval.cli import main as evaluate_main
from dash_diffusion.eval.world_bench.bootstrap import cluster_bootstrap, paired_groups
from dash_diffusion.eval.world_bench.methods import METHODS, method_named
from dash_diffusion.eval.world_bench.photos import TRAINING_SCENE, reference_photos, training_photos
from dash_diffusion.eval.world_bench.photos_cli import write_subject
from dash_diffusion.eval.world_bench.prompts import KINDS, PROMPTS_PER_SUBJECT, pick_prompts, subject_prompts
from dash_diffusion.eval.world_bench.settings import StudySettings
from dash_diffusion.eval.world_bench.store import check_comparable
from dash_diffusion.models.world import SUBJECTS, held_out_instance, sample_scene
from dash_diffusion.models.world.vocab import parse_caption

ROOT = Path(__file__).resolve().parents[1]
QUICK_RUNS = ("base", "lora_r4", "dash_t25")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bench(out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / "mini_dreambench.py"), "--quick", "--out", str(out), "--threads", "1", *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def _result(out: Path, method: str) -> Path:
    return out / "runs" / "dotted_ball" / method / "seed0" / "result.json"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    """One --quick study (one subject, LoRA r=4 and LoRA-Dash t=25, one seed, three prompts)."""
    out = tmp_path_factory.mktemp("quick") / "study"
    done = _bench(out, "--markdown", str(out.parent / "bench.md"))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


# ---------------------------------------------------------------- the study end to end


def test_quick_study_writes_one_result_per_run_and_a_report(quick: Path) -> None:
    records = {method: json.loads(_result(quick, method).read_text()) for method in QUICK_RUNS}
    for method, record in records.items():
        assert (record["subject"], record["method"], record["seed"]) == ("dotted_ball", method, 0)
        assert len(record["scores"]) == 3 and {s["kind"] for s in record["scores"]} == set(KINDS)
        assert all((_result(quick, method).parent / s["file"]).is_file() for s in record["scores"])
        assert set(record["means"]) >= {"subject_fidelity", "whole_image", "prompt_fidelity", "object_accuracy"}
    assert all("sks" not in s["prompt"] for s in records["base"]["scores"])  # the base row gets class prompts
    assert all("sks" in s["prompt"] for s in records["lora_r4"]["scores"])
    assert [s["seed"] for s in records["base"]["scores"]] == [s["seed"] for s in records["dash_t25"]["scores"]]  # same noise
    lora, dash = records["lora_r4"], records["dash_t25"]
    assert lora["train_options"]["no_dash"] and lora["train_options"]["rank"] == 4
    assert not dash["train_options"]["no_dash"] and dash["training"]["selected_at_step"] == 25
    assert dash["train_options"]["instance_dir"] == lora["train_options"]["instance_dir"] and dash["train_options"]["seed"] == lora["train_options"]["seed"]
    assert lora["timings"]["train_s"] > 0 and not list((_result(quick, "lora_r4").parent / "adapter").glob("checkpoint-*"))

    text = (quick.parent / "bench.md").read_text()
    assert text.startswith("<!-- mini_dreambench:start -->") and text.rstrip().endswith("<!-- mini_dreambench:end -->")
    for needed in ("Command: `", "| LoRA r=4 | 1 |", "| LoRA-Dash r=4 s=8 t=25 | 1 |", "(reference)", "| dotted_ball |", "train s/run", "look-alike"):
        assert needed in text, needed
    grid = Image.open(quick / "grid.png")
    assert grid.size[0] == 4 * 128 and grid.size[1] > 3 * 128  # training photo, base, 2 methods; 3 prompts
    assert grid.mode == "P"  # written with a 256-colour palette (a full-colour grid was 2.7 MB in docs/)


def test_rerun_skips_finished_runs_and_redoes_an_unfinished_one(quick: Path) -> None:
    kept = {m: _result(quick, m).stat().st_mtime_ns for m in ("base", "lora_r4")}
    _result(quick, "dash_t25").unlink()  # as if the study had been stopped during that run
    (_result(quick, "dash_t25").parent / "leftover.txt").write_text("partial")
    done = _bench(quick)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 runs already finished, 1 to make" in done.stdout
    assert {m: _result(quick, m).stat().st_mtime_ns for m in kept} == kept
    assert _result(quick, "dash_t25").is_file() and not (_result(quick, "dash_t25").parent / "leftover.txt").exists()


def test_stored_results_of_another_protocol_are_refused(tmp_path: Path) -> None:
    protocol = {"steps": 300, "learning_rate": 0.001}
    record = {"subject": "robot", "protocol": protocol, "data_sha256": "abc"}
    check_comparable(record, tmp_path / "result.json", dict(protocol), "abc")
    with pytest.raises(DashError, match=r"another protocol \(differs in: steps\)"):
        check_comparable(record, tmp_path / "result.json", {**protocol, "steps": 30}, "abc")
    with pytest.raises(DashError, match="other photos of robot"):
        check_comparable(record, tmp_path / "result.json", protocol, "def")


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    done = _bench(tmp_path / "x", "--methods", "lora_r4,dash_t100")  # --quick's 30 steps leave t = 100 no dash phase
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [done.stderr.strip()] and "dash_t100" in done.stderr
    with pytest.raises(DashError, match="unknown method 'lora_r5'"):
        StudySettings(out=tmp_path, methods=("lora_r5",)).check()
    with pytest.raises(DashError, match="unknown subject 'cat'"):
        StudySettings(out=tmp_path, subjects=("cat",)).check()


# ---------------------------------------------------------------- pieces


def test_cluster_bootstrap_known_cases() -> None:
    # one value per subject: resampled means of {0, 0, 3} are 0 with probability 8/27 and 3 with 1/27,
    # both above 2.5 %, so the 95 % percentile interval is exactly [0, 3] around the mean 1
    interval = cluster_bootstrap([[0.0], [0.0], [3.0]])
    assert (interval.estimate, interval.low, interval.high, interval.subjects, interval.pairs) == (1.0, 0.0, 3.0, 3, 3)
    constant = cluster_bootstrap([[0.25, 0.25], [0.25], [0.25, 0.25, 0.25]])
    assert (constant.low, constant.high) == (0.25, 0.25) and constant.excludes_zero
    groups = [[0.1, -0.2, 0.05], [0.3, 0.1, 0.0], [-0.1, 0.0, 0.2]]
    assert cluster_bootstrap(groups) == cluster_bootstrap(groups)  # fixed seed: the same interval every time
    assert cluster_bootstrap(groups).estimate == pytest.approx(np.mean([np.mean(g) for g in groups]))
    assert paired_groups({("a", 0): 1.0, ("a", 1): 2.0, ("b", 0): 5.0}, {("a", 0): 0.5, ("a", 1): 1.0, ("c", 0): 9.0}) == [[0.5, 1.0]]


def test_prompt_set_covers_scenes_colours_and_combinations() -> None:
    for name, subject in SUBJECTS.items():
        prompts = subject_prompts(name)
        assert len(prompts) == PROMPTS_PER_SUBJECT >= 12
        assert {p.kind for p in prompts} == set(KINDS) and sum(p.kind == "combo" for p in prompts) >= 3
        assert TRAINING_SCENE not in {p.scene for p in prompts} and subject.colour not in {p.colour for p in prompts}
        for p in prompts:
            assert f"sks {subject.object}" in p.text and "sks" not in p.class_text
            assert parse_caption(p.class_text) == (subject.object, p.scene, p.colour)  # the world's grammar
            assert p.asks["object"] == subject.object and (("scene" in p.asks) == (p.kind != "colour"))
    prompts = subject_prompts("dotted_ball")
    assert prompts[0].text == "a photo of sks ball on the beach" and "a photo of a red sks ball in the snow" in [p.text for p in prompts]
    assert {prompts[i].kind for i in pick_prompts(prompts, 3)} == set(KINDS) and pick_prompts(prompts, 99) == list(range(len(prompts)))


def test_subject_photos_are_deterministic_varied_held_out_instances() -> None:
    for name, subject in SUBJECTS.items():
        train, references = training_photos(name), reference_photos(name)
        assert 4 <= len(train) <= 6 and len(references) >= 4
        assert all(held_out_instance(photo.scene) == subject for photo in train + references)
        assert len({photo.background for photo in train}) >= 3 and len({photo.scene.turn for photo in train}) == len(train)
        again = training_photos(name)
        assert all(a.image.tobytes() == b.image.tobytes() for a, b in zip(train, again))
        train_pixels = {photo.image.tobytes() for photo in train}
        assert not train_pixels & {photo.image.tobytes() for photo in references}
    rng = np.random.default_rng(0)
    assert not any(held_out_instance(sample_scene(rng, "train")) for _ in range(3000))  # pretraining never draws them


def test_methods_differ_only_in_their_adapter_options() -> None:
    assert method_named("lora_r4").train_options(300) == {"rank": 4, "no_dash": True, "with_prior_preservation": False}
    dash = method_named("dash_t100").train_options(300)
    assert (dash["no_dash"], dash["dash_directions"], dash["dash_warmup_steps"], dash["rank"]) == (False, 8, 100, 4)
    assert method_named("lora_r12").exported_rank == method_named("dash_t25").exported_rank == 12
    assert METHODS["dash_t100_prior"].train_options(300)["with_prior_preservation"]
    with pytest.raises(ValueError, match="no dash phase"):
        method_named("dash_t100").train_options(100)


# ---------------------------------------------------------------- evaluate_dreambooth.py --judges world


def test_evaluate_dreambooth_scores_world_subjects_like_the_study(quick: Path, tmp_path: Path, capsys) -> None:
    _, references = write_subject("dotted_ball", tmp_path / "photos")
    adapter = _result(quick, "lora_r4").parent / "adapter"
    argv = [
        "--judges", "world", "--world_subject", "dotted_ball", "--subject_dir", str(references), "--base", "builtin:mini-sdxl",
        "--resolution", "128", "--prompts", "3", "--num_images", "1", "--steps", "8", "--device", "cpu", "--grid_cell", "64",
        "--adapter", f"lora={adapter}", "--output_dir", str(tmp_path / "eval"),
    ]  # fmt: skip
    assert evaluate_main(argv) == 0, capsys.readouterr().err
    with (tmp_path / "eval" / "scores.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["row"] for r in rows] == ["base"] * 3 + ["lora"] * 3
    assert all("sks" not in r["prompt"] for r in rows[:3]) and all("sks" in r["prompt"] for r in rows[3:])
    study = json.loads(_result(quick, "lora_r4").read_text())["scores"]  # same adapter, prompts, seeds, steps
    for row, stored in zip(rows[3:], study):
        assert (row["prompt"], int(row["seed"])) == (stored["prompt"], stored["seed"])
        for metric in ("subject_fidelity", "whole_image", "prompt_fidelity"):
            assert float(row[metric]) == pytest.approx(stored[metric], abs=1e-6), metric
    text = (tmp_path / "eval" / "results.md").read_text()
    assert "subject fidelity (DINO's role)" in text and "Paired differences" not in text
    assert (tmp_path / "eval" / "grid_compare.png").is_file() and json.loads((tmp_path / "eval" / "run.json").read_text())["subject"]["name"] == "dotted_ball"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--judges world needs --world_subject"),
        (["--world_subject", "cat"], "unknown subject 'cat'"),
        (["--world_subject", "robot", "--resolution", "1024"], "--resolution 128"),
        (["--world_subject", "robot", "--prompts", "14"], "--prompts"),
    ],
)
def test_world_judges_option_errors_are_one_line(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    size = [] if "--resolution" in extra else ["--resolution", "128"]
    argv = ["--judges", "world", "--subject_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), *size, *extra]
    assert evaluate_main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines

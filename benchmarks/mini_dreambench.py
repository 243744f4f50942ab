"""mini-DreamBench: does LoRA-Dash learn a subject better than LoRA? DreamBooth's protocol on builtin:mini-sdxl.

    python benchmarks/mini_dreambench.py --out outputs/mini_dreambench --markdown docs/benchmarks.md
    python benchmarks/mini_dreambench.py --quick --out /tmp/mdb          # smoke run, well under a minute

The full study is 7 subjects x 3 seeds x (base row + 5 methods) = 126 runs; on the 2-core dev VM with one
torch thread a run takes about 40 s (20 s of training, 23 s to render and score 52 images; prior
preservation about 55 s), about 1.5 hours in all with ``--jobs 1``. ``--jobs 2`` halves that only on an
otherwise idle machine.

For each held-out world subject (never drawn in pretraining; five training photos), every method
(LoRA r=4, LoRA-Dash r=4 s=8 t=25 and t=100, LoRA r=12, LoRA-Dash t=100 with prior preservation) is
trained by the project's trainer with the same photos, steps, learning rate and seed, for each seed; each
run renders the subject's prompt set (scenes, colour changes, combinations) from fixed image seeds and the
world judges score subject fidelity, whole-image similarity and prompt fidelity; the base model renders the
class prompts from the same seeds. The table gives every method's means, its paired difference against
LoRA r=4 with a two-stage bootstrap 95 % interval, prior preservation on/off, per-attribute and
per-subject rows, the judges' calibration and the wall time per run; ``--grid`` writes an image grid.
Every finished run is stored as ``<out>/runs/<subject>/<method>/seed<k>/result.json``; a rerun with the
same options skips them (resume), a rerun with other subjects/methods/seeds adds to them.
The library code is :mod:`dash_diffusion.eval.world_bench`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: no progress bars in the study log
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from provenance import RunClock, publish  # noqa: E402

from dash_diffusion.cli_runner import run_cli  # noqa: E402
from dash_diffusion.errors import DashError  # noqa: E402
from dash_diffusion.eval.world_bench.methods import DEFAULT_METHODS, METHODS  # noqa: E402
from dash_diffusion.eval.world_bench.prompts import PROMPTS_PER_SUBJECT  # noqa: E402
from dash_diffusion.eval.world_bench.rows import Sampling  # noqa: E402
from dash_diffusion.eval.world_bench.settings import StudySettings  # noqa: E402
from dash_diffusion.eval.world_bench.study import StudyOutcome, run_study  # noqa: E402
from dash_diffusion.models.world import SUBJECTS  # noqa: E402

SECTION = "mini_dreambench"
FULL = {"subjects": ",".join(SUBJECTS), "methods": ",".join(DEFAULT_METHODS), "seeds": "0,1,2", "steps": 300, "prompts": PROMPTS_PER_SUBJECT, "num_images": 4, "inference_steps": 25, "class_images": 50}
QUICK = {"subjects": "dotted_ball", "methods": "lora_r4,dash_t25", "seeds": "0", "steps": 30, "prompts": 3, "num_images": 1, "inference_steps": 8, "class_images": 2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/mini_dreambench"), help="study folder: data/, runs/ (one result.json per finished run)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {', '.join(f'--{k} {v}' for k, v in QUICK.items())} (options given explicitly still win)")
    parser.add_argument("--subjects", help=f"comma-separated, among {', '.join(SUBJECTS)} (default: all)")
    parser.add_argument("--methods", help=f"comma-separated, among {', '.join(METHODS)} (default: {', '.join(DEFAULT_METHODS)}); the base model's row is always made")
    parser.add_argument("--seeds", help="comma-separated training seeds (default 0,1,2)")
    parser.add_argument("--steps", type=int, help="optimizer steps of every run (default 300)")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="learning rate of every method (the demo's)")
    parser.add_argument("--prompts", type=int, help=f"prompts per subject, spread over scenes, colours and combinations (default all {PROMPTS_PER_SUBJECT})")
    parser.add_argument("--num_images", type=int, help="images per prompt and run (default 4, as DreamBooth)")
    parser.add_argument("--inference_steps", type=int, help="denoising steps per image (default 25)")
    parser.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance")
    parser.add_argument("--class_images", type=int, help="class images per subject for prior preservation (default 50)")
    parser.add_argument("--jobs", type=int, default=1, help="runs made at the same time, each in its own process")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads shared by the jobs, each gets threads // jobs (default: torch's, which follows OMP_NUM_THREADS)")
    parser.add_argument("--markdown", type=Path, default=None, help=f"write the results section '{SECTION}' into this markdown file")
    parser.add_argument("--grid", type=Path, default=None, help="image grid PNG, 256 colours (default <out>/grid.png)")
    return parser


def _split(text: str, option: str, kind: type = str) -> tuple:
    try:
        return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise DashError(f"--{option} {text!r} is not a comma-separated list of {kind.__name__} values: e.g. --{option} {FULL[option]}") from error


def settings_from(args: argparse.Namespace) -> StudySettings:
    """The study's settings: explicit options, else the quick or the full defaults."""
    chosen = {name: getattr(args, name) if getattr(args, name) is not None else (QUICK if args.quick else FULL)[name] for name in FULL}
    settings = StudySettings(
        out=args.out,
        subjects=_split(chosen["subjects"], "subjects"),
        methods=_split(chosen["methods"], "methods"),
        seeds=_split(chosen["seeds"], "seeds", int),
        steps=chosen["steps"],
        learning_rate=args.learning_rate,
        prompts=chosen["prompts"],
        num_images=chosen["num_images"],
        sampling=Sampling(steps=chosen["inference_steps"], guidance=args.guidance),
        class_images=chosen["class_images"],
        jobs=args.jobs,
        threads=args.threads,
    )
    settings.check()
    return settings


def describe(settings: StudySettings, protocol: dict, outcome: StudyOutcome, quick: bool) -> list[str]:
    """The lines above the table: what was run, how, and from which files."""
    sampling = settings.sampling
    made, skipped = len(outcome.made), len(outcome.skipped)
    class_times = list(outcome.class_image_seconds.values())
    class_cost = f" Class images took {sum(class_times) / len(class_times):.0f} s per subject (once, before the runs)." if class_times else ""
    return [
        f"{'Quick smoke run (--quick: not a result). ' if quick else ''}Subjects: {', '.join(settings.subjects)}; seeds {', '.join(map(str, settings.seeds))}; "
        f"{settings.steps} steps at learning rate {settings.learning_rate:g}, 128 px, instance prompt 'a photo of sks <class>' on 5 training photos; "
        f"{settings.prompts} prompts x {settings.num_images} images per run, {sampling.steps} Euler steps, guidance {sampling.guidance:g}; "
        f"references: 8 other renders per subject; prior preservation: {settings.class_images} class images by the base model.  ",
        f"Model `{protocol['model']}` (weights sha256 {str(protocol['model_sha256'])[:12]}), judges sha256 {protocol['judges_sha256'][:12]}; "
        f"{made} runs made by this invocation, {skipped} read from earlier ones in `{settings.out}`.{class_cost}",
    ]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def job() -> str:
        settings = settings_from(args)
        from dash_diffusion.eval.world_bench.calibration import calibrate
        from dash_diffusion.eval.world_bench.grid import study_grid
        from dash_diffusion.eval.world_bench.report import markdown
        from dash_diffusion.models.world_judges import load_judges

        clock = RunClock.start()
        outcome = run_study(settings, log=lambda line: print(line, flush=True))
        grid = args.grid or settings.out / "grid.png"
        grid.parent.mkdir(parents=True, exist_ok=True)
        study_grid(settings.out, outcome.records, settings.seeds[0]).quantize(256).save(grid)  # a palette PNG: a fifth of the size, fit for docs/
        judges = load_judges()
        calibration = {subject: calibrate(judges, subject) for subject in settings.subjects}
        lines = describe(settings, outcome.records[0]["protocol"], outcome, args.quick)
        publish(markdown(outcome.records, lines, calibration, str(grid)), args.markdown, SECTION, clock, torch.device("cpu"))
        return f"{len(outcome.records)} results in {settings.out}; grid {grid}" + (f"; section '{SECTION}' written to {args.markdown}" if args.markdown else "")

    return run_cli(job, ("diffusers", "transformers", "accelerate", "dash_diffusion", "PIL", "httpx", "urllib3"), f"finished runs are kept in {args.out}: run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())

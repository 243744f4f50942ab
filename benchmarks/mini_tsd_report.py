"""The markdown report of ``mini_tsd.py``: tables (a)-(d) and one verdict line per claim and model.

Input: the saved run results (``settings``, ``timing``, ``layers``; see ``mini_tsd.extract``). The
numbers come from :mod:`dash_diffusion.lora_dash.tsd_analysis`; this module only groups, pools and
formats them. Positions and counts are pooled over layers and seeds; a layer's usable directions are
its first ``k_usable`` positions (singular values are sorted, the usable ones are the largest).
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch
from tsd_study import mean_std

from dash_diffusion.demo import LEARNING_RATE
from dash_diffusion.formats.sgm_names import KOHYA_UNET_TARGETS
from dash_diffusion.lora_dash import tsd_analysis as tsd

SHARES = (0.5, 0.9)
PROJECTION = re.compile(r"(attn\d+\.(?:to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2|proj_in|proj_out)$")
"""The kind of an adapted layer, from the end of its module name (what sd-scripts adapts in a transformer block)."""
#: Overlap thresholds of the key-finding verdict (those of ``tsd_study.py``).
OVERLAP_YES, OVERLAP_PARTLY = 0.75, 0.4
#: How far above a random update's overlap a prediction must be to count as one.
MARGIN = 0.25
#: Band share thresholds of the position verdict.
BAND_YES, BAND_PARTLY = 0.75, 0.5


@dataclass
class ModelRuns:
    """One model's results: the long plain run and the Dash run of each ``t``, by seed."""

    model: str
    lora: dict[int, dict[str, Any]] = field(default_factory=dict)
    dash: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)  # t -> seed -> result

    @property
    def short(self) -> str:
        return self.model.split(":")[-1]


def group(results: list[dict[str, Any]]) -> list[ModelRuns]:
    """Results by model (first-seen order), kind, ``t`` and seed."""
    models: dict[str, ModelRuns] = {}
    for result in results:
        settings = result["settings"]
        runs = models.setdefault(settings["model"], ModelRuns(settings["model"]))
        if settings["kind"] == "lora":
            runs.lora[settings["seed"]] = result
        else:
            runs.dash.setdefault(settings["warmup"], {})[settings["seed"]] = result
    return list(models.values())


def usable_mask(entry: dict[str, Any], k: int) -> torch.Tensor:
    return torch.arange(k) < entry["k_usable"]


def final_top(entry: dict[str, Any], key: str, s: int) -> list[int]:
    """Top-s positions of a plain run's layer under ``entry[key]["rates"]`` (``final`` or a reference)."""
    rates = torch.tensor(entry[key]["rates"])
    return tsd.top_set(rates, usable_mask(entry, rates.numel()), s)


def positions_of(runs: ModelRuns, source: int | str, s: int) -> list[float]:
    """Pooled positions of the top-s directions: ``source`` is a ``t`` (the Dash run's selection),
    ``"final"`` (the long run's final top-s) or ``"random_rank_r"`` (top-s of the random update)."""
    positions: list[float] = []
    if isinstance(source, int):
        for result in runs.dash.get(source, {}).values():
            for entry in result["layers"].values():
                positions += tsd.spectrum_positions(entry["indices"], entry["k_usable"])
        return positions
    for result in runs.lora.values():
        for entry in result["layers"].values():
            positions += tsd.spectrum_positions(final_top(entry, source, s), entry["k_usable"])
    return positions


def layer_counts(runs: ModelRuns, key: str) -> dict[str, list[float]]:
    """Per layer and seed of the plain run, for update ``key``: mass counts and diagonal share."""
    found: dict[str, list[float]] = {f"{kind}{int(100 * q)}": [] for kind in ("c", "e") for q in SHARES} | {"diag": [], "k": []}
    for result in runs.lora.values():
        for entry in result["layers"].values():
            summary = entry[key]
            for kind, values in (("c", summary["rates"]), ("e", summary["energy"])):
                for q in SHARES:
                    found[f"{kind}{int(100 * q)}"].append(tsd.mass_count(torch.tensor(values), q))
            found["diag"].append(sum(summary["energy"]) / summary["update_fro2"] if summary["update_fro2"] > 0 else float("nan"))
            found["k"].append(entry["k_usable"])
    return found


def overlaps(runs: ModelRuns, source: int | str, s: int) -> list[dict[str, Any]]:
    """Per layer and seed: overlap of a predicted top-s set with the final top-s of the plain run, the
    final mass it captures, and chance ``s / k_u``. ``source`` is a ``t`` (the directions the Dash run
    selected at step t) or ``"random_rank_r"`` (the top-s of the random update on the same weight: the
    reference a prediction must beat, since dividing by sigma_i favours the same small directions for any
    update)."""
    rows = []
    for seed, lora in runs.lora.items():
        dash = runs.dash.get(source, {}).get(seed) if isinstance(source, int) else lora
        if dash is None:
            continue
        for name, entry in dash["layers"].items():
            final_entry = lora["layers"][name]
            final = final_top(final_entry, "final", s)
            predicted = entry["indices"] if isinstance(source, int) else final_top(final_entry, source, s)
            rates = torch.tensor(final_entry["final"]["rates"])
            rows.append({
                "name": name,
                "overlap": tsd.overlap(predicted, final),
                "captured": tsd.captured_mass(rates, predicted, final),
                "chance": tsd.chance_overlap(s, entry["k_usable"]),
            })
    return rows


def seed_to_seed(runs: ModelRuns, s: int) -> list[float]:
    """Overlap of the final top-s of two seeds, per layer and pair of seeds (empty with one seed)."""
    values = []
    for a, b in itertools.combinations(sorted(runs.lora), 2):
        for name, entry in runs.lora[a]["layers"].items():
            values.append(tsd.overlap(final_top(entry, "final", s), final_top(runs.lora[b]["layers"][name], "final", s)))
    return values


def projection_kind(name: str) -> str:
    """``attn1.to_q``, ``ff.net.2``, ``proj_in``, ...: the kind of layer ``name`` is; its last part if none."""
    match = PROJECTION.search(name)
    return match[1] if match else name.rsplit(".", 1)[-1]


# ---------------------------------------------------------------------------------------------- formatting
def pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.0%}"


def num(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def median_iqr(values: list[float]) -> str:
    """``median [q25-q75]`` of counts."""
    q25, q50, q75 = tsd.quantiles(values, (0.25, 0.5, 0.75))
    return f"{q50:g} [{q25:g}-{q75:g}]"


def source_label(source: int | str, steps: int) -> str:
    return {"final": f"final LoRA top-s (step {steps})", "random_rank_r": "random rank-r update's top-s"}.get(source, f"selected by LoRA-Dash at t = {source}")


def positions_tables(models: list[ModelRuns], args: argparse.Namespace) -> list[str]:
    s = args.directions
    sources: list[str | int] = [*args.warmups, "final", "random_rank_r"]
    table = [
        f"**(a) Where the top-{s} directions sit in each layer's singular-value order** (position i / (k_u - 1): 0 = largest singular value, 1 = smallest; pooled over layers and seeds; n = directions).",
        "",
        "| model | directions | n | q10 | q25 | median | q75 | q90 | top half (< 0.5) | small, not smallest (0.5-0.95) | smallest 5% |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    histogram = ["", "Histogram: share of those directions in each tenth of the spectrum (largest singular values first).", "", "| model | directions | " + " | ".join(f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)) + " |", "|---|---|" + "---|" * 10]
    for runs in models:
        for source in sources:
            positions = positions_of(runs, source, s)
            if not positions:
                continue
            label = source_label(source, args.steps)
            above, inside, smallest = tsd.band_shares(positions)
            table.append(f"| {runs.short} | {label} | {len(positions)} | " + " | ".join(num(q) for q in tsd.quantiles(positions)) + f" | {pct(above)} | {pct(inside)} | {pct(smallest)} |")
            histogram.append(f"| {runs.short} | {label} | " + " | ".join(pct(h) for h in tsd.histogram(positions)) + " |")
    return table + histogram


def concentration_table(models: list[ModelRuns], args: argparse.Namespace) -> list[str]:
    lines = [
        f"**(b) How few directions carry the final update** of the plain-LoRA run after {args.steps} steps: per layer the fewest core directions holding 50% / 90% of the change-rate mass sum c_i and of the diagonal energy sum e_i (e_i = (u_i^T dW v_i)^2), and the diagonal share sum e_i / ||dW||_F^2; median [q25-q75] across layers and seeds. References without a task, on the same weights: a random rank-{args.rank} update B A and a dense random matrix of the layer's shape.",
        "",
        "| model | update | usable directions k_u | for 50% of sum c_i | for 90% of sum c_i | for 50% of sum e_i | for 90% of sum e_i | diagonal share of the update's energy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for runs in models:
        for key, label in (("final", f"final LoRA (step {args.steps})"), ("random_rank_r", f"random rank-{args.rank}"), ("random_dense", "random dense")):
            counts = layer_counts(runs, key)
            if not counts["k"]:
                continue
            diag = tsd.quantiles(counts["diag"], (0.25, 0.5, 0.75))
            lines.append(f"| {runs.short} | {label} | {min(counts['k'])}-{max(counts['k'])} | {median_iqr(counts['c50'])} | {median_iqr(counts['c90'])} | {median_iqr(counts['e50'])} | {median_iqr(counts['e90'])} | {pct(diag[1])} [{pct(diag[0])}-{pct(diag[2])}] |")
    return lines


def overlap_row(short: str, label: str, rows: list[dict[str, Any]]) -> str:
    values = [r["overlap"] for r in rows]
    q10, q50, q90 = tsd.quantiles(values, (0.1, 0.5, 0.9))
    chance = num(statistics.mean(r["chance"] for r in rows), 3) if "chance" in rows[0] else ""
    captured = num(statistics.mean(r["captured"] for r in rows)) if "captured" in rows[0] else ""
    return f"| {short} | {label} | {len(rows)} | {num(statistics.mean(values))} | {num(q10)} | {num(q50)} | {num(q90)} | {num(min(values))} | {chance} | {captured} |"


def overlap_tables(models: list[ModelRuns], args: argparse.Namespace) -> list[str]:
    s = args.directions
    lines = [
        f"**(c) Do the directions selected after t steps predict the final ones?** Per layer and seed: overlap |selected at t n final top-{s}| / {s} with the top-{s} by change rate of the plain-LoRA run's final update (step {args.steps}, same seed); "
        f"chance is s / k_u; captured = the final change-rate mass of the selected directions over that of the final top-{s}. Two references per model: the top-{s} of a random rank-{args.rank} update on the same weight "
        f"(dividing by sigma_i favours the small directions for any update, so this is the level a prediction has to beat) and the final top-{s} of another seed.",
        "",
        "| model | compared with the final top-s | layer x seed pairs | mean overlap | q10 | median | q90 | min | chance s/k_u | captured final mass (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sources: list[int | str] = [*args.warmups, "random_rank_r"]
    for runs in models:
        for source in sources:
            rows = overlaps(runs, source, s)
            if rows:
                label = f"selected at t = {source}" if isinstance(source, int) else f"top-{s} of a random rank-{args.rank} update"
                lines.append(overlap_row(runs.short, label, rows))
        across = seed_to_seed(runs, s)
        if across:
            lines.append(overlap_row(runs.short, f"final top-{s} of another seed", [{"overlap": v} for v in across]))
    columns = [(runs, source) for runs in models for source in sources if overlaps(runs, source, s)]
    if not columns:
        return lines
    kinds: dict[str, dict[tuple[str, int | str], list[float]]] = {}
    for runs, source in columns:
        for row in overlaps(runs, source, s):
            kinds.setdefault(projection_kind(row["name"]), {}).setdefault((runs.short, source), []).append(row["overlap"])
    header = [f"{runs.short} {'t = ' + str(source) if isinstance(source, int) else 'random update'}" for runs, source in columns]
    lines += ["", "Mean overlap with the final top-s by kind of layer (attn1 = self-attention, attn2 = cross-attention to the prompt, ff = feed-forward):", "",
              "| layer | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]
    for kind in sorted(kinds):
        cells = [num(statistics.mean(kinds[kind][(r.short, source)])) if (r.short, source) in kinds[kind] else "" for r, source in columns]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def reused_note(models: list[ModelRuns]) -> str:
    """Says how many runs were saved by an earlier invocation (their times are from then)."""
    results = [r for runs in models for r in [*runs.lora.values(), *(x for by_seed in runs.dash.values() for x in by_seed.values())]]
    reused = sum(bool(r.get("reused")) for r in results)
    return f" {reused} of the {len(results)} runs were saved by an earlier invocation of this command (resumed): their times are from then." if reused else ""


def cost_table(models: list[ModelRuns], args: argparse.Namespace) -> list[str]:
    lines = [
        "**(d) Cost.** Wall time of each run with the real trainer, all runs in one process (model load, latent cache, training, export; the process's first run also pays the library imports; "
        "mean ± std over seeds) and the median optimizer step." + reused_note(models),
        "",
        "| model | run | steps | wall time per run (s) | median s / step |",
        "|---|---|---|---|---|",
    ]
    for runs in models:
        groups = [("plain LoRA", runs.lora)] + [(f"LoRA-Dash t = {t}", runs.dash[t]) for t in args.warmups if t in runs.dash]
        for label, by_seed in groups:
            if by_seed:
                timings = [r["timing"] for r in by_seed.values()]
                lines.append(f"| {runs.short} | {label} | {args.steps} | {mean_std([t['wall_seconds'] for t in timings])} | {statistics.median(t['step_seconds_median'] for t in timings):.3f} |")
    return lines


def overlap_verdict(mean: float, null: float) -> str:
    """yes: a high overlap, well above what a random update's top-s reaches; partly: a fair overlap, or a
    high one that a random update nearly matches; no: a low one."""
    if mean >= OVERLAP_YES and mean - null >= MARGIN:
        return "yes"
    if mean >= OVERLAP_PARTLY and mean - null >= MARGIN:
        return "partly"
    if mean >= OVERLAP_PARTLY:
        return f"partly (a random update's top-s overlaps the final ones {null:.2f}: much of it is the 1/sigma_i weighting)"
    return "no"


def verdict_lines(models: list[ModelRuns], args: argparse.Namespace) -> list[str]:
    s = args.directions
    lines = ["| claim | model | measured | holds here? |", "|---|---|---|---|"]
    for runs in models:
        selected = [p for t in args.warmups for p in positions_of(runs, t, s)]
        null = positions_of(runs, "random_rank_r", s)
        if selected:
            above, inside, smallest = tsd.band_shares(selected)
            n_above, n_inside, n_smallest = tsd.band_shares(null)
            median = tsd.quantiles(selected, (0.5,))[0]
            holds = "yes" if inside >= BAND_YES else "partly" if inside >= BAND_PARTLY else "no"
            where = max((("the top half", above), ("the smallest 5%", smallest)), key=lambda pair: pair[1])[0]
            note = f" (the rest mostly in {where})" if holds != "yes" else ""
            if null and abs(inside - n_inside) < 0.15 and abs(smallest - n_smallest) < 0.15:
                note += "; a random update lands alike: the 1/sigma_i weighting, not the task, decides"
            lines.append(f"| TSD sit at small-but-not-the-smallest singular values | {runs.short} | selected at t = {', '.join(map(str, args.warmups))}: median position {num(median)}; {pct(inside)} in the 0.5-0.95 band, {pct(smallest)} in the smallest 5%, {pct(above)} in the top half (top-{s} of a random rank-{args.rank} update: {pct(n_inside)} / {pct(n_smallest)} / {pct(n_above)}) | {holds}{note} |")
        final, reference = layer_counts(runs, "final"), layer_counts(runs, "random_rank_r")
        if final["k"]:
            n50, ref50 = tsd.quantiles(final["c50"], (0.5,))[0], tsd.quantiles(reference["c50"], (0.5,))[0]
            n90, ref90 = tsd.quantiles(final["c90"], (0.5,))[0], tsd.quantiles(reference["c90"], (0.5,))[0]
            holds = "yes" if n50 <= s and n50 <= 0.5 * ref50 else f"partly (as few for a random rank-{args.rank} update: the 1/sigma_i weighting)" if n50 <= s else "no"
            lines.append(f"| only a handful of directions carry the change | {runs.short} | median over layers: {n50:g} directions hold 50% and {n90:g} hold 90% of the final change-rate mass, of k_u = {min(final['k'])}-{max(final['k'])} (random rank-{args.rank} update: {ref50:g} and {ref90:g}) | {holds} |")
        null_rows = overlaps(runs, "random_rank_r", s)
        null = statistics.mean(r["overlap"] for r in null_rows) if null_rows else 0.0
        for t in args.warmups:
            rows = overlaps(runs, t, s)
            if not rows:
                continue
            mean = statistics.mean(r["overlap"] for r in rows)
            chance = statistics.mean(r["chance"] for r in rows)
            lines.append(
                f"| the dW after t steps predicts the final TSD (key finding) | {runs.short} | t = {t}: mean overlap {num(mean)} (chance {num(chance, 3)}; top-{s} of a random rank-{args.rank} update: {num(null)}), "
                f"median {num(tsd.quantiles([r['overlap'] for r in rows], (0.5,))[0])}, captured final mass {num(statistics.mean(r['captured'] for r in rows))}, over {len(rows)} layer x seed pairs | {overlap_verdict(mean, null)} |"
            )
    return lines


def weights_of(runs: ModelRuns) -> str:
    found = {r["settings"]["weights"] for r in [*runs.lora.values(), *(x for by_seed in runs.dash.values() for x in by_seed.values())]}
    return "/".join(sorted(found))


def build_report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The whole markdown section body (without the provenance header)."""
    models = group(results)
    layers = sorted({len(r["layers"]) for r in results})
    setup = (
        f"**Setup.** DreamBooth on `samples/robot` (6 photos) with the project's trainer and the demo's recipe without its prior preservation (AdamW, lr {LEARNING_RATE:g} constant, batch 1, centre crop, "
        f"the photos' loss masks, 128 px on mini-sdxl, 64 px on tiny-sdxl), r = {args.rank}, alpha = r, s = {args.directions}, targets every linear layer of the UNet's transformer blocks "
        f"({', '.join(KOHYA_UNET_TARGETS)}); per model and seed one plain-LoRA run and one LoRA-Dash run per t "
        f"in {{{', '.join(map(str, args.warmups))}}}, all {args.steps} steps; {'seed 0' if args.seeds == 1 else f'seeds 0-{args.seeds - 1}'}; {'/'.join(map(str, layers))} adapted layers analysed per model"
        f"{'' if args.max_layers is None else f' (the first {args.max_layers} in module order)'}. mini-sdxl is pretrained on the project's procedural world; tiny-sdxl has random weights."
    )
    setup += " Weights measured (SHA-256 of the UNet file, first 12 digits): " + ", ".join(f"{runs.short} `{weights_of(runs)}`" for runs in models) + "."
    sections = [[setup], positions_tables(models, args), concentration_table(models, args), overlap_tables(models, args), cost_table(models, args), ["**Verdicts.**", "", *verdict_lines(models, args)]]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"

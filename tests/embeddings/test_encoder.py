"""Encoder tests: same vectors as sentence-transformers, order, shapes, fp16 copies, errors, CUDA.

No Django fixtures here: the GPU machine has torch and sentence-transformers but no Django, and
runs this module alone (`pytest -o addopts= --noconftest -m gpu tests/embeddings/test_encoder.py`).
EMBEDDINGS_MODEL_DIR names the model directory where the packaged model is not installed.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sentence_transformers import SentenceTransformer

from embeddings.encoder import SentenceEncoder, default_model_dir, load_encoder
from embeddings.encoder.batches import cpu_batching, prefetched

ROOT = Path(__file__).resolve().parent.parent.parent
MODEL_DIR = Path(os.environ.get("EMBEDDINGS_MODEL_DIR") or default_model_dir())
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

_words = random.Random(20261125)
_VOCABULARY = [
    "about",
    "and",
    "answered",
    "asked",
    "because",
    "blue",
    "ceramic",
    "customers",
    "dashboards",
    "for",
    "invoices",
    "late",
    "latency",
    "mugs",
    "of",
    "order",
    "out",
    "ran",
    "refunds",
    "shipped",
    "support",
    "the",
    "tickets",
    "warehouse",
    "while",
]
# Short, long (past 256 tokens, so truncated), unicode, empty, punctuation-only and ordinary texts.
TEXTS = [
    "",
    " ",
    "a",
    "Hello!",
    "?!?!",
    "...",
    "ok",
    "The cat sat on the mat.",
    "Refund requested: order #4521 arrived broken (box crushed).",
    "東京は日本の首都です。",
    "Ünïcödé têxt wïth àccents, naïve café, crème brûlée",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم",
    "🚀🚀🚀 launch day 🎉",
    "e-mail me at someone@example.com or visit https://example.com/a?b=1&c=2",
    "$1,234.56 (50% off!!!) -- 2026-11-25T08:00:00Z",
    "C++ vs. Rust: zero-cost abstractions?",
    "\tTabs\tand\nnew\nlines\r\n",
    "UPPER CASE SHOUTING ABOUT THE DASHBOARD",
    "word " * 400,
    "A long review. " * 120,
    " ".join(_words.choice(_VOCABULARY) for _ in range(300)),
] + [" ".join(_words.choice(_VOCABULARY) for _ in range(_words.randint(3, 90))) for _ in range(20)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the row-wise cosine similarity of two matrices."""
    similarity: np.ndarray = (a * b).sum(axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )
    return similarity


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """sentence-transformers' vectors of TEXTS, fp32 on the CPU (float() also widens fp16 files)."""
    model = SentenceTransformer(str(MODEL_DIR), device="cpu").float()
    vectors: np.ndarray = model.encode(
        TEXTS, batch_size=16, convert_to_numpy=True, normalize_embeddings=True
    )
    return vectors


@pytest.fixture(scope="module")
def fp32_encoder() -> SentenceEncoder:
    return load_encoder(MODEL_DIR, device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def default_encoder() -> SentenceEncoder:
    return load_encoder(MODEL_DIR, device="cpu")


@pytest.fixture(scope="module")
def fp16_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fp16 copy of the model, written by scripts/fp16_model.py."""
    target = tmp_path_factory.mktemp("fp16") / "minilm-fp16"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "fp16_model.py"),
            str(target),
            "--model-dir",
            str(MODEL_DIR),
        ],
        check=True,
        capture_output=True,
    )
    return target


def test_fp32_matches_sentence_transformers(
    fp32_encoder: SentenceEncoder, reference: np.ndarray
) -> None:
    """In fp32 every vector equals sentence-transformers' to rounding (cosine >= 0.99999)."""
    vectors = fp32_encoder.encode(TEXTS)
    assert vectors.shape == reference.shape
    similarity = cosines(vectors, reference)
    assert similarity.min() >= 0.99999, TEXTS[int(similarity.argmin())]


def test_default_precision_matches_sentence_transformers(
    default_encoder: SentenceEncoder, reference: np.ndarray
) -> None:
    """The default dtype on this CPU (bf16 where it has bf16 instructions) keeps cosine >= 0.999."""
    similarity = cosines(default_encoder.encode(TEXTS), reference)
    assert similarity.min() >= 0.999, TEXTS[int(similarity.argmin())]


def test_vectors_are_float32_unit_rows(default_encoder: SentenceEncoder) -> None:
    """Vectors are float32 rows of the model's dimension with L2 norm 1."""
    vectors = default_encoder.encode(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), 384) == (len(TEXTS), default_encoder.dimensions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_rows_follow_input_order_whatever_the_batching(fp32_encoder: SentenceEncoder) -> None:
    """Shuffled input gives the same vectors in the shuffled order, for any batch size."""
    baseline = fp32_encoder.encode(TEXTS)
    order = list(range(len(TEXTS)))
    random.Random(7).shuffle(order)
    for batch_size in (None, 1, 3, 16, 1000):
        vectors = fp32_encoder.encode([TEXTS[i] for i in order], batch_size=batch_size)
        assert cosines(vectors, baseline[order]).min() >= 0.99999, batch_size


def test_cpu_batches_hold_the_same_bytes_of_activations_in_any_dtype(
    fp32_encoder: SentenceEncoder,
) -> None:
    """fp32 batches hold half the tokens of bf16 ones (bench/cpu_batches.py measured why)."""
    fp32 = fp32_encoder.batching
    bf16 = load_encoder(device="cpu", dtype="bf16").batching
    assert (bf16.batch_tokens, fp32.batch_tokens) == (2048, 1024)
    assert replace(fp32, batch_tokens=2048) == bf16 == cpu_batching(torch.bfloat16)


def test_chunked_prefetched_batches_give_the_same_vectors(fp32_encoder: SentenceEncoder) -> None:
    """Many small chunks prepared by the background thread (the CUDA path) change no vector."""
    baseline = fp32_encoder.encode(TEXTS)
    default = fp32_encoder.batching
    fp32_encoder.batching = replace(
        default, chunk_texts=8, first_chunk=3, batch_tokens=200, max_batch=5, prefetch=2
    )
    try:
        vectors = fp32_encoder.encode(TEXTS)
    finally:
        fp32_encoder.batching = default
    assert cosines(vectors, baseline).min() >= 0.99999


def test_prefetching_raises_the_producers_error_and_stops_when_closed() -> None:
    """The background thread's exception reaches the consumer; closing early ends the thread."""

    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("tokenizing failed")

    received = prefetched(failing(), depth=1)
    assert [next(received), next(received)] == [1, 2]
    with pytest.raises(RuntimeError, match="tokenizing failed"):
        next(received)
    endless = prefetched(iter(range(10**9)), depth=2)
    assert next(endless) == 0
    endless.close()
    assert not [t for t in threading.enumerate() if t.name == "encoder-prefetch"]


def test_texts_past_the_limit_are_truncated(fp32_encoder: SentenceEncoder) -> None:
    """Texts longer than max_seq_length (256 tokens) are cut: 300 and 400 words give one vector."""
    assert fp32_encoder.spec.max_seq_length == 256
    vectors = fp32_encoder.encode(["word " * 300, "word " * 400, "word " * 100])
    assert cosines(vectors[:1], vectors[1:2])[0] >= 0.99999
    assert cosines(vectors[:1], vectors[2:3])[0] < 0.99999


def test_empty_input_gives_an_empty_matrix(default_encoder: SentenceEncoder) -> None:
    """No texts give a (0, dimensions) float32 matrix."""
    vectors = default_encoder.encode([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_identity(default_encoder: SentenceEncoder, fp16_dir: Path) -> None:
    """The packaged model is called all-MiniLM-L6-v2, another directory by its basename or name."""
    assert load_encoder(device="cpu").model_name == "all-MiniLM-L6-v2"
    assert default_encoder.device == torch.device("cpu")
    assert load_encoder(fp16_dir, device="cpu").model_name == "minilm-fp16"
    assert load_encoder(fp16_dir, name="mini", device="cpu").model_name == "mini"


def test_fp16_copy_loads_and_matches(fp16_dir: Path, reference: np.ndarray) -> None:
    """scripts/fp16_model.py halves the weights; loaded on CPU in fp32 they still match ST."""
    with safe_open(str(fp16_dir / "model.safetensors"), framework="pt") as file:
        dtypes = {file.get_slice(key).get_dtype() for key in file.keys()}  # noqa: SIM118
    assert "F32" not in dtypes
    assert "F16" in dtypes
    original = (MODEL_DIR / "model.safetensors").stat().st_size
    assert (fp16_dir / "model.safetensors").stat().st_size < original * 0.55
    encoder = load_encoder(fp16_dir, device="cpu", dtype="fp32")
    assert encoder.bert.word_embeddings.dtype == torch.float32
    assert cosines(encoder.encode(TEXTS), reference).min() >= 0.999


def test_fp16_copy_loads_in_sentence_transformers(fp16_dir: Path, reference: np.ndarray) -> None:
    """sentence-transformers loads the fp16 copy too, with the same vectors."""
    model = SentenceTransformer(str(fp16_dir), device="cpu").float()
    vectors = model.encode(TEXTS[:8], convert_to_numpy=True, normalize_embeddings=True)
    assert cosines(vectors, reference[:8]).min() >= 0.999


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tpu"}, "device: 'tpu' is not one of"),
        ({"device": "cuda:x"}, "device: 'cuda:x' is not one of"),
        ({"dtype": "int8"}, "dtype: 'int8' is not one of"),
        ({"dtype": "fp16", "device": "cpu"}, "dtype: 'fp16' is for CUDA"),
        ({"model_dir": "/nonexistent/model"}, "model_dir: '/nonexistent/model' is not a directory"),
    ],
)
def test_bad_arguments_are_value_errors_naming_them(kwargs: dict[str, Any], message: str) -> None:
    """A wrong device, dtype or model directory is a ValueError naming it."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_encoder(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_value_error() -> None:
    """Asking for CUDA where there is none is a ValueError naming the device."""
    with pytest.raises(ValueError, match="device: 'cuda' was asked for but CUDA is not available"):
        load_encoder(device="cuda")


@pytest.mark.parametrize(
    "missing", ["config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json"]
)
def test_incomplete_model_dir_names_the_missing_file(
    fp16_dir: Path, tmp_path: Path, missing: str
) -> None:
    """A model directory without one of its files is a ValueError naming that file."""
    broken = tmp_path / "broken"
    shutil.copytree(fp16_dir, broken)
    (broken / missing).unlink()
    with pytest.raises(ValueError, match=f"model_dir: .*{Path(missing).name}"):
        load_encoder(broken, device="cpu")


def test_unsupported_model_is_a_value_error(fp16_dir: Path, tmp_path: Path) -> None:
    """A model directory of another architecture is refused with a ValueError saying so."""
    other = tmp_path / "other"
    shutil.copytree(fp16_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ValueError, match=r"model_dir: .* holds a 'roberta' model, not bert"):
        load_encoder(other, device="cpu")


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("one string", "texts: expected a sequence of strings"),
        (["ok", 3], r"texts\[1\]: expected a string, got int"),
    ],
)
def test_bad_texts_are_value_errors(
    default_encoder: SentenceEncoder, texts: object, message: str
) -> None:
    """A bare string or a non-string item is a ValueError naming the index."""
    with pytest.raises(ValueError, match=message):
        default_encoder.encode(texts)  # type: ignore[arg-type]


def test_bad_batch_size_is_a_value_error(default_encoder: SentenceEncoder) -> None:
    """A batch size below 1 is a ValueError naming it."""
    with pytest.raises(ValueError, match="batch_size: 0 is not a positive integer"):
        default_encoder.encode(["a"], batch_size=0)


def test_importing_the_encoder_loads_no_django() -> None:
    """embeddings.encoder and default_model_dir() import nothing of Django."""
    code = (
        "import sys; from embeddings.encoder import default_model_dir; default_model_dir(); "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(("dtype", "floor"), [("bf16", 0.999), ("fp16", 0.999), ("fp32", 0.99999)])
def test_cuda_matches_sentence_transformers(
    reference: np.ndarray, dtype: str, floor: float
) -> None:
    """On CUDA, bf16 (the default), fp16 and fp32 all match sentence-transformers' fp32 vectors."""
    encoder = load_encoder(MODEL_DIR, device="cuda", dtype=dtype)
    assert encoder.device.type == "cuda"
    vectors = encoder.encode(TEXTS)
    similarity = cosines(vectors, reference)
    assert similarity.min() >= floor, (
        dtype,
        float(similarity.min()),
        TEXTS[int(similarity.argmin())],
    )
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_cuda_default_pipeline_keeps_order_across_chunks() -> None:
    """Many texts (several chunks and batches, prefetched) come back in input order on CUDA."""
    rng = random.Random(11)
    texts = [
        " ".join(rng.choice(_VOCABULARY) for _ in range(rng.randint(1, 120))) for _ in range(20000)
    ]
    fast = load_encoder(MODEL_DIR, device="auto")
    assert fast.device.type == "cuda"
    assert fast.dtype == torch.bfloat16
    exact = load_encoder(MODEL_DIR, device="cuda", dtype="fp32")
    vectors = fast.encode(texts)
    sample = rng.sample(range(len(texts)), 300)
    expected = exact.encode([texts[i] for i in sample], batch_size=7)
    assert cosines(vectors[sample], expected).min() >= 0.999


def test_a_model_of_another_width_is_refused_before_loading(tmp_path: Path) -> None:
    """A model whose vectors are not EMBEDDING_DIMENSIONS wide is refused at load, naming both widths."""
    wide = tmp_path / "wide-model"
    shutil.copytree(default_model_dir(), wide)
    config = json.loads((wide / "config.json").read_text())
    config["hidden_size"] = 768
    (wide / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match="produces 768-dimensional vectors, but the vector column holds 384"
    ):
        load_encoder(wide, dimensions=384)
    # The packaged model is exactly as wide as the column.
    assert load_encoder(dimensions=384).dimensions == 384


def test_worker_refuses_a_model_wider_than_the_column(settings, tmp_path):
    """The worker's encoder loader names both widths when EMBEDDINGS_MODEL_DIR has another width."""
    from embeddings import worker

    wide = tmp_path / "wide-model"
    shutil.copytree(default_model_dir(), wide)
    config = json.loads((wide / "config.json").read_text())
    config["hidden_size"] = 512
    (wide / "config.json").write_text(json.dumps(config))
    settings.EMBEDDINGS_MODEL_DIR = str(wide)
    previous, worker._encoder = worker._encoder, None
    try:
        with pytest.raises(ValueError, match=r"512-dimensional vectors.*holds 384"):
            worker.get_encoder()
        assert worker._encoder is None
    finally:
        worker._encoder = previous

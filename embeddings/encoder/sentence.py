"""SentenceEncoder: texts to L2-normalised vectors on the CPU or a GPU, and `load_encoder`."""

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from embeddings.encoder.batches import (
    CUDA_BATCHING,
    Batch,
    cpu_batching,
    load_tokenizer,
    make_batches,
    prefetched,
)
from embeddings.encoder.bert import WEIGHTS_FILE, Bert, load_weights
from embeddings.encoder.files import default_model_dir, read_model_spec
from embeddings.encoder.packing import make_packed_batches

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
DTYPES: dict[str, torch.dtype | None] = {
    "auto": None,
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
# Batches whose results may still be on their way from the GPU before the host waits for one.
CUDA_IN_FLIGHT = 3


def cpu_has_native_bf16() -> bool:
    """Return whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX), per /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str) -> torch.device:
    """Return the torch device of "auto", "cpu", "cuda" or "cuda:N"; anything else is a ValueError."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} was asked for but CUDA is not available")
        # An explicit index, so weights, copies and events all stay on one GPU.
        index = torch.cuda.current_device() if device == "cuda" else int(device[5:])
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {device!r} does not exist ({torch.cuda.device_count()} CUDA devices)"
            )
        return torch.device("cuda", index)
    raise ValueError(f"device: {device!r} is not one of {', '.join(DEVICES)}")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Return the compute dtype of "auto", "fp32", "fp16" or "bf16" on `device`."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    chosen = DTYPES[dtype]
    if chosen is None:
        if device.type == "cuda":
            return torch.bfloat16
        # Where the CPU has bf16 instructions its bf16 matrix products run 2.2x as fast as fp32
        # ones, and the vectors keep cosine >= 0.9998 to fp32 ones (tests/embeddings/test_encoder.py).
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if device.type == "cpu" and chosen == torch.float16:
        raise ValueError("dtype: 'fp16' is for CUDA; on CPU use 'fp32', 'bf16' or 'auto'")
    return chosen


class SentenceEncoder:
    """A loaded sentence-embedding model: `encode` turns texts into unit vectors."""

    model_name: str
    dimensions: int
    device: torch.device

    def __init__(
        self, *, model_dir: Path, model_name: str, device: torch.device, dtype: torch.dtype
    ) -> None:
        spec = read_model_spec(model_dir)
        self.tokenizer, self.pad_id = load_tokenizer(
            model_dir / "tokenizer.json", max_length=spec.max_seq_length
        )
        if not (model_dir / WEIGHTS_FILE).is_file():
            raise ValueError(f"model_dir: {WEIGHTS_FILE} is missing in {model_dir}")
        self.bert = Bert(spec, load_weights(model_dir / WEIGHTS_FILE), device=device, dtype=dtype)
        self.spec = spec
        self.model_name = model_name
        self.dimensions = spec.hidden_size
        self.device = device
        self.dtype = dtype
        self.batching = CUDA_BATCHING if device.type == "cuda" else cpu_batching(dtype)

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.model_name!r}, device={self.device}, dtype={self.dtype})"

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> NDArray[np.float32]:
        """Return (len(texts), dimensions) float32 unit vectors, rows in the order of `texts`.

        Without `batch_size`, batches are cut by a token budget (the fastest choice).
        """
        if isinstance(texts, str):
            raise ValueError("texts: expected a sequence of strings, got one string")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size: {batch_size!r} is not a positive integer")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{index}]: expected a string, got {type(text).__name__}")
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        if self.device.type == "cuda":
            self._encode_on_gpu(texts, out, batch_size=batch_size)
            return out
        # The CPU computes real tokens only (embeddings/encoder/packing.py); a GPU is kept
        # busy by big regular blocks, and packing there is not measured.
        packed = make_packed_batches(
            texts,
            tokenizer=self.tokenizer,
            lower=self.spec.do_lower_case,
            batching=self.batching,
            batch_size=batch_size,
        )
        if self.batching.prefetch:
            packed = prefetched(packed, depth=self.batching.prefetch)
        with closing(packed), torch.inference_mode():
            for batch in packed:
                out[batch.positions] = F.normalize(self.bert.packed(batch), dim=-1).numpy()
        return out

    def _encode_on_gpu(
        self, texts: Sequence[str], out: NDArray[np.float32], *, batch_size: int | None
    ) -> None:
        batches = make_batches(
            texts,
            tokenizer=self.tokenizer,
            pad_id=self.pad_id,
            lower=self.spec.do_lower_case,
            batching=self.batching,
            batch_size=batch_size,
        )
        if self.batching.prefetch:
            batches = prefetched(batches, depth=self.batching.prefetch)
        # closing(): on an error the prefetching thread stops now, not when garbage is collected.
        # Events and pinned copies follow the current device: make it the encoder's.
        with closing(batches), torch.inference_mode(), torch.cuda.device(self.device):
            self._queue_on_gpu(batches, out)

    def _queue_on_gpu(self, batches: Iterator[Batch], out: NDArray[np.float32]) -> None:
        """Queue batches on the GPU without waiting for it, except for results a few batches old."""
        in_flight: deque[tuple[NDArray[np.int64], torch.Tensor, torch.cuda.Event]] = deque()
        for batch in batches:
            ids = batch.ids.to(self.device, non_blocking=True)
            mask = None if batch.mask is None else batch.mask.to(self.device, non_blocking=True)
            vectors = F.normalize(self.bert(ids, mask), dim=-1)
            host = torch.empty(vectors.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(vectors, non_blocking=True)
            copied = torch.cuda.Event()  # type: ignore[no-untyped-call]
            copied.record()
            in_flight.append((batch.positions, host, copied))
            if len(in_flight) > CUDA_IN_FLIGHT:
                _collect(*in_flight.popleft(), out=out)
        while in_flight:
            _collect(*in_flight.popleft(), out=out)


def _collect(
    positions: NDArray[np.int64],
    host: torch.Tensor,
    copied: torch.cuda.Event,
    *,
    out: NDArray[np.float32],
) -> None:
    copied.synchronize()
    out[positions] = host.numpy()


def load_encoder(
    model_dir: str | Path | None = None,
    *,
    name: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    dimensions: int | None = None,
) -> SentenceEncoder:
    """Load the encoder from `model_dir` (default: the packaged all-MiniLM-L6-v2).

    `device` is "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"; `dtype` is "auto"
    (bf16 on CUDA and on CPUs with bf16 instructions, else fp32), "fp32", "fp16" (CUDA only) or
    "bf16". `name`, stored with each vector, defaults to all-MiniLM-L6-v2 for the packaged
    model and to the directory's name otherwise. `dimensions`, when given, is the width the
    caller stores: a model of another width is refused before its weights load, naming both.
    """
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    if model_dir is None:
        path, default_name = default_model_dir(), DEFAULT_MODEL_NAME
    else:
        path = Path(model_dir)
        default_name = path.resolve().name
    if not path.is_dir():
        raise ValueError(f"model_dir: {str(path)!r} is not a directory")
    if dimensions is not None:
        width = read_model_spec(path).hidden_size
        if width != dimensions:
            raise ValueError(
                f"model_dir: {path} produces {width}-dimensional vectors, but the vector "
                f"column holds {dimensions} (EMBEDDING_DIMENSIONS); use a {dimensions}-"
                "dimensional model or migrate the column"
            )
    encoder = SentenceEncoder(
        model_dir=path,
        model_name=name or default_name,
        device=resolved_device,
        dtype=resolved_dtype,
    )
    logger.info("Loaded %r from %s", encoder, path)
    return encoder

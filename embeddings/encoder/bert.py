"""The BERT forward pass in plain PyTorch, from safetensors weights, with sentence pooling."""

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open

from embeddings.encoder.files import ModelSpec
from embeddings.encoder.packing import AttentionGroup, PackedBatch

WEIGHTS_FILE = "model.safetensors"
# Longest (padded) attention block, in tokens, whose bf16 attention runs as plain products on
# the CPU.
PLAIN_ATTENTION_MAX_LENGTH = 64


def load_weights(path: Any) -> dict[str, torch.Tensor]:
    """Read a safetensors file on the CPU, floating tensors widened to fp32 (files may be fp16)."""
    weights: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as file:
        for key in file.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensor = file.get_tensor(key)
            # Checkpoints saved from BertForX carry a "bert." prefix; the encoder is the same.
            weights[key.removeprefix("bert.")] = (
                tensor.float() if tensor.is_floating_point() else tensor
            )
    return weights


class Layer:
    """Weights of one transformer layer, Q, K and V fused into one matrix."""

    def __init__(
        self,
        weights: dict[str, torch.Tensor],
        prefix: str,
        *,
        query_scale: float,
        to: dict[str, Any],
    ) -> None:
        def get(name: str) -> torch.Tensor:
            return weights[prefix + name].to(**to)

        parts = ("query", "key", "value")
        qkv_weight = torch.cat([weights[f"{prefix}attention.self.{part}.weight"] for part in parts])
        qkv_bias = torch.cat([weights[f"{prefix}attention.self.{part}.bias"] for part in parts])
        # 1/sqrt(head_dim) is folded into the query projection (in fp32, before any cast), so
        # attention needs no scaling of its own.
        hidden = qkv_weight.shape[1]
        qkv_weight[:hidden] *= query_scale
        qkv_bias[:hidden] *= query_scale
        self.qkv_weight, self.qkv_bias = qkv_weight.to(**to), qkv_bias.to(**to)
        self.out_weight = get("attention.output.dense.weight")
        self.out_bias = get("attention.output.dense.bias")
        self.ln1_weight = get("attention.output.LayerNorm.weight")
        self.ln1_bias = get("attention.output.LayerNorm.bias")
        self.up_weight = get("intermediate.dense.weight")
        self.up_bias = get("intermediate.dense.bias")
        self.down_weight = get("output.dense.weight")
        self.down_bias = get("output.dense.bias")
        self.ln2_weight = get("output.LayerNorm.weight")
        self.ln2_bias = get("output.LayerNorm.bias")


class Bert:
    """A BERT encoder with pooling: token ids in, one fp32 vector per text out."""

    def __init__(
        self,
        spec: ModelSpec,
        weights: dict[str, torch.Tensor],
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.spec = spec
        self.on_cuda = device.type == "cuda"
        to: dict[str, Any] = {"device": device, "dtype": dtype}
        query_scale = 1 / math.sqrt(spec.hidden_size // spec.num_heads)
        try:
            self.word_embeddings = weights["embeddings.word_embeddings.weight"].to(**to)
            # Every text is one segment (token type 0) at positions 0..n-1: fold both tables.
            self.position_embeddings = (
                weights["embeddings.position_embeddings.weight"]
                + weights["embeddings.token_type_embeddings.weight"][0]
            ).to(**to)
            self.embed_ln_weight = weights["embeddings.LayerNorm.weight"].to(**to)
            self.embed_ln_bias = weights["embeddings.LayerNorm.bias"].to(**to)
            self.layers = [
                Layer(weights, f"encoder.layer.{i}.", query_scale=query_scale, to=to)
                for i in range(spec.num_layers)
            ]
        except KeyError as error:
            raise ValueError(f"model_dir: {WEIGHTS_FILE} lacks the weight {error}") from None

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Return pooled fp32 vectors (not normalised) of (batch, length) token ids.

        `mask` is True on real tokens and False on padding; None means there is no padding,
        which spares the attention every masking step.
        """
        x = self._embed(ids, self.position_embeddings[: ids.shape[1]])
        # True where a key may be attended to, broadcast over heads and queries.
        keep = None if mask is None else mask[:, None, None, :]
        x = self._layers(x, lambda qkv: self._attention(qkv, keep))
        return self._pool(x, mask)

    def packed(self, batch: PackedBatch) -> torch.Tensor:
        """Return pooled fp32 vectors (not normalised) of a packed batch, one per text.

        Every step but attention computes the batch's real tokens only, as one matrix.
        """
        x = self._embed(batch.ids, self.position_embeddings[batch.token_positions])
        x = self._layers(x, lambda qkv: self._packed_attention(qkv, batch.groups))
        return self._pool_packed(x, batch)

    def _embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = F.embedding(ids, self.word_embeddings) + positions
        hidden = (self.spec.hidden_size,)
        return F.layer_norm(
            x, hidden, self.embed_ln_weight, self.embed_ln_bias, self.spec.layer_norm_eps
        )

    def _layers(
        self, x: torch.Tensor, attend: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Run the transformer layers on `x`; `attend` turns fused QKV projections into context."""
        hidden = (self.spec.hidden_size,)
        eps = self.spec.layer_norm_eps
        for layer in self.layers:
            qkv = F.linear(x, layer.qkv_weight, layer.qkv_bias)
            attended = F.linear(attend(qkv), layer.out_weight, layer.out_bias)
            attended += x
            x = F.layer_norm(attended, hidden, layer.ln1_weight, layer.ln1_bias, eps)
            up = self._activation(F.linear(x, layer.up_weight, layer.up_bias))
            down = F.linear(up, layer.down_weight, layer.down_bias)
            down += x
            x = F.layer_norm(down, hidden, layer.ln2_weight, layer.ln2_bias, eps)
        return x

    def _packed_attention(
        self, qkv: torch.Tensor, groups: tuple[AttentionGroup, ...]
    ) -> torch.Tensor:
        """Return the (tokens, hidden) context of packed (tokens, 3 * hidden) projections."""
        contexts = []
        for group in groups:
            rows = qkv[group.start : group.stop] if group.cells is None else qkv[group.cells]
            keep = None if group.mask is None else group.mask[:, None, None, :]
            context = self._attention(rows.view(group.texts, group.width, -1), keep)
            # Boolean indexing reads the real cells text by text: the packed order.
            contexts.append(context.flatten(0, 1) if group.mask is None else context[group.mask])
        return contexts[0] if len(contexts) == 1 else torch.cat(contexts)

    def _attention(self, qkv: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Return the attention context of fused (batch, length, 3 * hidden) projections."""
        batch, length, _ = qkv.shape
        q, k, v = qkv.view(batch, length, 3, self.spec.num_heads, -1).permute(2, 0, 3, 1, 4)
        if self.on_cuda or q.dtype == torch.float32 or length > PLAIN_ATTENTION_MAX_LENGTH:
            # Flash (no mask) or memory-efficient (mask) kernels; the scale is in the weights.
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0)
        else:
            # SDPA's CPU kernel is slow in bf16 for short texts: up to 64 tokens plain products
            # with the softmax in fp32 take half its time. Beyond that a batch's fp32 scores
            # outgrow the caches and SDPA's tiled kernel wins (bench/attention.py).
            scores = torch.matmul(q, k.transpose(-1, -2)).float()
            if keep is not None:
                scores.masked_fill_(keep.logical_not(), float("-inf"))
            context = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)
        return context.transpose(1, 2).reshape(batch, length, -1)

    def _activation(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.activation == "relu":
            return F.relu(x)
        if self.spec.activation == "gelu":
            return F.gelu(x)
        return F.gelu(x, approximate="tanh")

    def _pool(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.spec.pooling == "cls":
            return x[:, 0].float()
        if self.spec.pooling == "max":
            if mask is not None:
                x = x.masked_fill(~mask[:, :, None], float("-inf"))
            return x.amax(dim=1).float()
        if mask is None:
            return x.mean(dim=1, dtype=torch.float32)
        # Multiplying by 0/1 is exact in any dtype; the sum accumulates in fp32.
        summed = torch.sum(x * mask[:, :, None].to(x.dtype), dim=1, dtype=torch.float32)
        return summed / mask.sum(dim=1, keepdim=True).to(torch.float32)

    def _pool_packed(self, x: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        shape = (len(batch.lengths), x.shape[1])  # one fp32 row per text
        if self.spec.pooling == "cls":
            return x[batch.lengths.cumsum(0) - batch.lengths].float()
        if self.spec.pooling == "max":
            index = batch.text_of_token[:, None].expand(x.shape)
            pooled = torch.empty(shape, dtype=torch.float32)
            return pooled.scatter_reduce_(0, index, x.float(), "amax", include_self=False)
        summed = torch.zeros(shape, dtype=torch.float32).index_add_(
            0, batch.text_of_token, x.float()
        )
        return summed / batch.lengths[:, None].to(torch.float32)

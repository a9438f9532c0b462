"""Loaded models: what a model id needs to answer (`ModelInfo`) and the weights, kept in a memory-bounded LRU cache.

Fine-tuned LoRA adapters of one base share that base's weights: the first adapter wraps the base in a peft model,
later ones are added to it with `load_adapter`; base-model requests run with the adapters disabled. Each adapter
also keeps merged copies of the weights it adapts (W + scale * B @ A, a few dozen MB for a built-in model, counted
in the memory bound): a batch swaps them in and runs the plain base layers, because the adapter's own small
multiplies, casts and additions took about a tenth of a SmolLM2 scoring pass (docs/studies/inference-speed.md). Adapters
that cannot
be merged (int8 base layers, LoRA variants) are chosen with `set_adapter` instead. Encoders are whole models and
cached on their own. Tokenizers and checkpoint descriptions are small and kept apart from the weights, so a request
can be prepared while weights are loaded or evicted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from localft.base_models import get_spec, local_model_dir
from localft.base_models.prompt_shape import PromptShape
from localft.base_models.templates import TemplateKind, end_of_turn, template_kind
from localft.classifier import Member, PooledClassifier
from localft.classifier.model import encoder_source, load_encoder_features
from localft.errors import ModelError
from localft.inference import precision
from localft.inference.types import ModelArtifact
from localft.settings import Int8Policy
from localft.training.checkpoint import CheckpointMeta, read_checkpoint

Family = Literal["causal_lm", "encoder", "classifier"]
DEFAULT_MAX_MEMORY_BYTES = 8 * 1024**3
MAX_COUNTED_ANSWERS = 4096
"""Answer texts whose token counts a model remembers (label sets are small; free text rarely repeats)."""


@dataclass(frozen=True)
class ModelInfo:
    """Everything about a model but its weights: family, tokenizer, template and (for fine-tunes) the checkpoint."""

    key: str
    """Cache key: the checkpoint folder, or the base model folder."""
    family: Family
    base_dir: Path
    tokenizer: Any
    template: TemplateKind
    terminator: str
    """Text that ends an assistant answer (`<|im_end|>`, EOS); scored after each label so labels that are
    prefixes of others (`cited` / `cited by`) stay distinguishable."""
    checkpoint: Path | None = None
    meta: CheckpointMeta | None = None
    shape: PromptShape | None = None
    """What the training prompts shared, for classifiers that read requests back to it (`base_models.prompt_shape`)."""
    encoder_dirs: dict[str, Path] = field(default_factory=dict)
    """A pooled classifier's encoder members: member folder -> where its weights and tokenizer are."""
    _tokenizer_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    _counts: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def tokenize(self, text: str | list[str], **kwargs: Any) -> Any:
        """Call the tokenizer under a lock: a fast tokenizer keeps padding and truncation settings as shared state,
        so concurrent calls with different settings corrupt each other (seen here as ragged "padded" batches)."""
        with self._tokenizer_lock:
            return self.tokenizer(text, **kwargs)

    def count_tokens(self, text: str) -> int:
        """Tokens of an answer's text (usage). Remembered for the answers a classifier repeats: counting them
        again took a third of the request threads' time under concurrent encoder requests
        (docs/studies/inference-speed.md)."""
        count = self._counts.get(text)
        if count is None:
            count = len(self.tokenize(text, add_special_tokens=False)["input_ids"])
            if len(self._counts) < MAX_COUNTED_ANSWERS:
                self._counts[text] = count
        return count

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels) if self.meta and self.meta.task == "classification" else []

    @property
    def fingerprint(self) -> str:
        """Changes whenever different weights would answer (OpenAI's `system_fingerprint`)."""
        step = self.meta.step if self.meta else 0
        return "fp_" + hashlib.sha1(f"{self.key}:{step}".encode()).hexdigest()[:10]


def _family_of_folder(folder: Path) -> Family:
    config = json.loads((folder / "config.json").read_text())
    architectures = " ".join(config.get("architectures") or [])
    return "causal_lm" if "CausalLM" in architectures or "ForConditionalGeneration" in architectures else "encoder"


def describe(artifact: ModelArtifact, cache_dir: Path) -> ModelInfo:
    """Resolve an artifact to its base folder, family, tokenizer and checkpoint description (no weights)."""
    from transformers import AutoTokenizer

    meta = read_checkpoint(artifact.checkpoint) if artifact.checkpoint is not None else None
    if meta is not None and meta.family == "classifier":
        assert artifact.checkpoint is not None
        return _describe_classifier(artifact.checkpoint, meta, cache_dir)
    base_dir = local_model_dir(artifact.base_model, cache_dir)
    spec = get_spec(artifact.base_model)
    family: Family = meta.family if meta else (spec.family if spec else _family_of_folder(base_dir))
    tok_dir = artifact.checkpoint / "tokenizer" if artifact.checkpoint is not None else None
    tokenizer = AutoTokenizer.from_pretrained(tok_dir if tok_dir and tok_dir.is_dir() else base_dir)
    kind = template_kind(tokenizer, meta.chat_template if meta else "model")
    terminator = end_of_turn(tokenizer, kind) if family == "causal_lm" else ""
    key = str(Path(artifact.checkpoint).resolve()) if artifact.checkpoint is not None else str(base_dir.resolve())
    return ModelInfo(
        key=key,
        family=family,
        base_dir=base_dir,
        tokenizer=tokenizer,
        template=kind,
        terminator=terminator,
        checkpoint=artifact.checkpoint,
        meta=meta,
        shape=PromptShape.from_dict(meta.prompt_shape) if meta else None,
    )


def _describe_classifier(checkpoint: Path, meta: CheckpointMeta, cache_dir: Path) -> ModelInfo:
    """A pooled classifier: no single base model; its encoder members' folders are resolved here, once."""
    from transformers import AutoTokenizer

    members = [Member.from_dict(raw) for raw in meta.members]
    encoder_dirs = {
        m.folder: encoder_source(checkpoint, m, local_model_dir(m.base_model, cache_dir) if not m.tuned else checkpoint)
        for m in members
        if m.kind == "encoder"
    }
    first = next(iter(encoder_dirs.values()), None)
    return ModelInfo(
        key=str(checkpoint.resolve()),
        family="classifier",
        base_dir=first or checkpoint,
        tokenizer=AutoTokenizer.from_pretrained(first) if first else WordCounter(),
        template="model",
        terminator="",
        checkpoint=checkpoint,
        meta=meta,
        shape=PromptShape.from_dict(meta.prompt_shape),
        encoder_dirs=encoder_dirs,
    )


class WordCounter:
    """Counts words where a classifier has no encoder's tokenizer (TF-IDF alone): usage's `prompt_tokens`."""

    def __call__(self, text: str | list[str], **kwargs: Any) -> dict[str, Any]:
        texts = [text] if isinstance(text, str) else text
        ids = [list(range(len(t.split()))) for t in texts]
        return {"input_ids": ids[0] if isinstance(text, str) else ids}


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors")) or sum(
        f.stat().st_size for f in folder.rglob("*.bin")
    )


@dataclass
class _Entry:
    model: Any
    nbytes: int
    adapters: dict[str, int] = field(default_factory=dict)
    """For a causal base: checkpoint key -> bytes of each adapter loaded into it (merged copies included)."""
    merged: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)
    """Checkpoint key -> (base linear layer, its weight with the adapter merged in) for each layer it adapts."""
    uses: set[str] = field(default_factory=set)
    """Keys of shared entries this one runs on (a classifier's frozen encoders)."""


class WeightCache:
    """Models in memory, least recently used evicted first once `max_bytes` would be exceeded.

    Not thread-safe on its own: the engine calls it only while holding its compute lock.
    """

    def __init__(self, device: str, max_bytes: int = DEFAULT_MAX_MEMORY_BYTES, int8: Int8Policy = "auto") -> None:
        self.device = device
        self.max_bytes = max_bytes
        self.int8 = int8
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._adapter_owner: dict[str, str] = {}
        """Checkpoint key -> key of the base entry holding its adapter."""

    @property
    def used_bytes(self) -> int:
        return sum(e.nbytes + sum(e.adapters.values()) for e in self._entries.values())

    def loaded_keys(self) -> list[str]:
        """Bases, encoders and adapters in memory, least recently used first."""
        return [k for key, entry in self._entries.items() for k in (key, *entry.adapters)]

    @contextlib.contextmanager
    def running(self, info: ModelInfo) -> Iterator[Any]:
        """The causal model ready to answer as `info`'s model, loaded on first use: the base with its adapters off,
        or with the fine-tune's merged weights swapped in (restored afterwards), or with its adapter active."""
        base_key = str(info.base_dir.resolve())
        entry = self._get(base_key) or self._load_causal_base(info, base_key)
        if info.checkpoint is not None and info.key not in entry.adapters:
            self._load_adapter(entry, info, base_key)
        model, merged = entry.model, entry.merged.get(info.key)
        if merged is None:
            with _active_adapter(model, None if info.checkpoint is None else _adapter_name(info.key)):
                yield model
            return
        originals = [layer.weight.data for layer, _ in merged]
        with model.disable_adapter():
            try:
                for layer, weight in merged:
                    layer.weight.data = weight
                yield model
            finally:
                for (layer, _), original in zip(merged, originals, strict=True):
                    layer.weight.data = original

    def encoder(self, info: ModelInfo) -> Any:
        entry = self._get(info.key)
        if entry is None:
            from transformers import AutoModel, AutoModelForSequenceClassification

            if info.checkpoint is not None:
                model = AutoModelForSequenceClassification.from_pretrained(info.checkpoint / "model")
            else:
                model = AutoModel.from_pretrained(info.base_dir)
            model.to(self.device, dtype=self._dtype("encoder")).eval()
            self._quantize(model, "encoder")
            entry = self._put(info.key, _Entry(model=model, nbytes=precision.held_bytes(model)))
        return entry.model

    def classifier(self, info: ModelInfo) -> PooledClassifier:
        """A pooled classifier, loaded on first use; its frozen encoders are shared with other classifiers (an entry
        each, which takes the classifiers using it along when it is evicted)."""
        entry = self._get(info.key)
        if entry is not None:
            return entry.model  # type: ignore[no-any-return]
        assert info.meta is not None and info.checkpoint is not None
        own, shared = 0, set[str]()

        def load_encoder(member: Member, folder: Path) -> Any:
            nonlocal own
            source = info.encoder_dirs[member.folder]
            if member.tuned:
                features = self._encoder_features(source, member.max_length)
                own += precision.held_bytes(features.model)
                return features
            key = f"frozen:{source.resolve()}:{member.max_length}"
            frozen = self._get(key)
            if frozen is None:
                features = self._encoder_features(source, member.max_length)
                frozen = _Entry(model=features, nbytes=precision.held_bytes(features.model))
                self._make_room(frozen.nbytes, keep=shared)
                self._entries[key] = frozen
            shared.add(key)
            return frozen.model

        members = [Member.from_dict(raw) for raw in info.meta.members]
        model = PooledClassifier.load(info.checkpoint, members, info.meta.multi_label, load_encoder)
        heads = sum(head.weight.nbytes + head.bias.nbytes for _, _, head in model.members)
        self._make_room(own + heads, keep=shared)
        self._entries[info.key] = _Entry(model=model, nbytes=own + heads, uses=shared)
        return model

    def _encoder_features(self, source: Path, max_length: int) -> Any:
        features = load_encoder_features(source, self.device, max_length, self._dtype("encoder"))
        self._quantize(features.model, "encoder")
        return features

    def evict(self, key: str) -> bool:
        """Drop one checkpoint's weights (or a whole base with its adapters); True when something was dropped."""
        if key in self._adapter_owner:
            owner = self._adapter_owner.pop(key)
            entry = self._entries.get(owner)
            if entry is not None and key in entry.adapters:
                del entry.adapters[key]
                entry.merged.pop(key, None)
                if entry.adapters:
                    entry.model.delete_adapter(_adapter_name(key))
                else:  # the last adapter: unwrap so base requests run without peft layers
                    entry.model = entry.model.unload()
            return True
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        for adapter_key in entry.adapters:
            self._adapter_owner.pop(adapter_key, None)
        for user in [k for k, e in self._entries.items() if key in e.uses]:  # classifiers on a shared encoder
            self.evict(user)
        return True

    def _get(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def _make_room(self, incoming: int, keep: Collection[str] = ()) -> None:
        while self._entries and self.used_bytes + incoming > self.max_bytes:
            victim = next((k for k in self._entries if k not in keep), None)
            if victim is None:
                return  # only the model in use is left: it stays even when it alone exceeds the bound
            self.evict(victim)

    def _put(self, key: str, entry: _Entry) -> _Entry:
        self._make_room(entry.nbytes)
        self._entries[key] = entry
        return entry

    def _load_causal_base(self, info: ModelInfo, key: str) -> _Entry:
        from transformers import AutoModelForCausalLM

        try:
            model: Any = AutoModelForCausalLM.from_pretrained(info.base_dir, dtype=self._dtype("causal_lm"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"Could not load base model from {info.base_dir}: {exc}") from exc
        model = model.to(self.device).eval()
        self._quantize(model, "causal_lm")  # before any adapter wraps it: the adapters share the int8 base
        return self._put(key, _Entry(model=model, nbytes=precision.held_bytes(model)))

    def _dtype(self, family: Family) -> Any:
        """The float dtype weights load in; int8 layers take float32 inputs, so a quantized model stays float32."""
        import torch

        if precision.int8_applies(self.int8, family, self.device):
            return torch.float32
        return precision.compute_dtype(self.device)

    def _quantize(self, model: Any, family: Family) -> None:
        if precision.int8_applies(self.int8, family, self.device):
            precision.quantize_linears(model)

    def _load_adapter(self, entry: _Entry, info: ModelInfo, base_key: str) -> None:
        from peft import PeftModel

        assert info.checkpoint is not None
        adapter_dir = info.checkpoint / "adapter"
        if not adapter_dir.is_dir():
            raise ModelError(f"Checkpoint {info.checkpoint} has no adapter/ folder.")
        nbytes = _folder_bytes(adapter_dir)
        self._make_room(nbytes, keep={base_key})
        name = _adapter_name(info.key)
        if isinstance(entry.model, PeftModel):
            entry.model.load_adapter(str(adapter_dir), adapter_name=name)
        else:
            entry.model = PeftModel.from_pretrained(entry.model, str(adapter_dir), adapter_name=name)
        entry.model.eval()
        merged = _merged_weights(entry.model, name)
        if merged:
            merged_bytes = sum(weight.numel() * weight.element_size() for _, weight in merged)
            self._make_room(merged_bytes, keep={base_key})
            entry.merged[info.key] = merged
            nbytes += merged_bytes
        entry.adapters[info.key] = nbytes
        self._adapter_owner[info.key] = base_key


def _merged_weights(model: Any, adapter: str) -> list[tuple[Any, Any]]:
    """(base linear layer, weight + adapter delta in the weight's dtype) for every layer `adapter` adapts; empty when
    one of them cannot be merged into a plain float weight."""
    import torch
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    merged = []
    for module in model.modules():
        if not isinstance(module, LoraLayer) or adapter not in module.lora_A:
            continue
        if not isinstance(module, LoraLinear) or adapter in module.lora_variant:
            return []  # an adapted embedding or convolution, or a LoRA variant (DoRA, ...)
        base = module.get_base_layer()
        if type(base) is not torch.nn.Linear or precision.runs_in_int8(base):
            return []
        with torch.no_grad():
            delta = module.get_delta_weight(adapter).float()
            merged.append((base, (base.weight.float() + delta).to(base.weight.dtype)))
    return merged


def _adapter_name(key: str) -> str:
    # peft keeps adapters in module dicts, whose keys may not contain dots; paths do.
    return "ckpt_" + hashlib.sha1(key.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _active_adapter(model: Any, adapter: str | None) -> Iterator[None]:
    """Run the shared base with one fine-tune's adapter, or with all adapters off for base-model requests."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        yield
    elif adapter is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(adapter)
        yield

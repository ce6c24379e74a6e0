r"""Distillation inside a Hugging Face ``transformers.Trainer``: a loss hook and a ``Trainer``.

This module is the framework glue, nothing more: the per-token divergence is
:func:`~divergences.losses.distillation_loss` (from logits) or
:func:`~divergences.losses.fused_linear_distillation_loss` (from the last hidden states and the
LM heads), whose formulas come from the registry (:mod:`divergences.fdiv`). It imports
``transformers`` (the ``[llm]`` extra); :mod:`divergences.llm` loads it on first use of one of
its names, so ``import divergences.llm`` does not.

What it adds to the losses:

* the causal shift (the logits at position ``t`` score the token at ``t + 1``; the labels are
  aligned with ``input_ids`` as in ``transformers``, or already shifted as ``shift_labels``);
* the teacher's forward pass, without gradient;
* the reduction that ``Trainer`` expects under gradient accumulation: a sum over the counted
  tokens of every micro-batch divided by ``num_items_in_batch``, the count over the whole
  accumulated batch, so that ``k`` micro-batches give the gradient of one batch ``k`` times
  larger;
* on-policy distillation (GKD, Agarwal et al. 2024): with probability ``lmbda`` a micro-batch's
  completions are sampled from the student before the loss; with ``seq_kd`` the others are
  sampled from the teacher (sequence-level KD). The sampling happens when the micro-batches of
  an optimiser step are fetched, before any loss, so ``num_items_in_batch`` counts the tokens
  that are actually trained on (TRL's ``GKDTrainer`` counts the dataset's labels instead).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Mapping
from typing import Any

import torch
import transformers

from .._arrays import check_range
from ..losses._distill import distillation_loss
from ..losses._fused_linear import fused_linear_distillation_loss, transform

__all__ = ["DistillationTrainer", "distillation_compute_loss", "on_policy_inputs"]

#: The keys of a batch that are passed to the models' forward (the others are targets or
#: prompts for generation).
MODEL_KEYS = ("input_ids", "attention_mask", "position_ids", "token_type_ids")

#: Sampling defaults for on-policy generation: the student's own distribution, untruncated.
GENERATION_DEFAULTS = {"do_sample": True, "max_new_tokens": 128, "temperature": 1.0,
                       "top_k": 0, "top_p": 1.0}


# --------------------------------------------------------------------------------------------
# The loss hook
# --------------------------------------------------------------------------------------------


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model under ``DistributedDataParallel`` / ``DataParallel`` (``.module``) wrappers."""
    while isinstance(getattr(model, "module", None), torch.nn.Module):
        model = model.module
    return model


def _accepts(model: torch.nn.Module, name: str) -> bool:
    try:
        return name in inspect.signature(_unwrap(model).forward).parameters
    except (TypeError, ValueError):
        return False


def _targets(inputs: Mapping[str, Any], ignore_index: int) -> tuple[torch.Tensor, bool]:
    """``(labels, shifted)``: ``shift_labels`` as given, else ``labels[:, 1:]``."""
    if "shift_labels" in inputs and inputs["shift_labels"] is not None:
        return inputs["shift_labels"], False
    labels = inputs.get("labels")
    if labels is None:
        raise ValueError(
            "inputs must hold 'labels' (aligned with input_ids; tokens labelled "
            f"{ignore_index} do not count, e.g. the prompt and the padding) or 'shift_labels'"
        )
    if not isinstance(labels, torch.Tensor) or labels.ndim != 2:
        raise ValueError(
            "inputs['labels'] must be a (batch, length) integer tensor; got "
            f"{type(labels).__name__}{tuple(getattr(labels, 'shape', ()))}"
        )
    return labels[:, 1:], True


def _head(model: torch.nn.Module, who: str) -> tuple[torch.nn.Linear, float, float | None]:
    """The LM head of ``model`` and its logit transform ``(scale, softcap)`` from the config."""
    inner = _unwrap(model)
    get = getattr(inner, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(
            f"fused_linear=True needs {who}.get_output_embeddings() to be a torch.nn.Linear "
            f"(an adapter or a custom head is not applied by the fused loss); got "
            f"{type(head).__name__}: use fused_linear=False"
        )
    cfg = getattr(inner, "config", None)
    if cfg is not None and hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()
    scale = float(getattr(cfg, "logit_scale", None) or 1.0)          # Cohere: z * scale
    scaling = getattr(cfg, "logits_scaling", None)                    # Granite: z / scaling
    if scaling:
        scale /= float(scaling)
    softcap = getattr(cfg, "final_logit_softcapping", None)           # Gemma 2
    return head, scale, softcap


def _last_hidden(model: torch.nn.Module, model_inputs: dict[str, Any]):
    """``(outputs, last hidden state)`` with only the last position's logits formed."""
    kw = {"output_hidden_states": True, "return_dict": True}
    if _accepts(model, "logits_to_keep"):
        kw["logits_to_keep"] = 1
    out = model(**model_inputs, **kw)
    return out, out.hidden_states[-1]


def _check_head(out: Any, h: torch.Tensor, head: torch.nn.Linear, scale: float,
                softcap: float | None, who: str) -> None:
    """The fused loss's logits agree with the model's own at the last position."""
    with torch.no_grad():
        b = None if head.bias is None else head.bias.float()
        ours = transform(h[:, -1].float() @ head.weight.float().T
                         + (0.0 if b is None else b), scale, softcap)
        theirs = out.logits[:, -1].float()
        tol = (1e-3 if theirs.dtype == torch.float32 and h.dtype == torch.float32 else 3e-2)
        err = (ours - theirs).abs().max().item()
        if not err <= tol * (1.0 + theirs.abs().max().item()):
            raise ValueError(
                f"fused_linear=True: {who}'s logits are not (scaled, soft-capped) "
                "hidden_states[-1] @ get_output_embeddings().weight.T + bias (largest "
                f"difference {err:.3g} at the last position); use fused_linear=False"
            )


def distillation_compute_loss(
    model: torch.nn.Module,
    teacher_model: torch.nn.Module,
    inputs: Mapping[str, Any],
    *,
    divergence: str = "forward_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    hard_weight: float = 0.0,
    fused_linear: bool = False,
    num_items_in_batch: int | torch.Tensor | None = None,
    ignore_index: int = -100,
    return_outputs: bool = False,
    validate: bool = True,
    **loss_kwargs: Any,
) -> torch.Tensor | tuple[torch.Tensor, Any]:
    r"""Distillation loss of a causal language model against a teacher, for ``Trainer.compute_loss``.

    Runs the student ``model`` (with gradient) and ``teacher_model`` (under ``torch.no_grad``)
    on ``inputs`` and returns, over the completion tokens :math:`\mathcal{C}` (the positions
    whose shifted label is not ``ignore_index``),

    .. math::

        L = \frac{1}{N} \sum_{t \in \mathcal{C}}
            (1-h)\, D\big(p_t \,\|\, q_t\big) + h\, \mathrm{CE}_t,
        \qquad p_t = \mathrm{softmax}(z^{\text{teacher}}_t / T),\;
        q_t = \mathrm{softmax}(z^{\text{student}}_t / T),

    in nats, where :math:`z_t` are the logits at position ``t`` (which score the token at
    ``t + 1``), :math:`D` is ``divergence`` written as :math:`D(\text{teacher} \| \text{student})`
    (``"forward_kl"``: :math:`\mathrm{KL}(p\|q)`; ``"reverse_kl"``: :math:`\mathrm{KL}(q\|p)`;
    ``"js"``: :math:`\beta\,\mathrm{KL}(p\|m) + (1-\beta)\,\mathrm{KL}(q\|m)`,
    :math:`m = \beta p + (1-\beta) q`, ``beta=0`` forward and ``beta=1`` reverse KL; any name
    :func:`~divergences.losses.distillation_loss` takes), :math:`h` = ``hard_weight`` and
    :math:`\mathrm{CE}_t` the student's cross-entropy at temperature 1 on the label.
    :math:`N` is ``num_items_in_batch`` when given (the ``Trainer``'s count of counted tokens
    over all the micro-batches of an optimiser step, so that gradient accumulation gives the
    gradient of the whole batch), else :math:`|\mathcal{C}|` (the mean over this batch's
    counted tokens; 0 with a zero gradient when there is none).

    TRL's ``GKDTrainer.generalized_jsd_loss(student_logits, teacher_logits, labels, beta=b,
    temperature=T)`` is this loss with ``divergence="js", beta=b, temperature=T``: the same
    ``beta`` (the teacher's weight in the mixture and in the sum, with the same endpoints),
    and its ``reduction="batchmean"`` with labels is the mean over counted tokens used here.
    Note that ``GKDTrainer`` itself calls it at temperature 1; its ``temperature`` is the
    sampling temperature of generation.

    Parameters
    ----------
    model, teacher_model:
        Causal language models called as ``model(input_ids=..., attention_mask=...)`` and
        returning ``.logits`` (and ``.hidden_states`` with ``output_hidden_states=True``),
        as ``transformers`` models do; ``DistributedDataParallel`` wrappers are fine. Their
        modes are left as they are: put the teacher in ``eval()`` mode (the
        :class:`DistillationTrainer` does).
    inputs:
        A batch: ``input_ids`` (B, L) and ``labels`` (B, L) aligned with them, ``-100`` (i.e.
        ``ignore_index``) where a token does not count (prompt, padding); or ``shift_labels``
        (B, L), already aligned with the logits (padding-free collators). ``attention_mask``,
        ``position_ids`` and ``token_type_ids`` are passed to both models when present; other
        keys (``prompts``, ...) are ignored.
    fused_linear:
        ``True``: the loss is formed from the last hidden states and the LM heads' weights
        (``get_output_embeddings()``, a ``torch.nn.Linear``; a config's
        ``final_logit_softcapping``, ``logit_scale`` or ``logits_scaling`` is applied) by
        :func:`~divergences.losses.fused_linear_distillation_loss`, so the (B, L, V) logits
        are never materialised (the models are asked for the last position's logits only,
        through ``logits_to_keep=1`` where their forward takes it). With ``validate=True``
        those last-position logits are compared with the ones the fused loss forms, an error
        if they disagree (a head the fused loss does not reproduce). Not for heads that are
        sharded outside the forward pass (FSDP, ZeRO-3).
    return_outputs:
        Return ``(loss, student_outputs)`` (``Trainer.compute_loss``'s contract).
    loss_kwargs:
        Passed to the loss: ``skew``, ``alpha``, ``temperature_scaling``, ``vocab`` (different
        vocabulary sizes), ``chunk_size``, ``chunk_bytes``, ...

    Returns the float32 scalar loss (float64 for float64 models).

    >>> import torch, transformers
    >>> from divergences.llm import distillation_compute_loss
    >>> cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                                num_hidden_layers=1, num_attention_heads=2)
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> student = transformers.LlamaForCausalLM(cfg)
    >>> teacher = transformers.LlamaForCausalLM(cfg).eval()
    >>> ids = torch.randint(0, 32, (2, 6))
    >>> labels = ids.clone()
    >>> labels[:, :3] = -100                                   # the prompt does not count
    >>> batch = {"input_ids": ids, "labels": labels}
    >>> loss = distillation_compute_loss(student, teacher, batch, divergence="js", beta=0.5)
    >>> fused = distillation_compute_loss(student, teacher, batch, divergence="js", beta=0.5,
    ...                                   fused_linear=True)
    >>> loss.dtype, bool(loss > 0), bool(torch.allclose(loss, fused, atol=1e-6))
    (torch.float32, True, True)
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a mapping (a batch); got {type(inputs).__name__}")
    for who, m in (("model", model), ("teacher_model", teacher_model)):
        if not callable(m):
            raise TypeError(f"{who} must be a torch model; got {type(m).__name__}")
    if not isinstance(inputs.get("input_ids"), torch.Tensor):
        raise ValueError("inputs must hold 'input_ids' (a (batch, length) tensor)")
    labels, shifted = _targets(inputs, ignore_index)
    model_inputs = {k: inputs[k] for k in MODEL_KEYS if inputs.get(k) is not None}
    options = dict(divergence=divergence, beta=beta, temperature=temperature,
                   hard_weight=hard_weight, labels=labels, ignore_index=ignore_index,
                   num_items_in_batch=num_items_in_batch, **loss_kwargs)
    if fused_linear:
        head_s, scale_s, cap_s = _head(model, "model")
        head_t, scale_t, cap_t = _head(teacher_model, "teacher_model")
        outputs, h_s = _last_hidden(model, model_inputs)
        with torch.no_grad():
            out_t, h_t = _last_hidden(teacher_model, model_inputs)
        if validate:
            _check_head(outputs, h_s, head_s, scale_s, cap_s, "model")
            _check_head(out_t, h_t, head_t, scale_t, cap_t, "teacher_model")
        if shifted:
            h_s, h_t = h_s[:, :-1], h_t[:, :-1]
        loss = fused_linear_distillation_loss(
            h_s, head_s.weight, h_t, head_t.weight, head_s.bias, head_t.bias,
            student_logit_scale=scale_s, teacher_logit_scale=scale_t,
            student_final_logit_softcapping=cap_s, teacher_final_logit_softcapping=cap_t,
            validate=validate, **options,
        )
    else:
        outputs = model(**model_inputs)
        with torch.no_grad():
            t_logits = teacher_model(**model_inputs).logits
        s_logits = outputs.logits
        if shifted:
            s_logits, t_logits = s_logits[:, :-1], t_logits[:, :-1]
        loss = distillation_loss(s_logits, t_logits, validate=validate, **options)
    return (loss, outputs) if return_outputs else loss


# --------------------------------------------------------------------------------------------
# On-policy batches
# --------------------------------------------------------------------------------------------


def _eos_ids(cfg: transformers.GenerationConfig) -> list[int]:
    eos = cfg.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def _prompts(inputs: Mapping[str, Any], pad_id: int, ignore_index: int):
    """Left-padded ``(prompts, prompt_attention_mask)``: given as such, or each row's attended
    tokens before its first counted label."""
    if inputs.get("prompts") is not None:
        prompts = inputs["prompts"]
        mask = inputs.get("prompt_attention_mask")
        return prompts, (torch.ones_like(prompts) if mask is None else mask)
    ids = inputs.get("input_ids")
    labels = inputs.get("labels")
    if not isinstance(ids, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ValueError(
            "on-policy generation needs inputs['prompts'] (left-padded, with "
            "'prompt_attention_mask'), or 'input_ids' with 'labels' whose first counted token "
            "marks where each prompt ends"
        )
    b, length = ids.shape
    counted = labels != ignore_index
    first = torch.where(counted.any(1), counted.int().argmax(1), torch.full_like(ids[:, 0], length))
    attended = inputs.get("attention_mask")
    attended = torch.ones_like(ids, dtype=torch.bool) if attended is None else attended.bool()
    keep = (torch.arange(length, device=ids.device) < first[:, None]) & attended
    n = keep.sum(1)
    width = max(int(n.max()), 1)
    # Token j of row i (a kept one) goes to column width - n_i + (its rank among the kept).
    col = width - n[:, None] + keep.long().cumsum(1) - 1
    rows = torch.arange(b, device=ids.device)[:, None].expand(b, length)
    prompts = torch.full((b, width), pad_id, dtype=ids.dtype, device=ids.device)
    mask = torch.zeros((b, width), dtype=torch.long, device=ids.device)
    prompts[rows[keep], col[keep]] = ids[keep]
    mask[rows[keep], col[keep]] = 1
    return prompts, mask


def _generation_config(model: torch.nn.Module, generation_config: Any
                       ) -> transformers.GenerationConfig:
    if isinstance(generation_config, transformers.GenerationConfig):
        return generation_config
    if generation_config is not None and not isinstance(generation_config, Mapping):
        raise TypeError("generation_config must be a transformers.GenerationConfig, a dict of "
                        f"its fields or None; got {type(generation_config).__name__}")
    fields = dict(GENERATION_DEFAULTS)
    base = getattr(_unwrap(model), "generation_config", None)
    eos = getattr(base, "eos_token_id", None)
    pad = getattr(base, "pad_token_id", None)
    if pad is None and eos is not None:
        pad = eos[0] if isinstance(eos, (list, tuple)) else eos
    fields.update({k: v for k, v in (("eos_token_id", eos), ("pad_token_id", pad))
                   if v is not None})
    fields.update(generation_config or {})
    return transformers.GenerationConfig(**fields)


def on_policy_inputs(
    model: torch.nn.Module,
    inputs: Mapping[str, Any],
    generation_config: transformers.GenerationConfig | Mapping[str, Any] | None = None,
    *,
    ignore_index: int = -100,
) -> dict[str, torch.Tensor]:
    """A batch whose completions are sampled from ``model`` (the student, or the teacher for
    sequence-level KD), for :func:`distillation_compute_loss`.

    The prompts are ``inputs["prompts"]`` (left-padded, with ``prompt_attention_mask``), as
    TRL's GKD collator gives them, or else each row's attended tokens before its first label
    that is not ``ignore_index`` (any batch with the prompt masked out of the labels). Returns
    ``{"input_ids", "attention_mask", "labels"}``: prompt and completion, the completion
    attended up to and including its first end-of-sequence token, and labels equal to the
    completion tokens there and ``ignore_index`` elsewhere.

    ``generation_config`` is a ``transformers.GenerationConfig``, or a dict of its fields laid
    over the defaults: ancestral sampling at temperature 1 (``do_sample=True, top_k=0,
    top_p=1.0``), ``max_new_tokens=128``, and the model's end-of-sequence and padding ids. The
    model generates in ``eval()`` mode (no dropout) without gradient, then gets its mode back.

    >>> import torch, transformers
    >>> from divergences.llm import on_policy_inputs
    >>> cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                                num_hidden_layers=1, num_attention_heads=2,
    ...                                eos_token_id=2, pad_token_id=0)
    >>> model = transformers.LlamaForCausalLM(cfg)
    >>> ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 8, 0]])
    >>> labels = torch.tensor([[-100, -100, -100, 8, 9], [-100, -100, 7, 8, -100]])
    >>> batch = on_policy_inputs(model, {"input_ids": ids, "labels": labels,
    ...                                  "attention_mask": (ids != 0).long()},
    ...                          {"max_new_tokens": 4})
    >>> batch["input_ids"].shape, batch["labels"][:, :3].tolist()
    (torch.Size([2, 7]), [[-100, -100, -100], [-100, -100, -100]])
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a mapping (a batch); got {type(inputs).__name__}")
    cfg = _generation_config(model, generation_config)
    eos = _eos_ids(cfg)
    pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else (eos[0] if eos else 0)
    prompts, prompt_mask = _prompts(inputs, int(pad_id), ignore_index)
    inner = _unwrap(model)
    was_training = inner.training
    inner.eval()
    try:
        with torch.no_grad():
            out = inner.generate(input_ids=prompts, attention_mask=prompt_mask,
                                 generation_config=cfg)
    finally:
        inner.train(was_training)
    seqs = out if isinstance(out, torch.Tensor) else out.sequences
    width = prompts.shape[1]
    completion = seqs[:, width:]
    if eos:
        is_eos = torch.isin(completion, torch.tensor(eos, device=seqs.device))
        # A token is kept if no end-of-sequence token comes strictly before it.
        keep = (is_eos.long().cumsum(1) - is_eos.long()) == 0
    else:
        keep = torch.ones_like(completion, dtype=torch.bool)
    attention = torch.cat([prompt_mask.to(keep.device).long(), keep.long()], dim=1)
    labels = torch.full_like(seqs, ignore_index)
    labels[:, width:] = torch.where(keep, completion, torch.full_like(completion, ignore_index))
    return {"input_ids": seqs, "attention_mask": attention, "labels": labels}


# --------------------------------------------------------------------------------------------
# The Trainer
# --------------------------------------------------------------------------------------------


def _count(batch: Mapping[str, Any], ignore_index: int) -> torch.Tensor:
    """The counted tokens of one micro-batch, as :func:`distillation_compute_loss` counts."""
    labels, _ = _targets(batch, ignore_index)
    return (labels != ignore_index).sum()


class DistillationTrainer(transformers.Trainer):
    r"""A ``transformers.Trainer`` that distils ``teacher_model`` into ``model``.

    The loss is :func:`distillation_compute_loss` (see it for the formula:
    :math:`D(\text{teacher} \| \text{student})` per completion token, in nats, from logits
    or, with ``fused_linear=True``, from the last hidden states and the LM heads without
    forming the logits), summed over the counted tokens of each micro-batch and divided by the count over
    all the micro-batches of the optimiser step, which this trainer always takes (whether or
    not the model's forward takes loss keywords, and after generation): ``k`` accumulated
    micro-batches give the gradient of one batch ``k`` times larger. With data parallelism and
    ``average_tokens_across_devices`` (the default) the count is summed over the processes.

    On-policy distillation as in GKD (Agarwal et al., 2024) and TRL's ``GKDTrainer``: each
    training micro-batch is replaced, with probability ``lmbda``, by completions sampled from
    the student (:func:`on_policy_inputs`), and otherwise, when ``seq_kd=True``, by completions
    sampled from the teacher; the draws come from a generator seeded with ``args.seed``, the
    same on every process. Evaluation uses the data as given.

    Parameters
    ----------
    model, teacher_model:
        Student and teacher causal LMs sharing a vocabulary (or pass ``vocab="truncate"`` /
        ``"pad"`` in ``loss_kwargs``). The teacher is put on the trainer's device in ``eval()``
        mode, its parameters frozen.
    divergence, beta, temperature, hard_weight, fused_linear:
        As in :func:`distillation_compute_loss`. ``divergence="js", beta=b`` is TRL's
        ``generalized_jsd_loss(beta=b)`` (GKD's ``beta``: 0 forward KL, 1 reverse KL); GKD
        applies its ``temperature`` to sampling only, which here is
        ``generation_config={"temperature": ...}``, while ``temperature`` here is the loss's.
    lmbda:
        Probability in [0, 1] that a training micro-batch is generated by the student.
    seq_kd:
        Generate the other micro-batches from the teacher.
    generation_config:
        For :func:`on_policy_inputs`: a ``transformers.GenerationConfig`` or a dict of fields
        over its defaults (sampling at temperature 1, 128 new tokens; ``use_cache=False``
        under gradient checkpointing). The batches need ``prompts`` /
        ``prompt_attention_mask``, or ``labels`` that mask the prompt; keep such keys with
        ``remove_unused_columns=False`` when the dataset is a ``datasets.Dataset``.
    loss_kwargs:
        Further keywords of the loss (``skew``, ``alpha``, ``temperature_scaling``,
        ``vocab``, ``chunk_size``, ...), and ``validate=False`` to skip the host reads of each
        step (the fused path's check of the heads). Every option is checked when the trainer
        is built: a bad one raises a ``ValueError`` (or ``TypeError``) that names it.
    **kwargs:
        The other arguments of ``transformers.Trainer`` (``args``, ``train_dataset``,
        ``data_collator``, ``processing_class``, ...). Needs transformers >= 4.46.

    >>> import tempfile, torch, transformers
    >>> from divergences.llm import DistillationTrainer
    >>> cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                                num_hidden_layers=1, num_attention_heads=2)
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> student, teacher = transformers.LlamaForCausalLM(cfg), transformers.LlamaForCausalLM(cfg)
    >>> ids = torch.randint(0, 32, (4, 8))
    >>> data = [{"input_ids": x, "labels": x} for x in ids]
    >>> with tempfile.TemporaryDirectory() as out:
    ...     args = transformers.TrainingArguments(out, max_steps=3, per_device_train_batch_size=2,
    ...                                           learning_rate=1e-2, report_to=[], use_cpu=True,
    ...                                           save_strategy="no", disable_tqdm=True)
    ...     trainer = DistillationTrainer(student, teacher, args=args, train_dataset=data,
    ...                                   divergence="reverse_kl")
    ...     trainer.remove_callback(transformers.PrinterCallback)   # no printed logs here
    ...     result = trainer.train()
    >>> result.global_step, bool(result.training_loss > 0)
    (3, True)
    """

    # The loss is divided by the token count of the whole accumulated batch (get_batch_samples
    # always takes it), so Trainer must not divide it again by the number of micro-batches.
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: torch.nn.Module,
        teacher_model: torch.nn.Module,
        *,
        divergence: str = "forward_kl",
        beta: float = 0.5,
        temperature: float = 1.0,
        hard_weight: float = 0.0,
        fused_linear: bool = False,
        lmbda: float = 0.0,
        seq_kd: bool = False,
        generation_config: transformers.GenerationConfig | Mapping[str, Any] | None = None,
        loss_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("compute_loss_func cannot be given: DistillationTrainer computes "
                             "its own loss (distillation_compute_loss)")
        if not hasattr(transformers.Trainer, "get_batch_samples"):
            raise ImportError("DistillationTrainer needs transformers >= 4.46 (num_items_in_batch "
                              f"and get_batch_samples); found {transformers.__version__}")
        if not isinstance(teacher_model, torch.nn.Module):
            raise TypeError(
                f"teacher_model must be a torch.nn.Module; got {type(teacher_model).__name__}"
            )
        for name, value in (("fused_linear", fused_linear), ("seq_kd", seq_kd)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool; got {value!r}")
        self.lmbda = check_range(lmbda, "lmbda", 0.0, 1.0)
        if loss_kwargs is not None and not isinstance(loss_kwargs, Mapping):
            raise TypeError(f"loss_kwargs must be a dict; got {type(loss_kwargs).__name__}")
        extra = dict(loss_kwargs or {})
        reserved = set(extra) & {"labels", "num_items_in_batch", "return_outputs", "mask",
                                 "reduction", "return_components"}
        if reserved:
            raise ValueError(f"loss_kwargs cannot set {sorted(reserved)}: the trainer sets them")
        self.loss_options = dict(divergence=divergence, beta=beta, temperature=temperature,
                                 hard_weight=hard_weight, fused_linear=fused_linear, **extra)
        _dry_run(self.loss_options)
        self.seq_kd = seq_kd
        super().__init__(model=model, **kwargs)
        # Older transformers read this instead of loss_is_scaled_for_ga.
        self.model_accepts_loss_kwargs = True
        self._draws = random.Random(self.args.seed)
        gen = _generation_config(self.model, generation_config)
        if self.args.gradient_checkpointing and not isinstance(
            generation_config, transformers.GenerationConfig
        ) and "use_cache" not in (generation_config or {}):
            gen.use_cache = False
        self.generation_config = gen
        teacher_model.eval().requires_grad_(False)
        prepare = getattr(self.accelerator, "prepare_model", None)
        if self.is_deepspeed_enabled or prepare is None:
            self.teacher_model = teacher_model.to(self.args.device)
        else:
            self.teacher_model = prepare(teacher_model, evaluation_mode=True)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """:func:`distillation_compute_loss` with the trainer's options."""
        out = distillation_compute_loss(
            model, self.teacher_model, inputs, num_items_in_batch=num_items_in_batch,
            return_outputs=return_outputs, **self.loss_options,
        )
        if num_items_in_batch is not None and self._across_devices():
            # The count is summed over the processes and their gradients are averaged.
            scale = self.accelerator.num_processes
            out = (out[0] * scale, out[1]) if return_outputs else out * scale
        return out

    def _across_devices(self) -> bool:
        """Whether the token count is summed over the processes (data parallelism)."""
        return (bool(getattr(self.args, "average_tokens_across_devices", False))
                and self.args.world_size > 1)

    def get_batch_samples(self, epoch_iterator, num_batches, *args, **kwargs):
        """The micro-batches of one optimiser step, generated on-policy with probability
        ``lmbda`` (or by the teacher with ``seq_kd``), and the count of their counted tokens."""
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, *args, **kwargs)
        if not batches:
            return batches, None
        ignore = self.loss_options.get("ignore_index", -100)
        out = []
        for batch in batches:
            source = None
            if self.lmbda > 0.0 and self._draws.random() < self.lmbda:
                source = self.model
            elif self.seq_kd:
                source = self.teacher_model
            if source is not None:
                batch = self._prepare_inputs(batch)
                new = on_policy_inputs(source, batch, self.generation_config,
                                       ignore_index=ignore)
                # Position ids and shifted labels of the old sequences do not apply.
                stale = (*MODEL_KEYS, "labels", "shift_labels")
                batch = {**{k: v for k, v in batch.items() if k not in stale}, **new}
            out.append(batch)
        device = self.args.device
        count = torch.stack([_count(b, ignore).to(device) for b in out]).sum()
        if self._across_devices():
            count = self.accelerator.gather(count).sum()
        return out, count.clamp_min(1)


def _dry_run(options: Mapping[str, Any]) -> None:
    """Every loss option checked once on a toy input: a bad one fails at construction with
    the loss's own message, which names it."""
    opts = dict(options)
    fused = opts.pop("fused_linear")
    labels = torch.zeros(1, dtype=torch.long)
    if fused:
        h, w = torch.zeros(1, 2), torch.zeros(3, 2)
        fused_linear_distillation_loss(h, w, h, w, labels=labels, **opts)
    else:
        distillation_loss(torch.zeros(1, 3), torch.zeros(1, 3), labels=labels, **opts)

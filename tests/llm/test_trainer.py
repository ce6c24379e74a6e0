"""The Hugging Face distillation path: :func:`distillation_compute_loss`, :func:`on_policy_inputs`
and :class:`DistillationTrainer`, on tiny GPT-2 and Llama models built from a config (no
download).

* the loss equals TRL's ``GKDTrainer.generalized_jsd_loss`` on the same batch (beta, temperature,
  label masking, ``batchmean`` and ``num_items_in_batch`` conventions);
* the fused-linear path equals the logits path, values and gradients;
* two accumulated half batches give the parameter update of one full batch (the trainer, on
  both paths, and the hook in a plain ``transformers.Trainer`` as the recipe shows it);
* a few optimisation steps lower the loss; on-policy (``lmbda=1``) and sequence-level
  (``seq_kd``) generation run, and the token count covers the generated completions;
* bad arguments raise errors that name them; ``import divergences.llm`` does not load
  ``transformers``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from divergences.llm import (  # noqa: E402
    DistillationTrainer,
    distillation_compute_loss,
    on_policy_inputs,
)

V, L = 64, 10        # vocabulary, sequence length
EOS, PAD = 2, 0
INIT = 0.2       # weights drawn wider than the default 0.02: distributions far from uniform


def tiny(kind: str, seed: int, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A 2-layer, hidden-32 causal LM of ``kind`` ("gpt2" or "llama"), dropout off."""
    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=V, n_positions=32, n_embd=32, n_layer=2,
                                      n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0, initializer_range=INIT, bos_token_id=1,
                                      eos_token_id=EOS, pad_token_id=PAD)
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=2,
                                       num_key_value_heads=1, max_position_embeddings=32,
                                       initializer_range=INIT, bos_token_id=1,
                                       eos_token_id=EOS, pad_token_id=PAD)
        model = transformers.LlamaForCausalLM(cfg)
    return model.to(dtype)


def batch(n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded rows: prompts of 2-5 tokens, completions of different lengths, padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (n, L), generator=g)
    attention = torch.ones_like(ids)
    labels = ids.clone()
    for i in range(n):
        prompt, length = 2 + i % 4, L - (i * 3) % 5
        ids[i, length:], attention[i, length:] = PAD, 0
        labels[i, :prompt] = -100
        labels[i, length:] = -100
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def rows(b: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    return [{k: v[i] for k, v in b.items()} for i in range(b["input_ids"].shape[0])]


def training_args(path, **kw) -> transformers.TrainingArguments:
    defaults = dict(report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
                    logging_strategy="no", dataloader_num_workers=0, seed=0)
    return transformers.TrainingArguments(output_dir=str(path), **{**defaults, **kw})


def quiet(trainer: transformers.Trainer) -> transformers.Trainer:
    trainer.remove_callback(transformers.PrinterCallback)
    return trainer


@pytest.fixture(autouse=True)
def _silence_trl(monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")


# --------------------------------------------------------------------------------------------
# The loss against TRL
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize(("beta", "temperature"), [(0.0, 1.0), (0.3, 2.0), (0.5, 1.0), (1.0, 0.7)])
def test_equals_trl_generalized_jsd_loss(kind, beta, temperature):
    gkd = pytest.importorskip("trl.experimental.gkd")
    student = tiny(kind, 1, torch.float64).eval()
    teacher = tiny(kind, 2, torch.float64).eval()
    b = batch()
    with torch.no_grad():
        s = student(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        t = teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    # TRL's own shift (GKDTrainer.compute_loss): logits[:, :-1] score labels[:, 1:].
    s, t, labels = s[:, :-1], t[:, :-1], b["labels"][:, 1:]
    ref = gkd.GKDTrainer.generalized_jsd_loss(s, t, labels=labels, beta=beta,
                                              temperature=temperature)
    # Its "batchmean" with labels, written out: the per-entry terms of the counted tokens,
    # summed over tokens and vocabulary, over the number of counted tokens (not the batch).
    terms = gkd.GKDTrainer.generalized_jsd_loss(s, t, labels=labels, beta=beta,
                                                temperature=temperature, reduction="none")
    n = int((labels != -100).sum())
    assert terms.shape == (n, V)
    torch.testing.assert_close(ref, terms.sum() / n, rtol=1e-12, atol=0)
    ours = distillation_compute_loss(student, teacher, b, divergence="js", beta=beta,
                                     temperature=temperature)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-13)
    # With the Trainer's count of the whole accumulated batch: a sum over that count.
    ours_n = distillation_compute_loss(student, teacher, b, divergence="js", beta=beta,
                                       temperature=temperature,
                                       num_items_in_batch=torch.tensor(3 * n))
    ref_n = gkd.GKDTrainer.generalized_jsd_loss(s, t, labels=labels, beta=beta,
                                                temperature=temperature,
                                                num_items_in_batch=torch.tensor(3 * n))
    torch.testing.assert_close(ours_n, ref_n, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(ours_n, ours / 3, rtol=1e-12, atol=0)


def test_js_endpoints_are_the_named_kls():
    student, teacher = tiny("llama", 1).eval(), tiny("llama", 2).eval()
    b = batch()
    for beta, name in ((0.0, "forward_kl"), (1.0, "reverse_kl")):
        js = distillation_compute_loss(student, teacher, b, divergence="js", beta=beta)
        kl = distillation_compute_loss(student, teacher, b, divergence=name)
        torch.testing.assert_close(js, kl)


def test_shift_labels_are_used_as_given():
    student, teacher = tiny("llama", 1).eval(), tiny("llama", 2).eval()
    b = batch()
    shifted = torch.nn.functional.pad(b["labels"][:, 1:], (0, 1), value=-100)
    given = {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"],
             "shift_labels": shifted}
    torch.testing.assert_close(distillation_compute_loss(student, teacher, given),
                               distillation_compute_loss(student, teacher, b))


# --------------------------------------------------------------------------------------------
# Fused linear = logits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_fused_linear_equals_logits_path(kind):
    student, teacher = tiny(kind, 1, torch.float64), tiny(kind, 2, torch.float64).eval()
    b = batch()
    opts = dict(divergence="reverse_kl", temperature=2.0, hard_weight=0.3)
    values, grads = [], []
    for fused in (False, True):
        student.zero_grad()
        loss = distillation_compute_loss(student, teacher, b, fused_linear=fused, **opts)
        loss.backward()
        values.append(loss.detach())
        grads.append([p.grad.clone() for p in student.parameters()])
    torch.testing.assert_close(values[1], values[0], rtol=1e-10, atol=1e-12)
    for g_fused, g_logits in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_fused, g_logits, rtol=1e-8, atol=1e-11)


def test_fused_linear_refuses_a_head_it_does_not_reproduce():
    student, teacher = tiny("gpt2", 1).eval(), tiny("gpt2", 2).eval()
    student.config.logit_scale = 2.0          # read by the fused loss, ignored by GPT-2
    with pytest.raises(ValueError, match="fused_linear=True: model's logits"):
        distillation_compute_loss(student, teacher, batch(), fused_linear=True)


# --------------------------------------------------------------------------------------------
# Gradient accumulation
# --------------------------------------------------------------------------------------------


class _PlainHook(transformers.Trainer):
    """The recipe's own Trainer: the hook in compute_loss, loss_is_scaled_for_ga left alone."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return distillation_compute_loss(model, self.teacher, inputs, divergence="js", beta=0.3,
                                         num_items_in_batch=num_items_in_batch,
                                         return_outputs=return_outputs)


def _one_step(tmp_path, fused, batch_size, accumulation):
    student = tiny("llama", 1, torch.float64)
    teacher = tiny("llama", 2, torch.float64)
    before = [p.detach().clone() for p in student.parameters()]
    args = training_args(tmp_path / f"{fused}{batch_size}", max_steps=1,
                         per_device_train_batch_size=batch_size,
                         gradient_accumulation_steps=accumulation, optim="sgd",
                         learning_rate=1.0, lr_scheduler_type="constant", max_grad_norm=0.0,
                         weight_decay=0.0)
    if fused == "plain":
        trainer = _PlainHook(model=student, args=args, train_dataset=rows(batch()))
        trainer.teacher = teacher.eval()
    else:
        trainer = DistillationTrainer(student, teacher, args=args, train_dataset=rows(batch()),
                                      divergence="js", beta=0.3, fused_linear=fused)
    quiet(trainer).train()
    return [p.detach() - p0 for p, p0 in zip(student.parameters(), before)]


@pytest.mark.parametrize("fused", [False, True, "plain"])
def test_accumulation_gives_the_full_batch_update(tmp_path, fused):
    full = _one_step(tmp_path, fused, 4, 1)
    halves = _one_step(tmp_path, fused, 2, 2)
    diff = max((a - b).abs().max().item() for a, b in zip(full, halves))
    size = max(a.abs().max().item() for a in full)
    assert size > 1e-3 and diff <= 1e-12 * size, (diff, size)
    # The test can fail: the mean of the two half-batch means (their token counts differ) is
    # a different update.
    student, teacher = tiny("llama", 1, torch.float64), tiny("llama", 2, torch.float64)
    b = batch()
    halves_mean = [torch.zeros_like(p) for p in student.parameters()]
    for idx in ([0, 1], [2, 3]):
        student.zero_grad()
        part = {k: v[idx] for k, v in b.items()}
        (distillation_compute_loss(student, teacher, part, divergence="js", beta=0.3)
         / 2).backward()
        for acc, p in zip(halves_mean, student.parameters()):
            acc -= p.grad
    off = max((a - m).abs().max().item() for a, m in zip(full, halves_mean))
    assert off > 1e-3 * size, off


# --------------------------------------------------------------------------------------------
# Training, on-policy generation
# --------------------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss(tmp_path):
    student, teacher = tiny("gpt2", 1), tiny("gpt2", 2)
    data = batch(8, seed=3)

    def loss_now():
        student.eval()
        with torch.no_grad():
            return distillation_compute_loss(student, teacher, data).item()

    start = loss_now()
    args = training_args(tmp_path, max_steps=12, per_device_train_batch_size=4,
                         gradient_accumulation_steps=2, learning_rate=3e-2,
                         logging_strategy="steps", logging_steps=1)
    trainer = quiet(DistillationTrainer(student, teacher, args=args, train_dataset=rows(data),
                                        fused_linear=True))
    trainer.train()
    end = loss_now()
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 12 and all(torch.isfinite(torch.tensor(logged)))
    assert end < 0.5 * start, (start, end)
    assert not any(p.requires_grad for p in trainer.teacher_model.parameters())
    assert not trainer.teacher_model.training


class _Recording(DistillationTrainer):
    """Keeps the count and the labels that reach compute_loss."""

    seen: list

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.seen.append((num_items_in_batch, inputs["labels"].clone()))
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


@pytest.mark.parametrize("mode", ["on_policy", "seq_kd"])
def test_generation_runs_and_is_counted(tmp_path, monkeypatch, mode):
    student, teacher = tiny("llama", 1), tiny("llama", 2)
    calls = {"student": 0, "teacher": 0}
    for name, model in (("student", student), ("teacher", teacher)):
        def generate(*a, _g=model.generate, _n=name, **kw):
            calls[_n] += 1
            return _g(*a, **kw)
        monkeypatch.setattr(model, "generate", generate)
    data = batch(8, seed=5)
    args = training_args(tmp_path, max_steps=2, per_device_train_batch_size=2,
                         gradient_accumulation_steps=2, learning_rate=1e-2,
                         logging_strategy="steps", logging_steps=1)
    trainer = _Recording(student, teacher, args=args, train_dataset=rows(data),
                         divergence="js", beta=0.5,
                         lmbda=1.0 if mode == "on_policy" else 0.0,
                         seq_kd=mode == "seq_kd",
                         generation_config={"max_new_tokens": 6})
    trainer.seen = []
    quiet(trainer).train()
    generator, other = ("student", "teacher") if mode == "on_policy" else ("teacher", "student")
    assert calls[generator] == 4 and calls[other] == 0
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 2 and all(torch.isfinite(torch.tensor(logged)))
    # Each step's count is that of the generated completions of its two micro-batches.
    for step in (0, 1):
        (n0, lab0), (n1, lab1) = trainer.seen[2 * step: 2 * step + 2]
        assert n0 is n1
        assert int(n0) == int((lab0 != -100).sum() + (lab1 != -100).sum())
        # Prompts of 2-5 tokens (left-padded), then at most 6 counted generated tokens.
        for lab in (lab0, lab1):
            assert lab.shape[1] <= 5 + 6 and (lab[:, :2] == -100).all()
            assert ((lab != -100).sum(1) <= 6).all() and (lab != -100).any()


class _FixedGenerator(torch.nn.Module):
    """``generate`` appends fixed completions and records the prompts it was given."""

    def __init__(self, completions):
        super().__init__()
        self.completions = completions
        self.generation_config = transformers.GenerationConfig(eos_token_id=EOS,
                                                               pad_token_id=PAD)

    def generate(self, input_ids, attention_mask, generation_config):
        self.prompts, self.mask, self.config = input_ids, attention_mask, generation_config
        return torch.cat([input_ids, self.completions], dim=1)


def test_on_policy_inputs_layout():
    ids = torch.tensor([[5, 6, 7, 8, 9, 0], [5, 6, 7, 8, 9, 10]])
    labels = torch.tensor([[-100, -100, 7, 8, 9, -100], [-100, -100, -100, -100, 9, 10]])
    model = _FixedGenerator(torch.tensor([[11, EOS, PAD], [12, 13, 14]]))
    out = on_policy_inputs(model, {"input_ids": ids, "labels": labels,
                                   "attention_mask": (ids != 0).long()},
                           {"max_new_tokens": 3})
    # Prompts: the tokens before the first counted label, left-padded.
    assert model.prompts.tolist() == [[PAD, PAD, 5, 6], [5, 6, 7, 8]]
    assert model.mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert model.config.do_sample and model.config.max_new_tokens == 3
    assert model.config.eos_token_id == EOS and model.config.pad_token_id == PAD
    assert out["input_ids"].tolist() == [[PAD, PAD, 5, 6, 11, EOS, PAD], [5, 6, 7, 8, 12, 13, 14]]
    # The completion counts up to and including its end-of-sequence token.
    assert out["attention_mask"].tolist() == [[0, 0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]]
    assert out["labels"].tolist() == [[-100, -100, -100, -100, 11, EOS, -100],
                                      [-100, -100, -100, -100, 12, 13, 14]]
    # TRL's collator keys are used as given.
    given = on_policy_inputs(model, {"prompts": ids[:, :2],
                                     "prompt_attention_mask": torch.ones(2, 2, dtype=torch.long)})
    assert model.prompts.tolist() == [[5, 6], [5, 6]] and given["input_ids"].shape == (2, 5)


# --------------------------------------------------------------------------------------------
# Errors, imports
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"divergence": "kullback"}, ValueError, "divergence"),
    ({"beta": 1.5}, ValueError, "beta"),
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"hard_weight": 2.0}, ValueError, "hard_weight"),
    ({"lmbda": -0.1}, ValueError, "lmbda"),
    ({"fused_linear": "yes"}, TypeError, "fused_linear"),
    ({"seq_kd": 1}, TypeError, "seq_kd"),
    ({"loss_kwargs": {"skew": 0.5}}, ValueError, "skew"),
    ({"loss_kwargs": {"reduction": "sum"}}, ValueError, "reduction"),
    ({"teacher_model": "gpt2"}, TypeError, "teacher_model"),
    ({"generation_config": 5}, TypeError, "generation_config"),
    ({"loss_kwargs": {"vocab_tile": 4}}, TypeError, "vocab_tile"),
    ({"compute_loss_func": lambda *a, **k: 0.0}, ValueError, "compute_loss_func"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, error, name):
    kwargs = {"teacher_model": tiny("gpt2", 2), **kwargs}
    with pytest.raises(error, match=name):
        DistillationTrainer(tiny("gpt2", 1), args=training_args(tmp_path, max_steps=1),
                            train_dataset=rows(batch()), **kwargs)


def test_hook_errors_name_the_input():
    student, teacher = tiny("gpt2", 1), tiny("gpt2", 2)
    b = batch()
    with pytest.raises(ValueError, match="labels"):
        distillation_compute_loss(student, teacher, {"input_ids": b["input_ids"]})
    with pytest.raises(ValueError, match="input_ids"):
        distillation_compute_loss(student, teacher, {"labels": b["labels"]})
    with pytest.raises(ValueError, match="prompts"):
        on_policy_inputs(student, {"input_ids": b["input_ids"]})


def test_import_leaves_transformers_alone():
    code = ("import sys, divergences, divergences.llm, divergences.losses; "
            "assert 'transformers' not in sys.modules, 'loaded early'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr

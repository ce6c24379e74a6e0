"""Quickstart: exact divergences, NumPy in / NumPy out, torch in / torch out with gradients.

Run: python examples/quickstart.py
"""

import numpy as np
import torch

import divergences as dv

# Two distributions over 4 outcomes (NumPy in, NumPy out; nats unless base= is given).
p = np.array([0.4, 0.3, 0.2, 0.1])
q = np.array([0.25, 0.25, 0.25, 0.25])
print(f"KL(p||q)          = {dv.kl(p, q):.6f} nats = {dv.kl(p, q, base=2):.6f} bits")
print(f"KL(q||p)          = {dv.kl(q, p):.6f} nats   (KL is not symmetric)")
print(f"JS(p, q)          = {dv.js(p, q):.6f} nats   (<= ln 2 = {np.log(2):.6f})")
print(f"TV, Hellinger     = {dv.tv(p, q):.6f}, {dv.hellinger(p, q):.6f}")
print(f"Renyi(alpha=2)    = {dv.renyi(p, q, alpha=2.0):.6f}")
print(f"H(p), H(p, q)     = {dv.entropy(p):.6f}, {dv.cross_entropy(p, q):.6f}")
print(f"KL with a zero: KL([0.5, 0.5, 0], [0.5, 0, 0.5]) = {dv.kl([0.5, 0.5, 0], [0.5, 0, 0.5])}")

# Distillation-style: JS between teacher and student logits over a 32k vocabulary, with its
# gradient (torch in, torch out; logits are log-softmaxed along the last axis).
torch.manual_seed(0)
teacher = torch.randn(8, 32000) * 3
student = torch.randn(8, 32000, requires_grad=True)
loss = dv.js(teacher, student, input="logits", reduction="mean")
loss.backward()
print(f"JS(teacher, student) over 8 tokens x 32000 = {loss.item():.6f} nats")
print(f"gradient: shape {tuple(student.grad.shape)}, finite: {bool(torch.isfinite(student.grad).all())}")

# Extreme logits stay finite (log space throughout), even in bfloat16.
big = (torch.rand(2, 1000) * 2 - 1) * 1e4
print("KL on logits of magnitude 1e4 (bf16):",
      dv.kl(big.bfloat16(), big.flip(-1).bfloat16(), input="logits"))

# Every f-divergence in the registry, by name.
for name in dv.fdiv.names():
    print(f"  D_{name:<18}(p||q) = {dv.f_divergence(p, q, name):.6f}")

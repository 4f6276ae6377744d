"""Weight-only pieces of the plasticity bounds (README, "Theory: bounds on plasticity"), each a closed form in float64.

All bounds are upper bounds on ``||f(X) - f(Y)||_F / ||X - Y||_F`` for token sequences X, Y (n x d)
whose tokens satisfy the stated data condition (norm at most r, variance along the segment [X, Y] at
least sigma_min^2). They are Lipschitz constants on that domain, obtained from a bound on the Jacobian
and the mean-value inequality along the segment from X to Y.

* Linear ``f(X) = X W^T + b``: ``||(X - Y) W^T||_F <= ||W||_2 ||X - Y||_F``.
* LayerNorm, per token: with ``c = x - mean(x)``, ``s = sqrt(var(x) + eps)``, ``x̂ = c / s`` the Jacobian is
  ``diag(gamma) (P - x̂ x̂^T / d) / s`` with ``P = I - 11^T/d``. On the complement of span(1) the symmetric
  matrix ``P - x̂x̂^T/d`` has eigenvalues 1 (directions orthogonal to x̂) and ``eps / (var + eps)`` (along x̂,
  because ``||x̂||^2 = d var / (var + eps)``), and it is 0 on span(1); so its norm is 1 (d >= 3) and
  ``||J|| <= max|gamma| / sqrt(var(x) + eps)``. Equality holds when gamma reaches its maximum modulus on a
  direction orthogonal to 1 and x̂ (tested). Integrating along the segment, every token's difference is
  bounded by ``max|gamma| / sqrt(sigma_min^2 + eps)`` times its input difference, and so is the Frobenius
  norm over the sequence (the bound's condition: sigma_min^2 = min variance along the segment).
  The endpoints suffice too: ``LN(x) - LN(y) = gamma * (phi(Px) - phi(Py))`` with ``phi(z) = z / sigma(|z|)``,
  ``sigma(rho) = sqrt(rho^2 / d + eps)``. In polar form, with ``|x| <= |y|`` (centred), radii
  ``a = |x| / sigma(|x|) <= b`` and angle theta: ``|phi(x) - phi(y)|^2 = (b - a)^2 + 2ab(1 - cos theta)``, where
  ``2ab <= 2|x||y| / sigma(|x|)^2`` and ``b - a <= (|y| - |x|) / sigma(|x|)`` (the derivative of
  ``rho / sigma(rho)`` is ``eps / sigma^3 <= 1 / sigma``), so ``|phi(x) - phi(y)| <= |x - y| / sigma(|x|)``:
  ``max|gamma| / sqrt(min(var x, var y) + eps)`` bounds every pair, a tighter rigorous variant.
* Multi-head attention ``MHA(X) = sum_h softmax(Q_h K_h^T / sqrt(d_h)) X W_V^h^T W_O^h^T + const``:
  ``Lip <= sum_h ||W_O^h||_2 Lip(head_h)`` and, for tokens in the ball of radius r (the bound of Castin,
  Ablin and Peyré, "How smooth is attention?", ICML 2024, with ||.||_F over the sequence; checked by
  adversarial search in the tests),
  ``Lip(head_h) <= ||W_V^h||_2 sqrt(3n + (12n + 3) r^4 ||A^h||_2^2)``, ``A^h = W_Q^h^T W_K^h / sqrt(d_h)`` in
  ``nn.Linear`` layout (rows ``h d_h:(h+1) d_h`` of the Q/K/V projections, columns of O), i.e. the paper's
  ``W_Q^h (W_K^h)^T / sqrt(d_h)`` in its ``x W`` layout: the bilinear form ``x_i^T A^h x_j`` of the logits.

Biases of attention: the value and output biases add constants (softmax rows sum to 1) and cancel; the
key bias adds a per-query constant to a row of logits and cancels in the softmax. The query bias does
NOT cancel: the logits become ``x_i^T A x_j + c^T x_j`` with ``c = W_K^T b_q / sqrt(d_h)``, and the formula
above can then fail (a large ``c`` makes the softmax switch between keys on a tiny input change; see the
tests). Rigorous variant: append a constant coordinate ``a > 0`` to every token, ``x̃ = [x; a]``, so that
``x_i^T A x_j + c^T x_j = x̃_i^T Ã x̃_j`` with ``Ã = [[A, 0], [c^T / a, 0]]``; differences are unchanged,
token norms become ``sqrt(r^2 + a^2)`` and ``||Ã||_2 = ||[A; c^T/a]||_2``. Every ``a > 0`` gives a valid
bound; :func:`mha_bound_qbias` minimises over ``a`` per head (``a -> 0`` recovers the bias-free formula
when ``c = 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor, nn

from vitplast.models.vit import AttentionWeights, LinearMap


def _f64(t: Tensor) -> Tensor:
    return t.detach().to("cpu", torch.float64)


def spectral_norm(weight: Tensor) -> float:
    """``||W||_2``: the largest singular value (``torch.linalg.matrix_norm(ord=2)``), in float64."""
    return float(torch.linalg.matrix_norm(_f64(weight), ord=2))


def linear_bounds(fc1: LinearMap, fc2: LinearMap, dim: int) -> dict[str, float]:
    """Spectral norms of FC1, of FC2's first ``dim`` input columns (embedding mode) and of FC2 whole.

    ``weight`` is the effective matrix: FC1 of a gated MLP stacks its value and gate projections, and FC2
    carries the block's LayerScale, ``diag(s) W2``, whose norm is at most ``max|s| ||W2||_2``.
    """
    return {
        "fc1": spectral_norm(fc1.weight),
        "fc2_first_d": spectral_norm(fc2.weight[:, :dim]),
        "fc2_full": spectral_norm(fc2.weight),
    }


def gamma_of(ln: nn.LayerNorm) -> Tensor:
    """The LayerNorm scale (ones when it has no affine weight)."""
    if ln.weight is None:
        return torch.ones(int(ln.normalized_shape[0]), dtype=torch.float64)
    return _f64(ln.weight)


def layernorm_bound(gamma: Tensor, eps: float, sigma2_min: float) -> float:
    """``max|gamma| / sqrt(sigma_min^2 + eps)``: Lipschitz bound of LayerNorm where token variance >= sigma_min^2."""
    return float(_f64(gamma).abs().max()) / math.sqrt(max(sigma2_min, 0.0) + eps)


def layernorm_paper(gamma: Tensor) -> float:
    """The paper's plotted quantity ``max(gamma)`` (signed, no 1/sigma): not an upper bound."""
    return float(_f64(gamma).max())


def castin_factor(n: int, r: float, a_norm: float) -> float:
    """``sqrt(3n + (12n + 3) r^4 ||A||^2)``: Lipschitz factor of one softmax head on n tokens of norm <= r."""
    return math.sqrt(3 * n + (12 * n + 3) * r**4 * a_norm**2)


@dataclass(frozen=True)
class HeadTerms:
    """Per-head ingredients: ``||W_O^h||``, ``||W_V^h||``, ``||A^h||`` and the query-bias vector ``c^h``.

    ``s_k`` is the symmetric square root of ``K K^T`` and ``qq`` = ``Q Q^T`` (``d_h x d_h``), so that
    ``||[A; c^T/a]||^2 = lambda_max(s_k (Q Q^T + b b^T / a^2) s_k) / d_h`` is a small eigenproblem.
    """

    o_norm: float
    v_norm: float
    a_norm: float
    c_norm: float
    s_k: Tensor
    qq: Tensor
    b_q: Tensor
    head_dim: int

    def a_norm_aug(self, a: float) -> float:
        """``||[A; c^T / a]||_2`` for the augmented token ``[x; a]`` (``a > 0``; ``a = inf`` gives ``||A||_2``)."""
        m = self.qq if math.isinf(a) else self.qq + torch.outer(self.b_q, self.b_q) / a**2
        lam = torch.linalg.eigvalsh(self.s_k @ m @ self.s_k)[-1].clamp(min=0)
        return math.sqrt(float(lam) / self.head_dim)


def head_terms(att: AttentionWeights) -> list[HeadTerms]:
    """The :class:`HeadTerms` of every head, sliced with :meth:`AttentionWeights.head` (rows of Q/K/V, columns of O)."""
    out = []
    dh = att.head_dim
    for h in range(att.num_heads):
        wq, wk, wv, wo = (_f64(t) for t in att.head(h))
        sl = slice(h * dh, (h + 1) * dh)
        b_q = _f64(att.q_bias[sl]) if att.q_bias is not None else torch.zeros(dh, dtype=torch.float64)
        c = wk.T @ b_q / math.sqrt(dh)  # logits gain c^T x_j from the query bias
        evals, evecs = torch.linalg.eigh(wk @ wk.T)
        s_k = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
        terms = HeadTerms(
            o_norm=spectral_norm(wo),
            v_norm=spectral_norm(wv),
            a_norm=0.0,
            c_norm=float(c.norm()),
            s_k=s_k,
            qq=wq @ wq.T,
            b_q=b_q,
            head_dim=dh,
        )
        # ||A|| = ||W_Q^T W_K|| / sqrt(d_h) from d_h x d_h matrices: ||Q^T K||^2 = lambda_max(S_K Q Q^T S_K).
        out.append(replace(terms, a_norm=terms.a_norm_aug(math.inf)))
    return out


def mha_bound(heads: list[HeadTerms], n: int, r: float) -> float:
    """``sum_h ||W_O^h|| ||W_V^h|| sqrt(3n + (12n+3) r^4 ||A^h||^2)`` (biases ignored: rigorous iff no query bias)."""
    return sum(t.o_norm * t.v_norm * castin_factor(n, r, t.a_norm) for t in heads)


def best_augmentation(t: HeadTerms, r: float) -> tuple[float, float]:
    """``(a, r^2 + a^2)^2 ||[A; c^T/a]||^2)`` minimised over the constant coordinate ``a`` (any a is valid).

    Returns ``a = 0`` and ``r^4 ||A||^2`` when the head has no effective query bias (c = 0).
    """
    if t.c_norm == 0.0:
        return 0.0, r**4 * t.a_norm**2
    scale = max(r, 1e-12)

    def phi(log_a: float) -> float:
        a = scale * math.exp(log_a)
        return (r * r + a * a) ** 2 * t.a_norm_aug(a) ** 2

    grid = [phi(u) for u in range(-12, 13)]
    u0 = range(-12, 13)[min(range(len(grid)), key=grid.__getitem__)]
    res = minimize_scalar(phi, bounds=(u0 - 1.0, u0 + 1.0), method="bounded", options={"xatol": 1e-4})
    best_u, best = (float(res.x), float(res.fun)) if res.fun < min(grid) else (float(u0), min(grid))
    return scale * math.exp(best_u), best


def mha_bound_qbias(heads: list[HeadTerms], n: int, r: float) -> tuple[float, list[float]]:
    """Rigorous MHA bound with the query bias (module docstring): per head the best constant coordinate a_h.

    ``sum_h ||W_O^h|| ||W_V^h|| sqrt(3n + (12n+3) (r^2 + a_h^2)^2 ||[A^h; c_h^T / a_h]||^2)``; returns the
    bound and the chosen ``a_h``.
    """
    total, chosen = 0.0, []
    for t in heads:
        a, r4a2 = best_augmentation(t, r)
        total += t.o_norm * t.v_norm * math.sqrt(3 * n + (12 * n + 3) * r4a2)
        chosen.append(a)
    return total, chosen

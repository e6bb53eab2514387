r"""The encoder q_phi(z|x): an MLP from x to the mean and log-variance of a diagonal
Gaussian over z, the recognition model of Kingma & Welling (2014), appendix C.2.

:math:`q_\phi(z|x) = \mathcal N(\mu(x), \operatorname{diag} e^{v(x)})` with
:math:`h = \mathrm{MLP}(x)`, :math:`\mu = h W_\mu + b_\mu`, :math:`v = h W_v + b_v`.
Derivation of the backward pass: ``derivations/08_backprop.ipynb`` (the encoder heads).
"""

from __future__ import annotations

from .layers import Linear, Sequential, mlp


class GaussianEncoder:
    """An MLP body and two affine heads, ``mu`` and ``logvar``; follows
    :class:`scratchvae.layers.Layer`, with two outputs.

    Nothing upstream of x needs its gradient, so the first affine map computes none.
    """

    def __init__(self, input_dim, hidden_dims, latent_dim, activation, init="pytorch"):
        self.body = mlp("enc", (input_dim, *hidden_dims), activation, init, input_grad=False)
        d_h = hidden_dims[-1] if hidden_dims else input_dim
        heads_need_dx = bool(hidden_dims)  # with no body, the heads read x itself
        self.mu_head = Linear("enc.mu", d_h, latent_dim, init, need_dx=heads_need_dx)
        self.logvar_head = Linear("enc.logvar", d_h, latent_dim, init, need_dx=heads_need_dx)
        self.parts = Sequential([self.body, self.mu_head, self.logvar_head])  # for the
        # parameters only: the heads run side by side, not in sequence

    def param_shapes(self) -> dict:
        return self.parts.param_shapes()

    def bind(self, params, grads) -> None:
        self.parts.bind(params, grads)

    def initialize(self, rng) -> None:
        self.parts.initialize(rng)

    def forward(self, x):
        """x: (n, D) -> (mu, logvar), each (n, latent_dim)."""
        h = self.body.forward(x)
        return self.mu_head.forward(h), self.logvar_head.forward(h)

    def backward(self, dmu, dlogvar) -> None:
        r"""Writes the encoder's parameter gradients; the gradient w.r.t. x is not needed.

        :math:`\partial\ell/\partial h = dmu\,W_\mu^\top + dlogvar\,W_v^\top`: the two
        heads read the same h, so their gradients add.
        """
        dh_mu = self.mu_head.backward(dmu)
        dh_logvar = self.logvar_head.backward(dlogvar)
        if self.body.layers:
            self.body.backward(dh_mu + dh_logvar)

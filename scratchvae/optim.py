r"""Optimizers that update a model's flat parameter buffer in place.

Each step is a handful of vectorized operations on one vector (see
:class:`scratchvae.parameters.Parameters`). Every optimizer follows PyTorch's
formulas, so the two can be compared step for step; ``weight_decay`` adds
:math:`\lambda\theta` to the gradient (an L2 penalty / Gaussian prior on the weights).
"""

from __future__ import annotations

import math

from .backend import array_namespace, device, fused_kernel, on_device
from .checks import check_number
from .parameters import Parameters


class Optimizer:
    """Base class. ``params``: the model's :class:`Parameters`."""

    def __init__(self, params: Parameters, lr: float, weight_decay: float = 0.0):
        if not isinstance(params, Parameters):
            raise TypeError("params must be a scratchvae Parameters object (model.params); "
                            "wrap a dict of arrays with sv.Parameters.from_arrays(d)")
        self.params = params
        self.xp = array_namespace(params.flat)
        self.device = device(params.flat)
        self.lr = check_number(lr, "lr")
        self.weight_decay = check_number(weight_decay, "weight_decay", allow_zero=True)
        self.t = 0
        self.state: dict = {}

    def _gradient(self, grads: Parameters):
        if not isinstance(grads, Parameters) or grads.shapes != self.params.shapes:
            raise ValueError("grads must be the model's gradients (model.grads), with the "
                             "same names and shapes as the optimizer's params")
        g = grads.flat
        if self.weight_decay:
            g = g + self.weight_decay * self.params.flat
        return g

    def _zeros(self):
        """A zero buffer shaped like the parameter vector, on its device."""
        with on_device(self.xp, self.device):
            return self.xp.zeros_like(self.params.flat)

    def step(self, grads: Parameters) -> None:
        self.t += 1
        with on_device(self.xp, self.device):
            self._update(self.params.flat, self._gradient(grads))

    def state_dict(self) -> dict:
        """Step count and buffers (arrays of the parameters' backend)."""
        return {"t": self.t, **self.state}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for key in self.state:
            self.state[key][...] = state[key]


class SGD(Optimizer):
    r""":math:`v \leftarrow \mu v + g,\ \theta \leftarrow \theta - \eta v`
    (plain SGD when ``momentum = 0``)."""

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = check_number(momentum, "momentum", allow_zero=True)
        if self.momentum:
            self.state["v"] = self._zeros()

    def _update(self, p, g):
        if self.momentum:
            v = self.state["v"]
            v *= self.momentum
            v += g
            g = v
        p -= self.lr * g


class Adagrad(Optimizer):
    r""":math:`G \leftarrow G + g^2,\
    \theta \leftarrow \theta - \eta\, g / (\sqrt G + \epsilon)`
    (Duchi et al. 2011; the optimizer of Kingma & Welling 2014)."""

    def __init__(self, params, lr: float = 1e-2, eps: float = 1e-10,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.eps = check_number(eps, "eps")
        self.state["G"] = self._zeros()
        self._kernel = fused_kernel(self.xp, "adagrad", like=params.flat)  # CuPy, NumPy
        self._buf = self._zeros() if self._kernel is None else None

    def _update(self, p, g):
        G, buf = self.state["G"], self._buf
        if self._kernel is not None:
            self._kernel(g, self.lr, self.eps, p, G)
            return
        buf[...] = g                                     # G = G + g^2
        buf *= g
        G += buf
        buf[...] = G                                     # p -= lr * g / (sqrt(G) + eps)
        buf **= 0.5
        buf += self.eps
        buf **= -1
        buf *= g
        buf *= self.lr
        p -= buf


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015) with bias correction, as in PyTorch:

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        \theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
        \frac{m}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    The state holds :math:`\tilde m = m / (1-\beta_1)` and
    :math:`\tilde v = v / (1-\beta_2)`, whose updates need no scaling
    (:math:`\tilde m \leftarrow \beta_1 \tilde m + g`), so that the step is

    .. math::
        \theta \leftarrow \theta
        - c\,\frac{\tilde m}{\sqrt{\tilde v} + \epsilon / s},\quad
        s = \sqrt{\frac{1-\beta_2}{1-\beta_2^t}},\quad
        c = \frac{\eta\,(1-\beta_1)}{(1-\beta_1^t)\,s}

    Every operation is in place on preallocated buffers: a step allocates nothing and,
    written with array-API operations as below, makes 13 passes over the parameter
    vector (fresh multi-megabyte temporaries would cost more in page faults than the
    arithmetic). :func:`scratchvae.backend.fused_kernel` runs the same formula faster
    where the array library allows: on CuPy as one fused kernel (one launch per step
    instead of 13), on NumPy as 10 ufunc passes writing into a scratch buffer.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = (float(b) for b in betas)
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        self.eps = check_number(eps, "eps")
        self.state["m_scaled"] = self._zeros()
        self.state["v_scaled"] = self._zeros()
        self._kernel = fused_kernel(self.xp, "adam", like=params.flat)  # CuPy, NumPy
        if self._kernel is None:
            self._buf, self._step = self._zeros(), self._zeros()

    def _update(self, p, g):
        m, v = self.state["m_scaled"], self.state["v_scaled"]
        s = math.sqrt((1 - self.beta2) / (1 - self.beta2 ** self.t))
        c = self.lr * (1 - self.beta1) / ((1 - self.beta1 ** self.t) * s)
        if self._kernel is not None:
            self._kernel(g, self.beta1, self.beta2, c, self.eps / s, p, m, v)
            return
        buf, step = self._buf, self._step
        m *= self.beta1                                  # m~ = b1 m~ + g
        m += g
        buf[...] = g                                     # v~ = b2 v~ + g^2
        buf *= g
        v *= self.beta2
        v += buf
        buf[...] = v                                     # buf = sqrt(v~) + eps / s
        buf **= 0.5
        buf += self.eps / s
        step[...] = m                                    # theta -= c m~ / buf
        step /= buf
        step *= c
        p -= step


OPTIMIZERS = {"adam": Adam, "adagrad": Adagrad, "sgd": SGD}


# ---- the textbook forms -----------------------------------------------------------------
# The classes above are written for speed (in place, preallocated, scaled moments). These
# are the same updates as the papers write them, one line per formula, for reading beside
# them; tests/test_optim.py checks that both give the same parameters.

def adam_reference(p, g, m, v, t: int, lr: float = 1e-3, beta1: float = 0.9,
                   beta2: float = 0.999, eps: float = 1e-8):
    """One Adam step (Kingma & Ba 2015, Algorithm 1); returns the new ``(p, m, v)``."""
    xp = array_namespace(p, g, m, v)
    m = beta1 * m + (1 - beta1) * g                 # biased first moment
    v = beta2 * v + (1 - beta2) * g * g             # biased second moment
    m_hat = m / (1 - beta1 ** t)                    # bias corrections
    v_hat = v / (1 - beta2 ** t)
    p = p - lr * m_hat / (xp.sqrt(v_hat) + eps)
    return p, m, v


def adagrad_reference(p, g, G, lr: float = 1e-2, eps: float = 1e-10):
    """One Adagrad step (Duchi, Hazan & Singer 2011); returns the new ``(p, G)``."""
    xp = array_namespace(p, g, G)
    G = G + g * g                                   # running sum of squared gradients
    p = p - lr * g / (xp.sqrt(G) + eps)
    return p, G

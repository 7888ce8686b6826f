"""The lecture's worked backpropagation example, reproduced to the slide's 5 decimals.

Two inputs (0.05, 0.1), two sigmoid hidden units, two sigmoid outputs, targets (0.01, 0.99),
squared error, SGD with learning rate 0.5. Keras's mse over 2 outputs is the mean of the squared
errors, which equals the slide's E_total = sum of 1/2 (target - out)^2. Weight numbering: w1, w2
feed h1 from i1, i2; w3, w4 feed h2; w5, w6 feed o1 from h1, h2; w7, w8 feed o2. Our kernels are
(n_in, n_out), so unit j's incoming weights are column j. The slide leaves biases alone, so
only the weights are compared after the step.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.engine import Dense, Input, Sequential, optimizers

X = np.array([[0.05, 0.1]])
Y = np.array([[0.01, 0.99]])
# Columns are units: hidden kernel [[w1, w3], [w2, w4]], output kernel [[w5, w7], [w6, w8]].
HIDDEN_KERNEL = np.array([[0.15, 0.25], [0.2, 0.3]])
OUTPUT_KERNEL = np.array([[0.4, 0.5], [0.45, 0.55]])
# The slide prints 5 decimals, truncated (w5' = 0.358916... shows as 0.35891): agree within 1e-5.
SLIDE_DECIMALS = 1e-5


def lecture_model() -> Sequential:
    """The slide's 2-2-2 network with its weights and biases."""
    model = Sequential([Input((2,)), Dense(2, "sigmoid"), Dense(2, "sigmoid")])
    model.compile(optimizers.SGD(learning_rate=0.5), "mse")
    model.set_weights([HIDDEN_KERNEL, np.full(2, 0.35), OUTPUT_KERNEL, np.full(2, 0.6)])
    return model


def test_forward_pass_matches_the_slide() -> None:
    trace = lecture_model().trace(X, Y)
    hidden, output = trace.layers
    assert hidden.z[0, 0] == pytest.approx(0.3775, abs=SLIDE_DECIMALS)  # net_h1
    assert hidden.a[0, 0] == pytest.approx(0.59327, abs=SLIDE_DECIMALS)  # out_h1
    assert hidden.a[0, 1] == pytest.approx(0.59688, abs=SLIDE_DECIMALS)  # out_h2
    assert output.z[0, 0] == pytest.approx(1.1059, abs=SLIDE_DECIMALS)  # net_o1
    assert output.a[0, 0] == pytest.approx(0.75136, abs=SLIDE_DECIMALS)  # out_o1
    assert output.a[0, 1] == pytest.approx(0.77292, abs=SLIDE_DECIMALS)  # out_o2
    assert trace.loss == pytest.approx(0.29837, abs=SLIDE_DECIMALS)  # E_total
    assert trace.penalty == 0.0


def test_backward_pass_matches_the_slide() -> None:
    trace = lecture_model().trace(X, Y)
    output = trace.layers[1]
    # delta_o1 = dE/dout_o1 * dout_o1/dnet_o1 = 0.74136 * 0.18681.
    assert output.delta[0, 0] == pytest.approx(0.74136 * 0.18681, abs=SLIDE_DECIMALS)
    assert trace.gradients["layers.1.kernel"][0, 0] == pytest.approx(0.08216, abs=SLIDE_DECIMALS)
    # dE/dout_h1 = sum over outputs of delta_o * w_(h1 -> o) = 0.03635 on the slide.
    d_out_h1 = output.delta[0] @ OUTPUT_KERNEL[0]
    assert d_out_h1 == pytest.approx(0.03635, abs=SLIDE_DECIMALS)


def test_one_sgd_step_gives_the_slide_weights() -> None:
    model = lecture_model()
    loss = model.train_on_batch(X, Y)
    assert loss == pytest.approx(0.29837, abs=SLIDE_DECIMALS)
    hidden_kernel, _, output_kernel, _ = model.get_weights()
    w1, w3, w2, w4 = hidden_kernel.ravel()
    w5, w7, w6, w8 = output_kernel.ravel()
    slide = [0.14978, 0.19956, 0.24975, 0.2995, 0.35891, 0.40866, 0.5113, 0.56137]
    np.testing.assert_allclose([w1, w2, w3, w4, w5, w6, w7, w8], slide, rtol=0, atol=SLIDE_DECIMALS)


def test_evaluate_is_the_slide_total_error() -> None:
    assert lecture_model().evaluate(X, Y) == pytest.approx(0.29837, abs=SLIDE_DECIMALS)

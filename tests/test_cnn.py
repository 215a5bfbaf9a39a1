"""The seed CNN: the study's layer shapes, and the same function in PyTorch and MLX."""

from __future__ import annotations

import numpy as np
import pytest

from cnnprof.models.data import to_nhwc

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from cnnprof.models import cnn_mlx, cnn_torch  # noqa: E402 - after the skips above


def expected_parameters(in_channels: int, num_classes: int, image_size: int) -> int:
    """Counted by hand from the layer shapes: weights plus biases of each layer."""
    conv = [(in_channels, 20), (20, 50), (50, 100)]
    total = sum(o * i * 5 * 5 + o for i, o in conv)
    fc = (image_size // 8) ** 2 * 100
    for i, o in [(fc, fc // 2), (fc // 2, fc // 4), (fc // 4, num_classes)]:
        total += i * o + o
    return total


SHAPES = {
    "mnist": (1, 10, 28, 659_855),  # 520 + 25,050 + 125,100 + 405,450 + 101,475 + 2,260
    "cifar10": (3, 10, 32, 1_756_880),  # 1,520 + 25,050 + 125,100 + 1,280,800 + 320,400 + 4,010
    "cifar100": (3, 100, 32, 1_792_970),  # as CIFAR-10 but fc3 is 400 x 100 + 100 = 40,100
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_parameter_counts_match_the_study_in_both_frameworks(shape: tuple[int, int, int, int]) -> None:
    channels, classes, size, count = shape
    assert expected_parameters(channels, classes, size) == count
    assert cnn_torch.count_parameters(cnn_torch.SeedCNN(channels, classes, size)) == count
    assert cnn_mlx.count_parameters(cnn_mlx.SeedCNN(channels, classes, size)) == count


@pytest.mark.parametrize("shape", [SHAPES["mnist"], SHAPES["cifar100"]], ids=["mnist", "cifar100"])
def test_copied_weights_give_the_same_log_probabilities(shape: tuple[int, int, int, int]) -> None:
    channels, classes, size, _ = shape
    torch.manual_seed(0)
    torch_model = cnn_torch.SeedCNN(channels, classes, size).eval()
    mlx_model = cnn_mlx.SeedCNN(channels, classes, size)
    mlx_model.eval()
    cnn_mlx.load_from_torch(mlx_model, torch_model)
    x = np.random.default_rng(0).standard_normal((3, channels, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    got = np.array(mlx_model(mx.array(to_nhwc(x))))
    assert got.shape == (3, classes)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.allclose(np.exp(got).sum(axis=1), 1, atol=1e-5)  # log-probabilities
    # Not trivially equal: the inputs give different outputs.
    assert not np.allclose(got[0], got[1], atol=1e-3)


def test_dropout_acts_in_training_mode_only() -> None:
    torch.manual_seed(0)
    model = cnn_torch.SeedCNN(1, 10, 28)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))


def test_mismatched_models_refuse_the_copy() -> None:
    with pytest.raises(ValueError):
        cnn_mlx.load_from_torch(cnn_mlx.SeedCNN(3, 10, 32), cnn_torch.SeedCNN(3, 100, 32))


@pytest.mark.parametrize("shape", [(2, 7, 7, 3), (2, 28, 28, 4), (1, 6, 9, 2)], ids=["odd", "even", "mixed"])
def test_window_max_pool_is_mlx_max_pooling_with_its_gradient(shape: tuple[int, ...]) -> None:
    """The fast loop's pooling: the same values and, after a ReLU (where ties are zeros), the
    same gradients as nn.MaxPool2d(2, 2), the odd last row and column included (they get none)."""
    x = mx.random.normal(shape, key=mx.random.key(1))
    reference = cnn_mlx.nn.MaxPool2d(2, 2)
    assert mx.array_equal(cnn_mlx.window_max_pool(x), reference(x)).item()
    cotangent = mx.random.normal(reference(x).shape, key=mx.random.key(2))

    def grad_of(pool: object) -> np.ndarray:
        return np.array(mx.grad(lambda v: (pool(cnn_mlx.nn.relu(v)) * cotangent).sum())(x))

    expected, got = grad_of(reference), grad_of(cnn_mlx.window_max_pool)
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(got) > 0  # gradients flowed: the comparison is not of zeros
    if shape[1] % 2:
        assert not got[:, -1].any()  # the dropped row


def test_the_fast_model_computes_the_seed_model() -> None:
    model = cnn_mlx.SeedCNN(1, 10, 28)
    model.eval()
    fast = cnn_mlx.SeedCNN(1, 10, 28, window_pool=True)
    fast.eval()
    fast.update(model.parameters())
    x = mx.random.normal((4, 28, 28, 1), key=mx.random.key(3))
    np.testing.assert_allclose(np.array(fast(x)), np.array(model(x)), atol=1e-6, rtol=0)

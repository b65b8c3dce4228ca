import numpy as np
import pytest
import torch

from pipeline.fusion import FUSIONS, fuse, modalities_for


@pytest.fixture
def blocks():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(5, 3)), rng.normal(size=(5, 3))]


def test_concat_stacks_side_by_side(blocks):
    out = fuse(blocks, "concat")
    assert out.shape == (5, 6)
    np.testing.assert_array_equal(out[:, :3], blocks[0])
    np.testing.assert_array_equal(out[:, 3:], blocks[1])


def test_product_and_mean_are_elementwise(blocks):
    np.testing.assert_allclose(fuse(blocks, "product"), blocks[0] * blocks[1])
    np.testing.assert_allclose(fuse(blocks, "mean"), (blocks[0] + blocks[1]) / 2)
    assert fuse(blocks, "product").shape == (5, 3)


def test_torch_tensors_give_the_same_numbers(blocks):
    tensors = [torch.from_numpy(b) for b in blocks]
    for how in ("concat", "product", "mean", "tensor"):
        out = fuse(tensors, how)
        assert isinstance(out, torch.Tensor)
        np.testing.assert_allclose(out.numpy(), fuse(blocks, how))


def test_tensor_fusion_is_the_outer_product_of_the_one_augmented_blocks():
    audio, text = np.array([[2.0, 3.0]]), np.array([[5.0, 7.0, 11.0]])
    out = fuse([audio, text], "tensor")
    # [2, 3, 1] x [5, 7, 11, 1], row by row: the bimodal products, then each modality alone
    assert out.tolist() == [[10, 14, 22, 2, 15, 21, 33, 3, 5, 7, 11, 1]]
    rng = np.random.default_rng(1)
    wide = fuse([rng.normal(size=(4, 3)), rng.normal(size=(4, 5))], "tensor")  # unequal widths are fine
    assert wide.shape == (4, 4 * 6)


def test_elementwise_fusion_needs_equal_widths():
    with pytest.raises(ValueError, match="equal width, got widths \\[2, 3\\]"):
        fuse([np.ones((4, 3)), np.ones((4, 2))], "mean")


def test_single_block_passes_through(blocks):
    assert fuse(blocks[:1], "audio") is blocks[0]


def test_modalities_per_variant():
    assert modalities_for("audio") == ("audio",)
    assert modalities_for("text") == ("text",)
    assert all(modalities_for(f) == ("audio", "text") for f in FUSIONS[2:])
    with pytest.raises(ValueError, match="unknown fusion 'early'"):
        modalities_for("early")


def test_missing_modality_masks(blocks):
    present = [np.ones((5, 1)), np.array([[1.0], [0.0], [1.0], [0.0], [1.0]])]
    missing = present[1][:, 0] == 0
    concat = fuse(blocks, "concat", present)
    assert not concat[missing, 3:].any() and np.array_equal(concat[~missing], fuse(blocks, "concat")[~missing])
    mean = fuse(blocks, "mean", present)
    np.testing.assert_allclose(mean[missing], blocks[0][missing])  # the mean of what is there
    np.testing.assert_allclose(mean[~missing], (blocks[0][~missing] + blocks[1][~missing]) / 2)
    product = fuse(blocks, "product", present)
    np.testing.assert_allclose(product[missing], blocks[0][missing])  # a missing factor counts as 1
    tensors = fuse([torch.from_numpy(b) for b in blocks], "mean", [torch.from_numpy(p) for p in present])
    np.testing.assert_allclose(tensors.numpy(), mean)
    tensor = fuse(blocks, "tensor", present)  # a missing text leaves audio's own terms and the constant 1
    expected = np.zeros((missing.sum(), 4, 4))
    expected[:, :3, 3], expected[:, 3, 3] = blocks[0][missing], 1.0
    np.testing.assert_allclose(tensor[missing], expected.reshape(-1, 16))
    np.testing.assert_allclose(tensor[~missing], fuse(blocks, "tensor")[~missing])

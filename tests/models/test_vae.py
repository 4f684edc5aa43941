import pytest
import torch

from paris_node.errors import UsageError
from paris_node.models.vae import SD_VAE_SCALE, LatentCodec, codec_spec


def test_pixels_is_identity():
    codec = LatentCodec("pixels")
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.equal(codec.encode(x), x) and torch.equal(codec.decode(x), x)
    assert codec.latent_shape(16) == (3, 16, 16)


def test_sd_vae_codec_with_tiny_local_autoencoder(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    vae.save_pretrained(tmp_path)
    codec = LatentCodec(codec_spec("sd-vae", str(tmp_path)))
    assert codec.latent_shape(16) == (4, 8, 8) and codec.scale == SD_VAE_SCALE
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = codec.encode(x, generator=torch.Generator().manual_seed(1))
    assert z.shape == (2, 4, 8, 8)
    mean = vae.encode(x).latent_dist.mean * SD_VAE_SCALE
    assert torch.allclose(codec.encode(x, generator=None).mean(), z.mean(), atol=1.0)  # same posterior
    assert (z - mean).abs().max() < 10 * SD_VAE_SCALE * vae.encode(x).latent_dist.std.max() + 1e-3
    y = codec.decode(z)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1


def test_bad_codec_specs():
    with pytest.raises(UsageError):
        LatentCodec("jpeg")
    with pytest.raises(UsageError):
        LatentCodec("pixels:x")

"""Networks. MODEL_CLASSES maps a model-type name to (module class, config class)."""

from __future__ import annotations

from torch import nn

from .autoencoder import AutoencoderConfig, SketchAutoencoder
from .cyclegan import ResnetGenerator, ResnetGeneratorConfig
from .discriminator import DiscriminatorConfig, PatchDiscriminator
from .generator import GeneratorConfig, HintGenerator
from .guided_unet import GuidedUNet, GuidedUNetConfig
from .hed import HED, HEDConfig
from .patchgan import PatchGAN, PatchGANConfig
from .pix2pix import UNetConfig, UNetGenerator

# One entry per saved model type (checkpoint.save_model / load_model look names up here).
MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "sketch_autoencoder": (SketchAutoencoder, AutoencoderConfig),
    "hint_generator": (HintGenerator, GeneratorConfig),
    "guided_unet": (GuidedUNet, GuidedUNetConfig),
    "patch_discriminator": (PatchDiscriminator, DiscriminatorConfig),
    "pix2pix_unet": (UNetGenerator, UNetConfig),
    "cyclegan_resnet": (ResnetGenerator, ResnetGeneratorConfig),
    "patchgan": (PatchGAN, PatchGANConfig),
    "hed": (HED, HEDConfig),
}

"""Declarations every algorithm's schema shares: the policy_kwargs entries of SB3's policies
and the switches of zoo's mixins (channels-last weights, fused Adam)."""

from __future__ import annotations

from collections.abc import Mapping

from zoo.schema import names
from zoo.schema.fields import Field, boolean, choice, net_arch, scalar_mapping

COMMON_POLICY_KWARGS: Mapping[str, Field] = {
    "net_arch": Field(net_arch, "hidden layer sizes (pi and vf: the actor's and the critic's)"),
    "activation_fn": Field(choice(names.ACTIVATIONS), "activation between layers"),
    "optimizer_class": Field(choice(names.OPTIMIZERS), "optimizer of the networks"),
    "optimizer_kwargs": Field(
        scalar_mapping, "extra optimizer arguments (eps, alpha, ...; not lr: set learning_rate)"
    ),
    "features_extractor_class": Field(
        choice(names.FEATURES_EXTRACTORS), "network that turns observations into features"
    ),
    "features_extractor_kwargs": Field(scalar_mapping, "arguments of the features extractor"),
    "normalize_images": Field(boolean, "divide pixel values by 255 before the network"),
}

CHANNELS_LAST = Field(
    boolean, "convolution weights stored channels-last: faster CPU convolutions, same network"
)

FUSED_ADAM = Field(
    boolean,
    "Adam and AdamW step in one fused kernel: the same update, faster; SB3's optimizer "
    "settings are kept",
)

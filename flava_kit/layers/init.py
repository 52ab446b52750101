"""FLAVA's initialisation (HF ``FlavaPreTrainedModel._init_weights``), applied by each FLAVA component
to its own parameters, so injected parts (a timm or HF tower, pretrained or not) keep theirs."""

from __future__ import annotations

from torch import nn

INIT_STD = 0.02
"""HF ``FlavaConfig.initializer_range``."""


def flava_init_(*modules: nn.Module, zeros: tuple[nn.Parameter, ...] = (), token_std: float = 0.0) -> None:
    """Linear and convolution weights and embeddings ~ N(0, 0.02), biases and padding rows 0,
    LayerNorms 1 and 0; then ``zeros`` (FLAVA's class and mask tokens, image position embeddings) 0,
    as HF's FLAVA, or, with ``token_std`` > 0, truncated-normal with that std (as timm's ViT).

    Why the choice: a zero vector entering the first LayerNorm (eps 1e-12) has an enormous
    gradient, so from scratch the first steps' gradient norm is nearly all in these tokens and
    clipping starves the rest of the model; parity with HF's weights needs the zeros.
    """
    for root in modules:
        for module in root.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.normal_(module.weight, std=INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=INIT_STD)
                if module.padding_idx is not None:
                    module.weight.data[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    for parameter in zeros:
        if token_std > 0:
            nn.init.trunc_normal_(parameter, std=token_std, a=-2 * token_std, b=2 * token_std)
        else:
            nn.init.zeros_(parameter)

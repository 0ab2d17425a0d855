"""The RAM extractor's old module, kept so that older zips load: SB3 saves `policy_kwargs`
with cloudpickle, which names `zoo.networks.ScaledFlattenExtractor` by module path. New code
imports it from zoo.ram_extractor."""

from zoo.ram_extractor import ScaledFlattenExtractor as ScaledFlattenExtractor

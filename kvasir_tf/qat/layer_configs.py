"""Which QuantizeConfig each kvasir_tf layer gets, by layer class; every other layer follows TF-MOT's
registry. (Not a TF-MOT ``QuantizeRegistry``: ``apply_qat`` annotates these layers with their config
before ``quantize_apply``, which is how TF-MOT takes custom layers.)"""
from kvasir_tf.model import Preprocess
from kvasir_tf.pact import PACT
from kvasir_tf.qat.configs import PACTQuantizeConfig, PreprocessQuantizeConfig

# layer class -> config class; a new quantized layer plugs in here.
LAYER_CONFIGS = {PACT: PACTQuantizeConfig, Preprocess: PreprocessQuantizeConfig}


def config_for(layer):
    """A fresh QuantizeConfig for one of kvasir_tf's layers, or None for TF-MOT's default."""
    for cls, config in LAYER_CONFIGS.items():
        if isinstance(layer, cls):
            return config()
    return None

"""Tiny models shared by the tests."""
import tensorflow as tf


def tiny_pact_cnn(size=16, classes=3, seed=0, alpha_init=2.0):
    """pixels -> pixel map -> Conv/BN/PACT -> Depthwise/BN/PACT -> Dense: every QAT quantizer kind."""
    from kvasir_tf.model import Preprocess
    from kvasir_tf.pact import PACT
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((size, size, 3))
    x = Preprocess()(inp)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = PACT(alpha_init=alpha_init)(tf.keras.layers.BatchNormalization()(x))
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = PACT(alpha_init=alpha_init)(tf.keras.layers.BatchNormalization()(x))
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(classes, activation="softmax")(x)
    return tf.keras.Model(inp, out)

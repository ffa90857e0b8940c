"""Saliency maps and how they survive quantization (issue 9).

Explainers are callable objects mapping images (raw pixels [N,S,S,3]) to maps (float32 [N,S,S],
normalised by :func:`kvasir_tf.explain.normalize.normalize`):

- ``gradients``: tf-keras-vis vanilla saliency, SmoothGrad, Grad-CAM++ and Integrated Gradients
  for Keras models (float, SGT, and QAT through its fake-quant graph);
- ``perturbation``: gradient-free occlusion and RISE through any model that maps pixels to
  probabilities, in particular the deployed int8 ``.tflite`` run by the real LiteRT interpreter
  with its input resized to a batch.

``metrics`` compares maps (agreement, faithfulness, localisation, bootstrap intervals);
``study`` runs them over a run or comparison folder; ``figures``/``html`` draw the results;
``cli`` is ``kvasir-explain``.
"""

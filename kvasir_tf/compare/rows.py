"""The rows of the float/PTQ/QAT comparison, defined once: name, training mode, artifact, label.

Every other module refers to a row by its object here (``rows.SGT_PACT_QAT_INT8``), never by
spelling its name, so a pair of rows (the report's paired tests, the saliency study's map
pairs) cannot name a row that does not exist; names from users and files go through
:func:`get`, which refuses an unknown one.

A row is the model one training mode produced (``runs/<train_mode>``), deployed either as its
Keras checkpoint (``convert_mode`` None, named ``<train_mode>-keras``) or as a .tflite file
converted with ``convert_mode`` (``models/<name>.tflite``).
"""
from __future__ import annotations

from dataclasses import dataclass

from kvasir_tf.compare.layout import keras_row
from kvasir_tf.errors import KvasirError


@dataclass(frozen=True)
class Row:
    """One row: the model ``train_mode`` produced, deployed as ``convert_mode`` (None = Keras)."""

    name: str
    train_mode: str
    convert_mode: str | None
    label: str
    per_tensor: bool = False       # int8 with one scale per tensor (smaller file; see convert.py)

    @property
    def artifact(self) -> str:
        """"keras" (the run's best checkpoint) or "tflite" (a converted, verified file)."""
        return "keras" if self.convert_mode is None else "tflite"


def _keras(train_mode: str, label: str) -> Row:
    return Row(keras_row(train_mode), train_mode, None, label)


FLOAT_KERAS = _keras("float", "float (Keras)")
FLOAT = Row("float", "float", "float", "float32 TFLite")
FLOAT_FP16 = Row("float-fp16", "float", "fp16", "float16 TFLite")
FLOAT_DYNAMIC = Row("float-dynamic", "float", "dynamic", "dynamic-range TFLite")
PTQ_INT8 = Row("ptq-int8", "float", "int8", "PTQ int8")
PTQ_INT8_PER_TENSOR = Row("ptq-int8-per-tensor", "float", "int8", "PTQ int8 per-tensor", per_tensor=True)
SGT_KERAS = _keras("sgt", "SGT float (Keras)")
SGT = Row("sgt", "sgt", "float", "SGT float32 TFLite")
QAT_KERAS = _keras("qat", "TF-MOT QAT (Keras)")
QAT_INT8 = Row("qat-int8", "qat", "int8", "TF-MOT QAT int8")
PACT_QAT_KERAS = _keras("pact-qat", "PACT-QAT (Keras)")
PACT_QAT_INT8 = Row("pact-qat-int8", "pact-qat", "int8", "PACT-QAT int8")
SGT_PACT_QAT_KERAS = _keras("sgt-pact-qat", "SGT-PACT-QAT (Keras)")
SGT_PACT_QAT_INT8 = Row("sgt-pact-qat-int8", "sgt-pact-qat", "int8", "SGT-PACT-QAT int8 (ours)")
FLOAT_FT_KERAS = _keras("float-ft", "float + QAT epochs (Keras, control)")
SGT_FT_KERAS = _keras("sgt-ft", "SGT + QAT epochs (Keras, control)")

ROWS = (FLOAT_KERAS, FLOAT, FLOAT_FP16, FLOAT_DYNAMIC, PTQ_INT8, PTQ_INT8_PER_TENSOR, SGT_KERAS, SGT,
        QAT_KERAS, QAT_INT8, PACT_QAT_KERAS, PACT_QAT_INT8, SGT_PACT_QAT_KERAS, SGT_PACT_QAT_INT8,
        FLOAT_FT_KERAS, SGT_FT_KERAS)
BY_NAME = {r.name: r for r in ROWS}
REFERENCE = FLOAT_KERAS            # the "agreement" column: % same top-1 as this row
# (Keras row, its int8 row) of each QAT mode: the int8 file against the model it came from
QAT_PAIRS = ((QAT_KERAS, QAT_INT8), (PACT_QAT_KERAS, PACT_QAT_INT8),
             (SGT_PACT_QAT_KERAS, SGT_PACT_QAT_INT8))
assert len(BY_NAME) == len(ROWS), "two rows share a name"


def get(name: str) -> Row:
    """The row called ``name``; an unknown name is an error that lists the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KvasirError(f"unknown comparison row {name!r}; choose from {', '.join(BY_NAME)}") from None


def select(names) -> list:
    """The rows called ``names``, in that order; every unknown name is reported at once."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise KvasirError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in names]


def keras_row_of(train_mode: str) -> Row | None:
    """The Keras row of a training mode (the model its .tflite rows were converted from)."""
    return BY_NAME.get(keras_row(train_mode))


@dataclass(frozen=True)
class Pair:
    """Two rows compared on the same images, and why; results are reported as b - a."""

    a: Row
    b: Row
    why: str

    def present_in(self, names) -> bool:
        return self.a.name in names and self.b.name in names


def pair(a, b, why: str) -> Pair:
    """A Pair from rows or row names (an unknown name is an error, see :func:`get`)."""
    return Pair(*(r if isinstance(r, Row) else get(r) for r in (a, b)), why)

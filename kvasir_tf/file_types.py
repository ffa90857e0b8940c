"""What a model file is, from its first bytes (whatever its name says)."""
TFLITE_MAGIC = b"TFL3"          # flatbuffer file identifier at bytes 4..8
KERAS_ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def head(path, n: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def is_tflite_bytes(first8: bytes) -> bool:
    return len(first8) >= 8 and first8[4:8] == TFLITE_MAGIC


def is_tflite_file(path) -> bool:
    return is_tflite_bytes(head(path))

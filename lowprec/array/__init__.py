"""The array API (L3): quantize, encode and decode numpy arrays and torch tensors to any format.

- api: the public functions and their one dispatch over format kinds (KINDS)
- adapters: numpy/torch in, the same kind out; chunked walks for bounded memory
- scalar, block, codebook, scaled: one module per format kind (the C core underneath)
- device: the pure-torch path for tensors on a GPU
"""

from .api import KINDS, BlockCodes, decode, encode, kind_of, quantize

__all__ = ["quantize", "encode", "decode", "BlockCodes", "KINDS", "kind_of"]

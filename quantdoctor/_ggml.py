"""The GGML tensor types, defined once: the GGUF header reader, the torch dequantizer and
packers, the GGUF loader and the matrix's ``gguf`` schemes all read this table.

Plain data and the standard library only, so ``rules/`` may import it and ``detect``
reads it without loading the matrix. Ids, names, block sizes and bytes per block are
gguf-py's (``GGMLQuantizationType`` and ``GGML_QUANT_SIZES``; a test checks them);
``bits`` is the nominal width of one stored value (a Q4_K code is 4 bits, its scales
make it 4.5 bits a weight: ``block_bytes`` holds the exact storage), ``family`` whether
those values are integer codes or floating point.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from quantdoctor._namedtuple import NamedTuple


class GGMLType(NamedTuple):
    id: int
    name: str
    #: values per block, and the bytes one block takes (scales included)
    block: int
    block_bytes: int
    #: nominal bits of one stored value
    bits: int
    family: str  # "int" or "float"

    @property
    def plain_float(self) -> bool:
        """Plain floating point (F32, F16, BF16, F64): stored as values, not quantized blocks."""
        return self.block == 1 and self.family == "float"


_I, _F = "int", "float"

#: Every GGML type gguf-py knows, in id order.
GGML_TYPES: tuple[GGMLType, ...] = (
    GGMLType(0, "F32", 1, 4, 32, _F),
    GGMLType(1, "F16", 1, 2, 16, _F),
    GGMLType(2, "Q4_0", 32, 18, 4, _I),
    GGMLType(3, "Q4_1", 32, 20, 4, _I),
    GGMLType(6, "Q5_0", 32, 22, 5, _I),
    GGMLType(7, "Q5_1", 32, 24, 5, _I),
    GGMLType(8, "Q8_0", 32, 34, 8, _I),
    GGMLType(9, "Q8_1", 32, 40, 8, _I),
    GGMLType(10, "Q2_K", 256, 84, 2, _I),
    GGMLType(11, "Q3_K", 256, 110, 3, _I),
    GGMLType(12, "Q4_K", 256, 144, 4, _I),
    GGMLType(13, "Q5_K", 256, 176, 5, _I),
    GGMLType(14, "Q6_K", 256, 210, 6, _I),
    GGMLType(15, "Q8_K", 256, 292, 8, _I),
    GGMLType(16, "IQ2_XXS", 256, 66, 2, _I),
    GGMLType(17, "IQ2_XS", 256, 74, 2, _I),
    GGMLType(18, "IQ3_XXS", 256, 98, 3, _I),
    GGMLType(19, "IQ1_S", 256, 50, 1, _I),
    GGMLType(20, "IQ4_NL", 32, 18, 4, _I),
    GGMLType(21, "IQ3_S", 256, 110, 3, _I),
    GGMLType(22, "IQ2_S", 256, 82, 2, _I),
    GGMLType(23, "IQ4_XS", 256, 136, 4, _I),
    GGMLType(24, "I8", 1, 1, 8, _I),
    GGMLType(25, "I16", 1, 2, 16, _I),
    GGMLType(26, "I32", 1, 4, 32, _I),
    GGMLType(27, "I64", 1, 8, 64, _I),
    GGMLType(28, "F64", 1, 8, 64, _F),
    GGMLType(29, "IQ1_M", 256, 56, 1, _I),
    GGMLType(30, "BF16", 1, 2, 16, _F),
    GGMLType(34, "TQ1_0", 256, 54, 2, _I),  # ternary codes
    GGMLType(35, "TQ2_0", 256, 66, 2, _I),
    GGMLType(39, "MXFP4", 32, 17, 4, _F),
    GGMLType(40, "NVFP4", 64, 36, 4, _F),
    GGMLType(41, "Q1_0", 128, 18, 1, _I),
)

BY_ID: dict[int, GGMLType] = {t.id: t for t in GGML_TYPES}
BY_NAME: dict[str, GGMLType] = {t.name: t for t in GGML_TYPES}

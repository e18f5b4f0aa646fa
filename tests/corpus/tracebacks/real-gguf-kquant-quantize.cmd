python -c 'import numpy as np
from gguf import GGMLQuantizationType, quants
quants.quantize(np.random.rand(256, 256).astype(np.float32), GGMLQuantizationType.Q4_K)'

python -c 'import torch
from torchao.quantization import Int4WeightOnlyConfig, quantize_
m = torch.nn.Sequential(torch.nn.Linear(256, 256)).to(torch.bfloat16)
quantize_(m, Int4WeightOnlyConfig())'

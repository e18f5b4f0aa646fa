python -c 'import torch
from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
m = torch.nn.Sequential(torch.nn.Linear(256, 256)).to(torch.bfloat16)
quantize_(m, Float8DynamicActivationFloat8WeightConfig())'

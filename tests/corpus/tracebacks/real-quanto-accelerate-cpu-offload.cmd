python -c 'import torch
from accelerate import cpu_offload
from optimum.quanto import freeze, qint8, quantize
m = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 256))
quantize(m, weights=qint8)
freeze(m)
cpu_offload(m, execution_device=torch.device("cpu"))
m(torch.randn(2, 256))'

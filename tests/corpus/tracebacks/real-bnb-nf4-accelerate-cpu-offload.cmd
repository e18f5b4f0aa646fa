python -c 'import torch, bitsandbytes as bnb
from accelerate import cpu_offload
m = torch.nn.Sequential(bnb.nn.Linear4bit(256, 256, quant_type="nf4", compute_dtype=torch.float32))
m = m.to("cpu")
cpu_offload(m, execution_device=torch.device("cpu"))
m(torch.randn(2, 256))'

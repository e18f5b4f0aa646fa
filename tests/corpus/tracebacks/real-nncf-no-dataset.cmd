python -c 'import torch, nncf
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(256, 256)
    def forward(self, x):
        return self.l(x)
nncf.compress_weights(M(), mode=nncf.CompressWeightsMode.INT8_ASYM)'

python -c 'import torch, nncf
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(256, 256)
    def forward(self, x):
        return self.l(x)
x = torch.randn(4, 256)
nncf.compress_weights(M(), mode=nncf.CompressWeightsMode.NF4, dataset=nncf.Dataset([x]))'
